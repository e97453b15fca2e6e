-- Backchannel 0002: questions for the presenter, highlighted and answered marks, helpful marks.

ALTER TABLE comments
    -- The author marked it "Ask the presenter".
    ADD COLUMN question        boolean NOT NULL DEFAULT false,
    ADD COLUMN highlighted_at  timestamptz,
    ADD COLUMN answered_at     timestamptz,
    ADD COLUMN helpful_count   integer NOT NULL DEFAULT 0 CHECK (helpful_count >= 0);

-- One helpful mark per person and comment; the count on the comment is kept with it.
CREATE TABLE helpful_marks (
    comment_id  bigint NOT NULL REFERENCES comments (id),
    user_id     text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (comment_id, user_id)
);

-- New kinds of event: a comment's marks changed; helpful counts of some comments changed
-- (aggregated: one event carries every comment whose count moved since the last one, listed in
-- data.ids).
ALTER TABLE session_events DROP CONSTRAINT session_events_kind_check;
ALTER TABLE session_events DROP CONSTRAINT session_events_check;
ALTER TABLE session_events
    ADD COLUMN data jsonb,
    ADD CONSTRAINT session_events_kind_check CHECK (kind IN (
        'comment.created', 'comment.edited', 'comment.removed', 'comment.restored',
        'comment.marked', 'helpful.counts',
        'session.opened', 'session.closed', 'session.updated')),
    ADD CONSTRAINT session_events_check CHECK ((kind LIKE 'comment.%') = (comment_id IS NOT NULL)),
    ADD CONSTRAINT session_events_data_check CHECK ((kind = 'helpful.counts') = (data IS NOT NULL));
