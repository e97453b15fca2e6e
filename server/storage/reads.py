"""Reading a board: pages of threads, more replies of a thread, and the event log for replays."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ..protocol import Event, Page, RepliesPage, ReplyCount, ThreadView, encode_event
from .base import (
    COMMENT,
    COMMENT_FROM,
    PUBLIC,
    SHOWN,
    SessionRecord,
    StoreBase,
    ancestors,
    comment_view,
    reply_counts,
    sql,
)


class ReadStore(StoreBase):
    # --- Reading ---------------------------------------------------------------------------------

    async def page(
        self,
        session: SessionRecord,
        *,
        before: int | None,
        after: int | None,
        limit: int,
        replies: int,
    ) -> Page:
        """Top-level comments newest first, keyset-paged by number, each with its first
        ``replies`` replies. Read in one snapshot with the head, so a feed opened with
        ``since=head`` continues exactly where the page ends."""
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            current = await self._session(conn, "s.id = $1", session.id)
            if after is not None:
                rows = await conn.fetch(
                    sql(f"""SELECT {COMMENT} FROM {COMMENT_FROM}
                        WHERE c.session_id = $2 AND c.parent_id IS NULL AND c.number > $3
                          AND {SHOWN} ORDER BY c.number ASC LIMIT $4"""),
                    PUBLIC,
                    session.id,
                    after,
                    limit + 1,
                )
                more_newer, rows = len(rows) > limit, list(reversed(rows[:limit]))
                more_older = bool(rows)
            else:
                rows = await conn.fetch(
                    sql(f"""SELECT {COMMENT} FROM {COMMENT_FROM}
                        WHERE c.session_id = $2 AND c.parent_id IS NULL
                          AND c.number < coalesce($3, 2147483647)
                          AND {SHOWN} ORDER BY c.number DESC LIMIT $4"""),
                    PUBLIC,
                    session.id,
                    before,
                    limit + 1,
                )
                more_older, rows = len(rows) > limit, rows[:limit]
                more_newer = before is not None and bool(rows)
            threads = await self._threads(conn, session.slug, rows, replies)
        return Page(
            threads=threads,
            older=str(rows[-1]["number"]) if more_older and rows else None,
            newer=str(rows[0]["number"]) if more_newer and rows else None,
            total=current.comment_count,
            head=current.last_seq,
        )

    async def _threads(
        self, conn: asyncpg.Connection, slug: str, tops: Sequence[asyncpg.Record], limit: int
    ) -> list[ThreadView]:
        ids = [row["id"] for row in tops if row["reply_count"] > 0]
        by_root: dict[int, list[asyncpg.Record]] = {}
        if ids:
            rows = await conn.fetch(
                sql(f"""SELECT {COMMENT} FROM unnest($2::bigint[]) AS r(root)
                    CROSS JOIN LATERAL (
                        SELECT * FROM comments c WHERE c.root_id = r.root AND {SHOWN}
                        ORDER BY c.id LIMIT $3) c
                    JOIN authors a ON a.id = c.author_id
                    ORDER BY c.id"""),
                PUBLIC,
                ids,
                limit + 1,
            )
            for row in rows:
                by_root.setdefault(row["root_id"], []).append(row)
        threads = []
        for top in tops:
            found = by_root.get(top["id"], [])
            more = len(found) > limit
            found = found[:limit]
            threads.append(
                ThreadView(
                    comment=comment_view(top, slug),
                    replies=[comment_view(r, slug) for r in found],
                    replies_next=str(found[-1]["id"]) if more else None,
                )
            )
        return threads

    async def replies(
        self, session: SessionRecord, root_id: int, after: int | None, limit: int
    ) -> RepliesPage:
        async with self._connection() as conn:
            rows = await conn.fetch(
                sql(f"""SELECT {COMMENT} FROM {COMMENT_FROM}
                    WHERE c.root_id = $2 AND c.id > coalesce($3, 0) AND {SHOWN}
                    ORDER BY c.id LIMIT $4"""),
                PUBLIC,
                root_id,
                after,
                limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return RepliesPage(
            replies=[comment_view(r, session.slug) for r in rows],
            next=str(rows[-1]["id"]) if more else None,
        )

    async def read_events(self, session: SessionRecord, after: int, upto: int) -> list[bytes]:
        """Encoded events ``after < seq <= upto``, in order, each showing the current (redacted)
        state of its comment and the session's current counts."""
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            current = await self._session(conn, "s.id = $1", session.id)
            rows = await conn.fetch(
                f"""SELECT e.seq, e.kind, e.at, {COMMENT}
                    FROM session_events e
                    LEFT JOIN comments c ON c.id = e.comment_id
                    LEFT JOIN authors a ON a.id = c.author_id
                    WHERE e.session_id = $1 AND e.seq > $2 AND e.seq <= $3
                    ORDER BY e.seq""",
                session.id,
                after,
                upto,
            )
            found = await ancestors(conn, {r["parent_id"] for r in rows} - {None})
        view = current.view()
        events = []
        for row in rows:
            comment = session_view = None
            counts: list[ReplyCount] = []
            if row["kind"].startswith("comment."):
                comment = comment_view(row, session.slug)
                counts = reply_counts(row["parent_id"], found)
            else:
                session_view = view
            events.append(
                encode_event(
                    Event(
                        seq=row["seq"],
                        kind=row["kind"],
                        at=row["at"],
                        total=current.comment_count,
                        comment=comment,
                        reply_counts=counts,
                        session=session_view,
                    )
                )
            )
        return events
