-- Backchannel 0006: indexes for the data commands (`backchannel forget`, `backchannel retention`):
-- an author's comments across events, and the references that deleting a board must check
-- (without them every deleted comment would scan these tables).
CREATE INDEX comments_author ON comments (author_id);
CREATE INDEX comments_parent ON comments (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX session_events_comment ON session_events (comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX audit_log_session ON audit_log (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX audit_log_comment ON audit_log (comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX audit_log_author ON audit_log (author_id) WHERE author_id IS NOT NULL;
