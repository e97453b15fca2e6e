-- Backchannel 0008: the posting batch numbers and counts its own comments. It writes up to 64
-- comments in one statement, and the per-row triggers made that one UPDATE of the sessions row
-- (and one plpgsql call or two) per comment: in a batch of one session, 64 versions of one row.
-- The batch now does it set-wise in the statement that takes its seqs (see INSERT_COMMENTS in
-- server/storage/posting.py), and says so for its own transaction only:
--     SET LOCAL backchannel.counted = 'on'
-- Every other writer (imports, moderation, status changes, a person at psql) is still checked,
-- numbered and counted by the triggers.
DROP TRIGGER comments_1_state ON comments;
DROP TRIGGER comments_2_counts ON comments;
CREATE TRIGGER comments_1_state BEFORE INSERT OR UPDATE OF status ON comments
    FOR EACH ROW WHEN (current_setting('backchannel.counted', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION comments_check_state();
CREATE TRIGGER comments_2_counts BEFORE INSERT OR UPDATE OF status ON comments
    FOR EACH ROW WHEN (current_setting('backchannel.counted', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION comments_keep_counts();
