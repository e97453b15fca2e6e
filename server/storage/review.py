"""The review queue: posts held by the community rules, by pre-moderation or by attendees'
reports, and published comments that attendees reported; approved (published live, in their
place in the thread, or kept) or rejected (refused, or removed) by moderators."""

from __future__ import annotations

import asyncpg

from ..auth import Identity
from ..errors import BadRequest, Conflict
from ..protocol import PUBLIC_STATES, CommentView, QueueItem, ReportResult, ReviewResult
from .base import (
    COMMENT,
    COMMENT_FROM,
    SessionRecord,
    Unchanged,
    audit,
    comment_view,
    next_seq,
    own_view,
)
from .comments import CommentStore, resolve_reports

# A queue item: the comment, its session's slug, and the reasons of its open reports.
QUEUE_ITEM = f"""s.slug AS session_slug, {COMMENT},
    coalesce((SELECT array_agg(DISTINCT r.reason ORDER BY r.reason) FROM reports r
              WHERE r.comment_id = c.id AND r.resolved_at IS NULL), '{{}}') AS report_reasons"""
QUEUE_FROM = f"{COMMENT_FROM} JOIN sessions s ON s.id = c.session_id"
IN_QUEUE = "(c.status = 'held' OR (c.status = 'published' AND c.open_reports > 0))"


class ReviewStore(CommentStore):
    """The review queue: held posts and reported comments, approved or rejected."""

    async def queue(self, event: str) -> list[QueueItem]:
        """The event's queue: crises first, then oldest first."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"""SELECT {QUEUE_ITEM} FROM {QUEUE_FROM} JOIN events e ON e.id = s.event_id
                    WHERE e.slug = $1 AND {IN_QUEUE}
                    ORDER BY (c.status = 'held' AND c.hold_reason = 'crisis') DESC, c.id""",
                event,
            )
        return [queue_item(r) for r in rows]

    async def queue_item(self, comment_id: int) -> QueueItem:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {QUEUE_ITEM} FROM {QUEUE_FROM} WHERE c.id = $1", comment_id
            )
        assert row is not None
        return queue_item(row)

    async def pending(self, session: SessionRecord, who: Identity) -> list[CommentView]:
        """The caller's posts in the session that no one else sees: held or rejected."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"""SELECT {COMMENT} FROM {COMMENT_FROM}
                    WHERE c.session_id = $1 AND a.external_id = $2
                      AND c.status IN ('held', 'rejected')
                    ORDER BY c.id""",
                session.id,
                who.sub,
            )
        return [own_view(r, session) for r in rows]

    async def report(
        self, session: SessionRecord, comment_id: int, who: Identity, reason: str, detail: str
    ) -> tuple[ReportResult, bytes | None, str]:
        """Count ``who``'s report of a published comment once. When the open reports reach the
        event's threshold, the comment is held (``reported``): every screen drops it (a
        ``comment.held`` event) until a moderator decides. Returns the result, that event, and
        the comment author's sub."""
        async with self._connection() as conn, conn.transaction():
            # Every writer of a session locks its row first (see the package's docstring).
            await conn.execute("SELECT 1 FROM sessions WHERE id = $1 FOR NO KEY UPDATE", session.id)
            current = await self._comment(conn, comment_id)
            if current["session_id"] != session.id or current["status"] not in PUBLIC_STATES:
                raise Conflict("not_published", f"comment {comment_id} is {current['status']}")
            if current["external_id"] == who.sub:
                raise BadRequest("own_comment", "you cannot report your own comment")
            added = await conn.fetchval(
                """INSERT INTO reports (comment_id, reporter, reason, detail)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (comment_id, reporter) DO UPDATE
                       SET reason = EXCLUDED.reason, detail = EXCLUDED.detail, at = now(),
                           resolved_at = NULL
                       WHERE reports.resolved_at IS NOT NULL  -- a new report after a decision
                   RETURNING true""",
                comment_id,
                who.sub,
                reason,
                detail,
            )
            if not added:
                result = ReportResult(comment_id, False, current["open_reports"], False)
                return result, None, current["external_id"]
            count: int = await conn.fetchval(
                """UPDATE comments SET open_reports = open_reports + 1 WHERE id = $1
                   RETURNING open_reports""",
                comment_id,
            )
            threshold = session.report_threshold
            if threshold == 0 or count < threshold:
                return ReportResult(comment_id, True, count, False), None, current["external_id"]
            seq = await next_seq(conn, session, accepting=False)
            row = await conn.fetchrow(
                f"""WITH c AS (
                        UPDATE comments SET status = 'held', hold_reason = 'reported',
                            hold_match = $2
                        WHERE id = $1 RETURNING *)
                    SELECT {COMMENT} FROM c JOIN authors a ON a.id = c.author_id""",
                comment_id,
                f"{count} reports",
            )
            _, event = await self._comment_event(conn, session, "comment.held", seq, row)
        return ReportResult(comment_id, True, count, True), event, current["external_id"]

    async def review(
        self,
        session: SessionRecord,
        comment_id: int,
        approve: bool,
        moderator: Identity,
        reason: str = "",
    ) -> tuple[ReviewResult, bytes | None, str]:
        """Decide a queue item. A held post: approve publishes it (with its number and a
        ``comment.approved`` event), reject refuses it. A reported published comment: approve
        keeps it (its reports are resolved), reject removes it (``comment.removed``).
        Conditional: of two moderators acting on one item, the first wins and the second is
        told who did (changed false). Audited either way. Also returns the author's sub."""
        action = "approve" if approve else "reject"
        async with self._connection() as conn:
            try:
                async with conn.transaction():
                    row, event, seq = await self._decide(
                        conn, session, comment_id, approve, moderator, reason
                    )
                    await resolve_reports(conn, [comment_id])
                    await audit(conn, session, moderator, action, comment_id, reason, True)
            except Unchanged:
                current = await self._comment(conn, comment_id)
                await audit(conn, session, moderator, action, comment_id, reason, False)
                return review_result(current, session, None, False), None, current["external_id"]
        return review_result(row, session, seq, True), event, row["external_id"]

    async def _decide(
        self,
        conn: asyncpg.Connection,
        session: SessionRecord,
        comment_id: int,
        approve: bool,
        moderator: Identity,
        reason: str,
    ) -> tuple[asyncpg.Record, bytes | None, int | None]:
        """The change of :meth:`review`, in its transaction; :class:`Unchanged` when the item
        is no longer in the queue."""
        by = f"{moderator.name or 'moderator'} ({moderator.sub})"
        current = await conn.fetchrow(
            "SELECT status, open_reports FROM comments WHERE id = $1 AND session_id = $2",
            comment_id,
            session.id,
        )
        if current is None:
            raise Unchanged(None)
        held = current["status"] == "held"
        if not held and not (current["status"] == "published" and current["open_reports"] > 0):
            raise Unchanged(None)
        if held:
            status, kind = ("published", "comment.approved") if approve else ("rejected", None)
        else:
            status, kind = ("published", None) if approve else ("removed", "comment.removed")
        seq = await next_seq(conn, session, accepting=False) if kind else None
        row = await conn.fetchrow(
            f"""WITH c AS (
                    UPDATE comments SET status = $2, reviewed_by = $3, reviewed_at = now(),
                        open_reports = 0,
                        hold_reason = CASE WHEN $2 = 'rejected' AND $5 <> ''
                                           THEN $5 ELSE hold_reason END,
                        removed_at = CASE WHEN $2 = 'removed' THEN now() ELSE removed_at END,
                        removed_by = CASE WHEN $2 = 'removed' THEN $3 ELSE removed_by END
                    WHERE id = $1 AND session_id = $4 AND status = $6
                      AND (status = 'held' OR open_reports > 0)
                    RETURNING *)
                SELECT {COMMENT} FROM c JOIN authors a ON a.id = c.author_id""",
            comment_id,
            status,
            by,
            session.id,
            reason,
            current["status"],
        )
        if row is None:
            raise Unchanged(None)
        event = None
        if kind is not None and seq is not None:
            _, event = await self._comment_event(conn, session, kind, seq, row)
        return row, event, seq


def queue_item(row: asyncpg.Record) -> QueueItem:
    held = row["status"] == "held"
    return QueueItem(
        session=row["session_slug"],
        comment=comment_view(row, row["session_slug"], redact=False),
        reason=(row["hold_reason"] or "held") if held else "reported",
        match=row["hold_match"] if held else None,
        reports=row["open_reports"],
        report_reasons=list(row["report_reasons"]),
    )


def review_result(
    row: asyncpg.Record, session: SessionRecord, seq: int | None, changed: bool
) -> ReviewResult:
    """Moderators see what they review in full, except what a moderator removed."""
    visible = row["status"] in ("published", "held", "rejected")
    return ReviewResult(
        comment=comment_view(row, session.slug, redact=not visible),
        changed=changed,
        reviewed_by=row["reviewed_by"] or row["removed_by"],
        reviewed_at=row["reviewed_at"] or row["removed_at"],
        seq=seq,
    )
