"""Comments: posting (idempotent by client key), editing, removing and restoring."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from ..auth import Identity
from ..errors import BackchannelError, Conflict, Forbidden, NotFound
from ..protocol import (
    PUBLIC_STATES,
    CommentView,
    EditResult,
    Event,
    HelpfulResult,
    ModerationResult,
    encode_event,
)
from .base import (
    AUTHOR_CACHE_SIZE,
    COMMENT,
    COMMENT_FROM,
    REAPPEARING,
    SESSION,
    SESSION_FROM,
    Hold,
    SessionRecord,
    Standing,
    StoreBase,
    Unchanged,
    ancestors,
    audit,
    author_key,
    comment_view,
    helpful_counts,
    hidden_ancestors,
    next_seq,
    own_view,
    reply_counts,
    standing,
)
from .posting import Admit, Post, PostQueue, Written, write_batch

log = logging.getLogger("backchannel.store")

EDIT_WINDOW_SECONDS = 300
AUTHOR_CACHE_SECONDS = 60.0


class CommentStore(StoreBase):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self._posts = PostQueue(self)

    async def close(self) -> None:
        await self._posts.close()
        await super().close()

    # --- Authors ---------------------------------------------------------------------------------

    def known_author(self, who: Identity) -> int | None:
        """The author's id if this process wrote these very details of theirs lately."""
        cached = self._authors.get(author_key(who))
        if cached is None or cached[1] <= time.monotonic():
            return None
        self._authors.move_to_end(author_key(who))
        return cached[0]

    def _remember(self, who: Identity, author_id: int) -> None:
        # Looked up again after a while: another process (or `backchannel forget`, or
        # retention) may have changed the row since.
        key = author_key(who)
        self._authors[key] = (author_id, time.monotonic() + AUTHOR_CACHE_SECONDS)
        self._authors.move_to_end(key)
        if len(self._authors) > AUTHOR_CACHE_SIZE:
            self._authors.popitem(last=False)

    async def standing_of(self, session: SessionRecord, who: Identity) -> Standing | None:
        """``who``'s standing in the session's event; None if they never posted."""
        async with self._connection() as conn:
            found = await conn.fetchval("SELECT id FROM authors WHERE external_id = $1", who.sub)
            if found is None:
                return None
            return await standing(conn, session, found, require_open=False)

    async def author_of(self, who: Identity) -> int | None:
        async with self._connection() as conn:
            found: int | None = await conn.fetchval(
                "SELECT id FROM authors WHERE external_id = $1", who.sub
            )
            return found

    # --- Comments --------------------------------------------------------------------------------

    async def post(
        self,
        session: SessionRecord,
        who: Identity,
        body: str,
        parent_id: int | None,
        client_key: str | None,
        *,
        question: bool = False,
        hold: Hold | None = None,
        at: datetime | None = None,
        admit: Admit | None = None,
    ) -> Written:
        """Store a comment (``at``: its time, when importing) and log its event; or, with
        ``hold``, store it held for review, seen by no one but its author and the moderators
        (no event). ``admit`` judges the author's standing (sanctions, slow mode) under the
        session's lock: it may refuse (raise) or hold the post. A retry with a ``client_key``
        already used by this author in this session returns the stored comment and no event.
        Written with the session's other waiting posts (:mod:`.posting`); a refused post writes
        nothing, its author's details included."""
        post = Post(session, who, body, parent_id, client_key, question, hold, at, admit)
        result, event = await self._posts.submit(post)
        comment = result.comment
        if result.seq is not None:
            log.info(
                "session %s: comment.created comment %d (seq %d)",
                session.slug,
                comment.id,
                result.seq,
            )
        elif result.created:
            log.info(
                "session %s: comment %d held (%s)", session.slug, comment.id, comment.hold_reason
            )
        return result, event

    async def write_posts(self, batch: list[Post]) -> list[Written | BackchannelError]:
        """Write a batch of posts in one transaction under the locks of their sessions (see
        :class:`PostQueue`); each outcome is the post's result or why it was refused."""
        async with self._connection() as conn:
            # The transaction and the sessions' locks in one round trip (simple query protocol;
            # the ids are integers), taken in id order as every batch takes them. The locks are
            # a statement of their own: the batch's statements take their snapshots after it,
            # and see what committed while this one waited.
            ids = ", ".join(str(i) for i in sorted({int(post.session.id) for post in batch}))
            # Generic plans: the batch's statements take arrays whose contents do not change
            # the best plan, and planning them anew would cost more than running them.
            await conn.execute(
                "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; "
                # INSERT_COMMENTS numbers and counts the batch's comments itself.
                "SET LOCAL backchannel.counted = 'on'; "
                f"SELECT 1 FROM sessions WHERE id IN ({ids}) ORDER BY id FOR NO KEY UPDATE"
            )
            try:
                outcomes, authors = await write_batch(self, conn, batch)
                await conn.execute("COMMIT")
            except BaseException:
                if not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                raise
        for post in batch:
            if post.who.sub in authors:
                self._remember(post.who, authors[post.who.sub])
        return outcomes

    async def comments(self, conn: asyncpg.Connection, ids: list[int]) -> dict[int, asyncpg.Record]:
        rows = await conn.fetch(
            f"SELECT {COMMENT} FROM {COMMENT_FROM} WHERE c.id = ANY($1::bigint[])", ids
        )
        return {row["id"]: row for row in rows}

    async def _comment_event(
        self,
        conn: asyncpg.Connection,
        session: SessionRecord,
        kind: str,
        seq: int,
        row: asyncpg.Record,
    ) -> tuple[CommentView, bytes]:
        """Log the event for a comment just written, and encode it with the counts it changed."""
        counts = await conn.fetchrow(
            """WITH e AS (INSERT INTO session_events (session_id, seq, kind, comment_id)
                          VALUES ($1, $2, $3, $4) RETURNING at)
               SELECT e.at, s.comment_count FROM e, sessions s WHERE s.id = $1""",
            session.id,
            seq,
            kind,
            row["id"],
        )
        assert counts is not None
        comment = comment_view(row, session.slug)
        found = await ancestors(conn, {row["parent_id"]} - {None})
        parents = []
        if kind in REAPPEARING and comment.status in PUBLIC_STATES and found:
            parents = await hidden_ancestors(conn, list(found), session.slug)
        event = Event(
            seq=seq,
            kind=kind,
            at=counts["at"],
            total=counts["comment_count"],
            comment=comment,
            reply_counts=reply_counts(row["parent_id"], found),
            parents=parents,
        )
        log.info("session %s: %s comment %d (seq %d)", session.slug, kind, row["id"], seq)
        return comment, encode_event(event)

    async def comment_session(self, comment_id: int) -> SessionRecord:
        async with self._connection() as conn:
            session = await conn.fetchrow(
                f"""SELECT {SESSION} FROM {SESSION_FROM}
                    WHERE s.id = (SELECT session_id FROM comments WHERE id = $1)""",
                comment_id,
            )
        if session is None:
            raise NotFound("unknown_comment", f"no comment has id {comment_id}")
        return SessionRecord(**dict(session))

    async def edit(
        self,
        session: SessionRecord,
        comment_id: int,
        who: Identity,
        body: str,
        hold: Hold | None = None,
    ) -> tuple[EditResult, bytes | None]:
        """Change one's own comment's text while the session takes posts, within
        ``EDIT_WINDOW_SECONDS`` of posting; the same text again changes nothing. With ``hold``
        (the rules hold the new text) it goes back to the review queue: every other screen
        sees it leave (``comment.held``, redacted)."""
        update = f"""UPDATE comments c SET body = $2, edited_at = now(),
                        status = CASE WHEN $4::text IS NULL THEN c.status ELSE 'held' END,
                        hold_reason = coalesce($4, c.hold_reason),
                        hold_match = coalesce($5, c.hold_match)
                    FROM authors a
                    WHERE c.id = $1 AND a.id = c.author_id AND a.external_id = $3
                      AND c.status = 'published' AND c.body <> $2
                      AND c.created_at > now() - interval '{EDIT_WINDOW_SECONDS} seconds'"""

        def refuse(current: asyncpg.Record) -> None:
            if current["external_id"] != who.sub:
                raise Forbidden("not_author", "only its author can edit a comment")
            age = datetime.now(UTC) - current["created_at"]
            if current["status"] in PUBLIC_STATES and age.total_seconds() > EDIT_WINDOW_SECONDS:
                raise Conflict(
                    "edit_window_closed",
                    f"comments can be edited for {EDIT_WINDOW_SECONDS // 60} minutes after posting",
                )

        kind = "comment.edited" if hold is None else "comment.held"
        args: list[object] = [body, who.sub, hold.reason if hold else None]
        args.append(hold.match if hold else None)
        result, event = await self._change(session, comment_id, kind, update, args, True, refuse)
        if hold is not None and result.changed:
            # The author still sees their text, awaiting review.
            async with self._connection() as conn:
                row = await self._comment(conn, comment_id)
            result = EditResult(own_view(row, session), True, result.seq)
        return result, event

    async def mark(
        self, session: SessionRecord, comment_id: int, mark: str, on: bool
    ) -> tuple[EditResult, bytes | None]:
        """Set or clear a presenter's mark (``highlighted`` or ``answered``); conditional, so
        asking for what is already so changes nothing."""
        column = {"highlighted": "highlighted_at", "answered": "answered_at"}[mark]
        update = f"""UPDATE comments c SET {column} = CASE WHEN $2 THEN now() END
                     WHERE c.id = $1 AND c.session_id = $3 AND c.status = 'published'
                       AND ({column} IS NOT NULL) <> $2"""
        return await self._change(
            session, comment_id, "comment.marked", update, [on, session.id], False, None
        )

    async def _change(
        self,
        session: SessionRecord,
        comment_id: int,
        kind: str,
        update: str,
        args: list[object],
        accepting: bool,
        refuse: Callable[[asyncpg.Record], None] | None,
    ) -> tuple[EditResult, bytes | None]:
        """Apply ``update`` (``$1`` is the comment id) to a published comment and log ``kind``.
        When it matches no row, ``refuse`` may say why; otherwise the comment is not published
        (409) or already as asked (changed false, nothing written)."""
        async with self._connection() as conn:
            try:
                async with conn.transaction():
                    seq = await next_seq(conn, session, accepting=accepting)
                    row = await conn.fetchrow(
                        f"WITH c AS ({update} RETURNING c.*) "
                        f"SELECT {COMMENT} FROM c JOIN authors a ON a.id = c.author_id",
                        comment_id,
                        *args,
                    )
                    if row is None:
                        raise Unchanged(None)
                    comment, event = await self._comment_event(conn, session, kind, seq, row)
                    return EditResult(comment=comment, changed=True, seq=seq), event
            except Unchanged:
                current = await self._comment(conn, comment_id)
                if refuse is not None:
                    refuse(current)
                if current["status"] not in PUBLIC_STATES:
                    raise Conflict(
                        "not_published", f"comment {comment_id} is {current['status']}"
                    ) from None
                return EditResult(comment_view(current, session.slug), False, None), None

    async def mark_helpful(
        self, session: SessionRecord, comment_id: int, who: Identity
    ) -> HelpfulResult:
        """Count ``who``'s helpful mark once. No event here: :mod:`server.tally` gathers the
        counts that moved into one ``helpful.counts`` event per second."""
        async with self._connection() as conn, conn.transaction():
            count = await conn.fetchval(
                """WITH m AS (
                       INSERT INTO helpful_marks (comment_id, user_id)
                       SELECT id, $2 FROM comments
                       WHERE id = $1 AND session_id = $3 AND status = 'published'
                       ON CONFLICT DO NOTHING RETURNING comment_id)
                   UPDATE comments SET helpful_count = helpful_count + 1
                   WHERE id = (SELECT comment_id FROM m) RETURNING helpful_count""",
                comment_id,
                who.sub,
                session.id,
            )
            if count is not None:
                return HelpfulResult(comment_id=comment_id, marked=True, helpful_count=count)
            current = await self._comment(conn, comment_id)
        if current["status"] not in PUBLIC_STATES:
            raise Conflict("not_published", f"comment {comment_id} is {current['status']}")
        return HelpfulResult(comment_id, marked=False, helpful_count=current["helpful_count"])

    async def helpful_event(self, session: SessionRecord, ids: list[int]) -> bytes:
        """Log one ``helpful.counts`` event with the current counts of ``ids``."""
        async with self._connection() as conn, conn.transaction():
            seq = await next_seq(conn, session, accepting=False)
            row = await conn.fetchrow(
                """WITH e AS (INSERT INTO session_events (session_id, seq, kind, data)
                              VALUES ($1, $2, 'helpful.counts', $3::jsonb) RETURNING at)
                   SELECT e.at, s.comment_count FROM e, sessions s WHERE s.id = $1""",
                session.id,
                seq,
                json.dumps({"ids": ids}),
            )
            counts = await helpful_counts(conn, ids)
        assert row is not None
        event = Event(
            seq=seq,
            kind="helpful.counts",
            at=row["at"],
            total=row["comment_count"],
            helpful=counts,
        )
        return encode_event(event)

    async def set_status(
        self,
        session: SessionRecord,
        comment_id: int,
        status: str,
        moderator: Identity,
        reason: str = "",
    ) -> tuple[ModerationResult, bytes | None, str]:
        """Remove (``removed``) or restore (``published``); conditional and idempotent: asking
        for the state the comment is in writes nothing and says who put it there and when. The
        action is audited either way. Also returns the author's ``sub``, to notify them."""
        kind = "comment.removed" if status == "removed" else "comment.restored"
        source = "published" if status == "removed" else "removed"
        by = f"{moderator.name or 'moderator'} ({moderator.sub})" if status == "removed" else None
        action = "remove" if status == "removed" else "restore"
        async with self._connection() as conn:
            try:
                async with conn.transaction():
                    seq = await next_seq(conn, session, accepting=False)
                    row = await conn.fetchrow(
                        f"""WITH c AS (
                                UPDATE comments SET status = $2,
                                    removed_at = CASE WHEN $2 = 'removed' THEN now() END,
                                    removed_by = $3, open_reports = 0
                                WHERE id = $1 AND session_id = $4 AND status = $5 RETURNING *)
                            SELECT {COMMENT} FROM c JOIN authors a ON a.id = c.author_id""",
                        comment_id,
                        status,
                        by,
                        session.id,
                        source,
                    )
                    if row is None:
                        raise Unchanged(None)
                    _, event = await self._comment_event(conn, session, kind, seq, row)
                    await resolve_reports(conn, [comment_id])
                    await audit(conn, session, moderator, action, comment_id, reason, True)
            except Unchanged:
                current = await self._comment(conn, comment_id)
                if current["status"] != status:
                    raise Conflict(
                        "not_allowed", f"comment {comment_id} is {current['status']}"
                    ) from None
                await audit(conn, session, moderator, action, comment_id, reason, False)
                return moderation(current, session, None), None, current["external_id"]
        return moderation(row, session, seq), event, row["external_id"]

    async def delete(
        self, session: SessionRecord, comment_id: int, who: Identity
    ) -> tuple[EditResult, bytes | None]:
        """Its author deletes a comment, at any time. One with replies stays as a placeholder
        ("Comment deleted by its author"); deleting it again changes nothing."""
        update = """UPDATE comments c SET status = 'deleted' FROM authors a
                    WHERE c.id = $1 AND a.id = c.author_id AND a.external_id = $2
                      AND c.status = 'published'"""

        def refuse(current: asyncpg.Record) -> None:
            if current["external_id"] != who.sub:
                raise Forbidden("not_author", "only its author can delete a comment")
            if current["status"] == "deleted":
                raise Unchanged(EditResult(comment_view(current, session.slug), False, None))

        try:
            return await self._change(
                session, comment_id, "comment.deleted", update, [who.sub], False, refuse
            )
        except Unchanged as unchanged:
            assert isinstance(unchanged.result, EditResult)
            return unchanged.result, None


async def resolve_reports(conn: asyncpg.Connection, comment_ids: list[int]) -> None:
    """A moderator decided about these comments: their open reports are dealt with."""
    await conn.execute(
        """UPDATE reports SET resolved_at = now()
           WHERE comment_id = ANY($1::bigint[]) AND resolved_at IS NULL""",
        comment_ids,
    )


def moderation(row: asyncpg.Record, session: SessionRecord, seq: int | None) -> ModerationResult:
    return ModerationResult(
        comment=comment_view(row, session.slug),
        changed=seq is not None,
        removed_by=row["removed_by"],
        removed_at=row["removed_at"],
        seq=seq,
    )
