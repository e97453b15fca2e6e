"""Reading a board: pages of threads, more replies of a thread, and the event log for replays."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from ..protocol import (
    PUBLIC_STATES,
    AuditEntry,
    AuditLog,
    CommentView,
    Event,
    HelpfulCount,
    Location,
    Page,
    RepliesPage,
    SessionView,
    ThreadView,
    encode_event,
)
from .base import (
    COMMENT,
    COMMENT_FROM,
    PUBLIC,
    REAPPEARING,
    SHOWN,
    Ancestors,
    SessionRecord,
    StoreBase,
    ancestors,
    comment_view,
    helpful_counts,
    hidden_ancestors,
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
                f"""SELECT e.seq, e.kind, e.at, e.data, {COMMENT}
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
            hidden = await self._hidden_parents(conn, session, rows, found)
            helpful_ids = {i for r in rows if r["data"] for i in json.loads(r["data"])["ids"]}
            helpful = {h.id: h for h in await helpful_counts(conn, sorted(helpful_ids))}
        view = current.view()
        return [
            encode_event(
                _replayed(row, session, view, current.comment_count, found, helpful, hidden)
            )
            for row in rows
        ]

    async def _hidden_parents(
        self,
        conn: asyncpg.Connection,
        session: SessionRecord,
        rows: list[asyncpg.Record],
        found: Ancestors,
    ) -> dict[int, CommentView]:
        """The hidden ancestors of the replies that reappear in these events (``parents``)."""
        chains = {
            i
            for r in rows
            if r["kind"] in REAPPEARING and r["status"] in PUBLIC_STATES
            for i in chain(r["parent_id"], found)
        }
        if not chains:
            return {}
        return {c.id: c for c in await hidden_ancestors(conn, sorted(chains), session.slug)}

    async def locate(self, comment_id: int, page_size: int) -> Location:
        """Which page shows a comment: the one its thread's top-level comment is on, counting
        pages of ``page_size`` from the newest as the board does."""
        async with self._connection() as conn:
            row = await self._comment(conn, comment_id)
            root = row if row["root_id"] is None else await self._comment(conn, row["root_id"])
            slug = await conn.fetchval("SELECT slug FROM sessions WHERE id = $1", row["session_id"])
            newer = await conn.fetchval(
                sql(f"""SELECT count(*) FROM comments c
                    WHERE c.session_id = $2 AND c.parent_id IS NULL AND c.number > $3
                      AND {SHOWN}"""),
                PUBLIC,
                root["session_id"],
                root["number"],
            )
            start = newer // page_size * page_size
            before = None
            if start > 0:
                before = await conn.fetchval(
                    sql(f"""SELECT c.number FROM comments c
                        WHERE c.session_id = $2 AND c.parent_id IS NULL AND {SHOWN}
                        ORDER BY c.number DESC OFFSET $3 LIMIT 1"""),
                    PUBLIC,
                    root["session_id"],
                    start - 1,
                )
        return Location(
            comment=comment_view(row, slug),
            root_id=root["id"],
            before=None if before is None else str(before),
        )


def chain(parent_id: int | None, found: Ancestors) -> list[int]:
    """A comment's ancestors, nearest first."""
    ids = []
    while parent_id is not None and parent_id in found:
        ids.append(parent_id)
        parent_id = found[parent_id][0]
    return ids


def _replayed(
    row: asyncpg.Record,
    session: SessionRecord,
    view: SessionView,
    total: int,
    found: Ancestors,
    helpful: dict[int, HelpfulCount],
    hidden: dict[int, CommentView],
) -> Event:
    """An event of the log as a replay shows it: with the current state of what it is about."""
    kind = row["kind"]
    if kind.startswith("comment."):
        comment = comment_view(row, session.slug)
        parents = []
        if kind in REAPPEARING and comment.status in PUBLIC_STATES:
            ids = reversed(chain(row["parent_id"], found))  # outermost first
            parents = [hidden[i] for i in ids if i in hidden]
        return Event(
            seq=row["seq"], kind=kind, at=row["at"], total=total, comment=comment,
            reply_counts=reply_counts(row["parent_id"], found), parents=parents,
        )  # fmt: skip
    if kind == "helpful.counts":
        ids = json.loads(row["data"])["ids"]
        counts = [helpful[i] for i in ids if i in helpful]
        return Event(seq=row["seq"], kind=kind, at=row["at"], total=total, helpful=counts)
    return Event(seq=row["seq"], kind=kind, at=row["at"], total=total, session=view)


class ExportStore(StoreBase):
    async def audit_log(self, event: str) -> AuditLog:
        """Every moderator action in the event, oldest first."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                """SELECT l.at, s.slug AS session, l.actor, l.actor_name, l.role, l.action,
                          l.comment_id, l.author_id, l.reason, l.changed
                   FROM audit_log l JOIN events e ON e.id = l.event_id
                   LEFT JOIN sessions s ON s.id = l.session_id
                   WHERE e.slug = $1 ORDER BY l.id""",
                event,
            )
        return AuditLog(event=event, entries=[AuditEntry(**dict(r)) for r in rows])

    async def export(self, session: SessionRecord) -> list[CommentView]:
        """Every comment of the session, oldest first, as the board shows them (redacted when
        not public): the board's export for moderators and for moving boards between events."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {COMMENT} FROM {COMMENT_FROM} WHERE c.session_id = $1 ORDER BY c.id",
                session.id,
            )
        return [comment_view(r, session.slug) for r in rows]
