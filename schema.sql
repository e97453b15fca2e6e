-- The full current schema of Backchannel's database, as every migration in
-- server/migrations/ leaves it when applied in order to an empty database (a test checks this).
-- Read this file to learn the schema; change it only together with a new migration.

CREATE TABLE schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Words refused outright, and words that hold a post for review, in this event.
    banned_words     text[] NOT NULL DEFAULT '{}',
    suspect_words    text[] NOT NULL DEFAULT '{}',
    -- Shown to the author of a post held as a crisis.
    support_message  text NOT NULL DEFAULT '' CHECK (char_length(support_message) <= 2000),
    -- This many open reports hold a published comment for review (0: never automatically).
    report_threshold integer NOT NULL DEFAULT 3 CHECK (report_threshold >= 0)
);

CREATE TABLE sessions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      bigint NOT NULL REFERENCES events (id),
    slug          text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    title         text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    speakers      text[] NOT NULL DEFAULT '{}',
    prompt        text NOT NULL DEFAULT '' CHECK (char_length(prompt) <= 500),
    state         text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    opens_at      timestamptz,
    closes_at     timestamptz,
    -- The head of the session's event log: the seq of its newest event.
    last_seq      bigint NOT NULL DEFAULT 0,
    -- The number given to the newest published top-level comment ("189.").
    last_number   integer NOT NULL DEFAULT 0,
    -- Published comments, replies included ("189 Comments").
    comment_count integer NOT NULL DEFAULT 0 CHECK (comment_count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    premoderated  boolean NOT NULL DEFAULT false,
    -- Slow mode set by a moderator: at most one post per this many seconds per author (0: off).
    slow_mode_seconds   integer NOT NULL DEFAULT 0 CHECK (slow_mode_seconds BETWEEN 0 AND 3600),
    -- Automatic slow mode: on while posts per minute, measured over the last auto_slow_window
    -- seconds, exceed auto_slow_threshold (0: never); then one post per auto_slow_seconds.
    auto_slow_threshold integer NOT NULL DEFAULT 0 CHECK (auto_slow_threshold >= 0),
    auto_slow_seconds   integer NOT NULL DEFAULT 30 CHECK (auto_slow_seconds BETWEEN 1 AND 3600),
    auto_slow_window    integer NOT NULL DEFAULT 60 CHECK (auto_slow_window BETWEEN 1 AND 3600),
    slow_auto           boolean NOT NULL DEFAULT false,
    -- Moves on with every change to what posting reads from the session or its event, which
    -- each batch of posts checks under the session's lock (processes keep sessions in memory).
    settings_version    integer NOT NULL DEFAULT 0,
    CHECK (opens_at < closes_at)
);
CREATE INDEX sessions_event ON sessions (event_id);

CREATE TABLE authors (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id  text NOT NULL UNIQUE CHECK (char_length(external_id) BETWEEN 1 AND 200),
    name         text NOT NULL DEFAULT '' CHECK (char_length(name) <= 100),
    profession   text NOT NULL DEFAULT '' CHECK (char_length(profession) <= 100),
    city         text NOT NULL DEFAULT '' CHECK (char_length(city) <= 100),
    region       text NOT NULL DEFAULT '' CHECK (char_length(region) <= 100),
    country      text NOT NULL DEFAULT '' CHECK (country ~ '^([A-Z]{2})?$'),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The comment state machine: which states exist, which a comment may start in, which moves are
-- allowed. Later migrations add held/rejected/deleted by inserting rows here.
CREATE TABLE comment_states (
    status   text PRIMARY KEY,
    public   boolean NOT NULL,  -- counted in totals and shown to every watcher
    initial  boolean NOT NULL   -- a new comment may be created in this state
);
CREATE TABLE comment_transitions (
    from_status  text NOT NULL REFERENCES comment_states (status),
    to_status    text NOT NULL REFERENCES comment_states (status),
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO comment_states (status, public, initial) VALUES
    ('published', true, true),
    ('removed', false, false),
    ('deleted', false, false),  -- by its author
    ('held', false, true),      -- awaiting review
    ('rejected', false, false);
INSERT INTO comment_transitions (from_status, to_status) VALUES
    ('published', 'removed'),
    ('removed', 'published'),
    ('published', 'deleted'),
    ('held', 'published'),      -- approved
    ('held', 'rejected'),
    ('held', 'deleted'),        -- its author withdrew it
    ('published', 'held');      -- edited into something the rules hold, or reported

CREATE TABLE comments (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id   bigint NOT NULL REFERENCES sessions (id),
    author_id    bigint NOT NULL REFERENCES authors (id),
    parent_id    bigint REFERENCES comments (id),
    -- The top-level comment of the thread (NULL for a top-level comment), so that one query
    -- fetches whole reply trees for a page of threads.
    root_id      bigint REFERENCES comments (id),
    depth        smallint NOT NULL DEFAULT 0 CHECK (depth >= 0),
    -- "1.", "2.", ...: given to top-level comments in order of publication.
    number       integer,
    body         text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 5000),
    status       text NOT NULL REFERENCES comment_states (status),
    -- Published replies beneath this comment, at any depth: a comment that is not public but
    -- has some still shows as a placeholder, so that they read in place.
    reply_count  integer NOT NULL DEFAULT 0 CHECK (reply_count >= 0),
    client_key   text CHECK (char_length(client_key) BETWEEN 1 AND 100),
    created_at   timestamptz NOT NULL DEFAULT now(),
    edited_at    timestamptz,
    removed_at   timestamptz,
    removed_by   text,
    -- The author marked it "Ask the presenter".
    question        boolean NOT NULL DEFAULT false,
    highlighted_at  timestamptz,
    answered_at     timestamptz,
    helpful_count   integer NOT NULL DEFAULT 0 CHECK (helpful_count >= 0),
    -- Why it is (or was) held: link, contact, suspect, crisis, personal, premoderation, ...
    hold_reason  text,
    -- What matched, for moderators.
    hold_match   text,
    reviewed_by  text,
    reviewed_at  timestamptz,
    -- Reports by attendees not yet dealt with by a moderator.
    open_reports integer NOT NULL DEFAULT 0 CHECK (open_reports >= 0),
    CHECK ((parent_id IS NULL) = (root_id IS NULL)),
    CHECK ((parent_id IS NULL) = (depth = 0)),
    CHECK (parent_id IS NULL OR number IS NULL),
    UNIQUE (session_id, number),
    UNIQUE (session_id, author_id, client_key)
);
CREATE INDEX comments_thread ON comments (root_id, id) WHERE root_id IS NOT NULL;
CREATE INDEX comments_held ON comments (session_id, id) WHERE status = 'held';
CREATE INDEX comments_reported ON comments (session_id, id) WHERE open_reports > 0;
-- For slow mode: an author's latest post in a session, and the session's posts per minute.
CREATE INDEX comments_by_author ON comments (session_id, author_id, created_at);
CREATE INDEX comments_recent ON comments (session_id, created_at);
-- For the data commands (forget, retention): an author's comments; a comment's replies.
CREATE INDEX comments_author ON comments (author_id);
CREATE INDEX comments_parent ON comments (parent_id) WHERE parent_id IS NOT NULL;

-- Enforce the state machine on every write, whoever writes.
CREATE FUNCTION comments_check_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM comment_states WHERE status = NEW.status AND initial) THEN
            RAISE EXCEPTION 'comment cannot start as %', NEW.status USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NEW.status IS DISTINCT FROM OLD.status AND NOT EXISTS (
        SELECT 1 FROM comment_transitions WHERE from_status = OLD.status AND to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'comment % cannot go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
-- (The posting batch numbers and counts its own comments, in the statement that takes their seqs,
-- and says so for its transaction with SET LOCAL backchannel.counted = 'on'; every other writer
-- goes through these triggers.)
CREATE TRIGGER comments_1_state BEFORE INSERT OR UPDATE OF status ON comments
    FOR EACH ROW WHEN (current_setting('backchannel.counted', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION comments_check_state();

-- Keep the totals and the top-level numbering right whoever writes: a comment entering a public
-- state counts once in its session and in each of its ancestors; a top-level comment gets its
-- number when it is first published.
CREATE FUNCTION comments_keep_counts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_public boolean := false;
    is_public  boolean;
    delta      integer;
    ancestor   bigint;
BEGIN
    SELECT public INTO is_public FROM comment_states WHERE status = NEW.status;
    IF TG_OP = 'UPDATE' THEN
        SELECT public INTO was_public FROM comment_states WHERE status = OLD.status;
    END IF;
    delta := is_public::integer - was_public::integer;
    IF NEW.parent_id IS NULL AND is_public AND NEW.number IS NULL THEN
        UPDATE sessions SET last_number = last_number + 1, comment_count = comment_count + delta
            WHERE id = NEW.session_id RETURNING last_number INTO NEW.number;
    ELSIF delta <> 0 THEN
        UPDATE sessions SET comment_count = comment_count + delta WHERE id = NEW.session_id;
    END IF;
    ancestor := CASE WHEN delta <> 0 THEN NEW.parent_id END;
    WHILE ancestor IS NOT NULL LOOP
        UPDATE comments SET reply_count = reply_count + delta WHERE id = ancestor
            RETURNING parent_id INTO ancestor;
    END LOOP;
    RETURN NEW;
END $$;
CREATE TRIGGER comments_2_counts BEFORE INSERT OR UPDATE OF status ON comments
    FOR EACH ROW WHEN (current_setting('backchannel.counted', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION comments_keep_counts();

-- The per-session event log: every change watchers see, in order. seq is allocated from
-- sessions.last_seq under the session's row lock, in the same transaction as the change, so it
-- increases by exactly 1 and commit order equals seq order.
CREATE TABLE session_events (
    session_id  bigint NOT NULL REFERENCES sessions (id),
    seq         bigint NOT NULL CHECK (seq > 0),
    kind        text NOT NULL CONSTRAINT session_events_kind_check CHECK (kind IN (
                    'comment.created', 'comment.edited', 'comment.removed', 'comment.restored',
                    'comment.deleted', 'comment.approved', 'comment.held', 'comment.marked',
                    'helpful.counts',
                    'session.opened', 'session.closed', 'session.updated')),
    comment_id  bigint REFERENCES comments (id),
    at          timestamptz NOT NULL DEFAULT now(),
    -- helpful.counts: {"ids": [...]}, the comments whose helpful count moved.
    data        jsonb,
    PRIMARY KEY (session_id, seq),
    CONSTRAINT session_events_check CHECK ((kind LIKE 'comment.%') = (comment_id IS NOT NULL)),
    CONSTRAINT session_events_data_check CHECK ((kind = 'helpful.counts') = (data IS NOT NULL))
);
CREATE INDEX session_events_comment ON session_events (comment_id) WHERE comment_id IS NOT NULL;

-- One helpful mark per person and comment; the count on the comment is kept with it.
CREATE TABLE helpful_marks (
    comment_id  bigint NOT NULL REFERENCES comments (id),
    user_id     text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (comment_id, user_id)
);

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
    changed     boolean NOT NULL, -- false: it was already so; nothing else was written
    author_id   bigint REFERENCES authors (id)  -- the author a ban, timeout, flag or lift was about
);
CREATE INDEX audit_log_event ON audit_log (event_id, id);
CREATE INDEX audit_log_session ON audit_log (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX audit_log_comment ON audit_log (comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX audit_log_author ON audit_log (author_id) WHERE author_id IS NOT NULL;

-- Attendees' reports: one per person per comment. A moderator's decision resolves them.
CREATE TABLE reports (
    comment_id   bigint NOT NULL REFERENCES comments (id),
    reporter     text NOT NULL,   -- the reporting user's sub
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '' CHECK (char_length(detail) <= 500),
    at           timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    PRIMARY KEY (comment_id, reporter)
);

-- What moderators decided about an author in an event: flag (their posts wait for review),
-- timeout (no posting until ``until``, or for the event when NULL) or ban. Lifted ones stay.
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
