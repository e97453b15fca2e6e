-- Backchannel 0004: posts held for review (by the community rules, or because a session is
-- pre-moderated), approved or rejected by moderators.

INSERT INTO comment_states (status, public, initial) VALUES
    ('held', false, true),
    ('rejected', false, false);
INSERT INTO comment_transitions (from_status, to_status) VALUES
    ('held', 'published'),   -- approved
    ('held', 'rejected'),
    ('held', 'deleted'),     -- its author withdrew it
    ('published', 'held');   -- edited into something the rules hold

ALTER TABLE comments
    -- Why it is (or was) held: link, contact, suspect, crisis, personal, premoderation, ...
    ADD COLUMN hold_reason  text,
    -- What matched, for moderators.
    ADD COLUMN hold_match   text,
    ADD COLUMN reviewed_by  text,
    ADD COLUMN reviewed_at  timestamptz;
CREATE INDEX comments_held ON comments (session_id, id) WHERE status = 'held';

ALTER TABLE sessions ADD COLUMN premoderated boolean NOT NULL DEFAULT false;

ALTER TABLE events
    -- Words refused outright, and words that hold a post for review, in this event.
    ADD COLUMN banned_words     text[] NOT NULL DEFAULT '{}',
    ADD COLUMN suspect_words    text[] NOT NULL DEFAULT '{}',
    -- Shown to the author of a post held as a crisis.
    ADD COLUMN support_message  text NOT NULL DEFAULT '' CHECK (char_length(support_message) <= 2000);

ALTER TABLE session_events DROP CONSTRAINT session_events_kind_check;
ALTER TABLE session_events ADD CONSTRAINT session_events_kind_check CHECK (kind IN (
    'comment.created', 'comment.edited', 'comment.removed', 'comment.restored',
    'comment.deleted', 'comment.approved', 'comment.held', 'comment.marked', 'helpful.counts',
    'session.opened', 'session.closed', 'session.updated'));
