-- Backchannel 0005: attendees report comments; moderators flag, time out or ban authors; slow
-- mode, set by a moderator or switched on by a burst of posts.

-- One report per person per comment. A moderator's decision (keep or remove) resolves them.
CREATE TABLE reports (
    comment_id   bigint NOT NULL REFERENCES comments (id),
    reporter     text NOT NULL,   -- the reporting user's sub
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '' CHECK (char_length(detail) <= 500),
    at           timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    PRIMARY KEY (comment_id, reporter)
);
ALTER TABLE comments ADD COLUMN open_reports integer NOT NULL DEFAULT 0 CHECK (open_reports >= 0);
CREATE INDEX comments_reported ON comments (session_id, id) WHERE open_reports > 0;
-- For slow mode: an author's latest post in a session, and the session's posts per minute.
CREATE INDEX comments_by_author ON comments (session_id, author_id, created_at);
CREATE INDEX comments_recent ON comments (session_id, created_at);

ALTER TABLE events
    -- This many open reports hold a published comment for review (0: never automatically).
    ADD COLUMN report_threshold integer NOT NULL DEFAULT 3 CHECK (report_threshold >= 0);

-- What moderators decided about an author in an event: flag (their posts wait for review),
-- timeout (no posting until ``until``, or for the event when NULL) or ban (no posting in the
-- event). Lifted sanctions stay, for the record.
CREATE TABLE sanctions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    bigint NOT NULL REFERENCES events (id),
    author_id   bigint NOT NULL REFERENCES authors (id),
    kind        text NOT NULL CHECK (kind IN ('flag', 'timeout', 'ban')),
    until       timestamptz,
    reason      text NOT NULL DEFAULT '' CHECK (char_length(reason) <= 500),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    lifted_at   timestamptz,
    lifted_by   text,
    CHECK (kind <> 'ban' OR until IS NULL)
);
CREATE INDEX sanctions_active ON sanctions (event_id, author_id) WHERE lifted_at IS NULL;

ALTER TABLE sessions
    -- Slow mode set by a moderator: at most one post per this many seconds per author (0: off).
    ADD COLUMN slow_mode_seconds integer NOT NULL DEFAULT 0
        CHECK (slow_mode_seconds BETWEEN 0 AND 3600),
    -- Automatic slow mode: on while posts per minute, measured over the last
    -- auto_slow_window seconds, exceed this (0: never); one post per auto_slow_seconds.
    ADD COLUMN auto_slow_threshold integer NOT NULL DEFAULT 0 CHECK (auto_slow_threshold >= 0),
    ADD COLUMN auto_slow_seconds integer NOT NULL DEFAULT 30
        CHECK (auto_slow_seconds BETWEEN 1 AND 3600),
    ADD COLUMN auto_slow_window integer NOT NULL DEFAULT 60
        CHECK (auto_slow_window BETWEEN 1 AND 3600),
    ADD COLUMN slow_auto boolean NOT NULL DEFAULT false;

-- Which author a moderator's action was about (ban, timeout, flag, lift).
ALTER TABLE audit_log ADD COLUMN author_id bigint REFERENCES authors (id);
