"""The review queue: posts held by the community rules or by pre-moderation, approved (published
live, in their place in the thread) or rejected by moderators."""

from __future__ import annotations

import asyncpg

from ..auth import Identity
from ..protocol import ReviewResult
from .base import COMMENT, COMMENT_FROM, SessionRecord, Unchanged, audit, comment_view, next_seq
from .comments import CommentStore


class ReviewStore(CommentStore):
    """The review queue: held posts, approved (published live, in their place) or rejected."""

    async def queue(self, event: str) -> list[tuple[str, asyncpg.Record]]:
        """Held posts of the event: crises first, then oldest first."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"""SELECT s.slug AS session_slug, {COMMENT} FROM {COMMENT_FROM}
                    JOIN sessions s ON s.id = c.session_id JOIN events e ON e.id = s.event_id
                    WHERE e.slug = $1 AND c.status = 'held'
                    ORDER BY (c.hold_reason = 'crisis') DESC, c.id""",
                event,
            )
        return [(r["session_slug"], r) for r in rows]

    async def review(
        self,
        session: SessionRecord,
        comment_id: int,
        approve: bool,
        moderator: Identity,
        reason: str = "",
    ) -> tuple[ReviewResult, bytes | None, str]:
        """Approve (publish, with its number and a ``comment.approved`` event) or reject a held
        post. Conditional: of two moderators acting on one post, the first wins and the second
        is told who did (changed false). Audited either way. Also returns the author's sub."""
        status = "published" if approve else "rejected"
        action = "approve" if approve else "reject"
        by = f"{moderator.name or 'moderator'} ({moderator.sub})"
        async with self._connection() as conn:
            try:
                async with conn.transaction():
                    seq = await next_seq(conn, session, accepting=False) if approve else None
                    row = await conn.fetchrow(
                        f"""WITH c AS (
                                UPDATE comments SET status = $2, reviewed_by = $3,
                                    reviewed_at = now(),
                                    hold_reason = CASE WHEN $2 = 'rejected' AND $5 <> ''
                                                       THEN $5 ELSE hold_reason END
                                WHERE id = $1 AND session_id = $4 AND status = 'held' RETURNING *)
                            SELECT {COMMENT} FROM c JOIN authors a ON a.id = c.author_id""",
                        comment_id,
                        status,
                        by,
                        session.id,
                        reason,
                    )
                    if row is None:
                        raise Unchanged(None)
                    event = None
                    if seq is not None:
                        _, event = await self._comment_event(
                            conn, session, "comment.approved", seq, row
                        )
                    await audit(conn, session, moderator, action, comment_id, reason, True)
            except Unchanged:
                current = await self._comment(conn, comment_id)
                await audit(conn, session, moderator, action, comment_id, reason, False)
                return review_result(current, session, None, False), None, current["external_id"]
        return review_result(row, session, seq, True), event, row["external_id"]


def review_result(
    row: asyncpg.Record, session: SessionRecord, seq: int | None, changed: bool
) -> ReviewResult:
    """Moderators see what they review in full, except what a moderator removed."""
    visible = row["status"] in ("published", "held", "rejected")
    return ReviewResult(
        comment=comment_view(row, session.slug, redact=not visible),
        changed=changed,
        reviewed_by=row["reviewed_by"],
        reviewed_at=row["reviewed_at"],
        seq=seq,
    )
