-- Backchannel 0003: authors delete their own comments; every moderator action is audited.

INSERT INTO comment_states (status, public, initial) VALUES ('deleted', false, false);
INSERT INTO comment_transitions (from_status, to_status) VALUES ('published', 'deleted');

ALTER TABLE session_events DROP CONSTRAINT session_events_kind_check;
ALTER TABLE session_events ADD CONSTRAINT session_events_kind_check CHECK (kind IN (
    'comment.created', 'comment.edited', 'comment.removed', 'comment.restored',
    'comment.deleted', 'comment.marked', 'helpful.counts',
    'session.opened', 'session.closed', 'session.updated'));

-- Who did what, when and why: one row per moderator action, kept for the event's life.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    event_id    bigint NOT NULL REFERENCES events (id),
    session_id  bigint REFERENCES sessions (id),
    actor       text NOT NULL,   -- the acting user's sub
    actor_name  text NOT NULL,
    role        text NOT NULL,
    action      text NOT NULL,
    comment_id  bigint REFERENCES comments (id),
    reason      text NOT NULL DEFAULT '' CHECK (char_length(reason) <= 500),
    changed     boolean NOT NULL  -- false: it was already so; nothing else was written
);
CREATE INDEX audit_log_event ON audit_log (event_id, id);
