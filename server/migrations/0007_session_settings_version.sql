-- Backchannel 0007: a version of what posting reads from a session and its event (state and
-- window, slow mode, pre-moderation, the event's word lists and support message). A process may
-- keep a session's record for as long as it likes: each batch of posts compares the version
-- the post was judged by with this one, under the session's lock, and a post judged by an
-- outdated record is judged again.
ALTER TABLE sessions ADD COLUMN settings_version integer NOT NULL DEFAULT 0;
