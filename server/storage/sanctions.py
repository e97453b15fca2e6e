"""Sanctions: moderators flag an author (their posts await review), time them out or ban them
from an event; optionally removing their comments in the event in the same action."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from ..auth import Identity
from ..errors import NotFound
from ..protocol import NewSanction, SanctionResult, SanctionView
from .base import (
    COMMENT,
    SESSION,
    SESSION_FROM,
    SessionRecord,
    audit_event,
    author_view,
    next_seq,
)
from .comments import resolve_reports
from .review import ReviewStore

SANCTION = """x.id, e.slug AS event, x.kind, x.until, x.reason, x.created_by, x.created_at,
    a.id AS author_id, a.name, a.profession, a.city, a.region, a.country, a.external_id"""
SANCTION_FROM = """sanctions x JOIN events e ON e.id = x.event_id
    JOIN authors a ON a.id = x.author_id"""
IN_FORCE = "x.lifted_at IS NULL AND (x.until IS NULL OR x.until > now())"
# Sanctions that replace each other: a new timeout or ban ends the one in force; flags are apart.
FAMILY = {"flag": ("flag",), "timeout": ("timeout", "ban"), "ban": ("timeout", "ban")}


@dataclass
class SanctionOutcome:
    """What a sanction changed, for the caller to publish once it is committed."""

    result: SanctionResult
    author_sub: str
    events: list[tuple[SessionRecord, bytes]] = field(default_factory=list)
    dropped: list[tuple[str, int, str]] = field(default_factory=list)
    """(session slug, comment id, new status) of what left the review queue or the board."""


class SanctionStore(ReviewStore):
    async def sanction(
        self, event: str, author_id: int, new: NewSanction, who: Identity
    ) -> SanctionOutcome:
        """Flag, time out or ban an author in an event, in one transaction with what follows
        from it: their posts awaiting review are refused (timeout, ban), and with
        ``remove_comments`` their comments in the event are removed, each with its event in
        its session's log. Audited."""
        by = f"{who.name or 'moderator'} ({who.sub})"
        async with self._connection() as conn, conn.transaction():
            event_id = await self._event_id(conn, event)
            author = await conn.fetchrow(
                "SELECT external_id, name FROM authors WHERE id = $1", author_id
            )
            if author is None:
                raise NotFound("unknown_author", f"no author has id {author_id}")
            # Sessions first, in id order, like every writer: no deadlock with other writers.
            sessions = await self._lock_sessions(conn, event_id) if new.remove_comments else []
            await conn.execute(
                f"""UPDATE sanctions x SET lifted_at = now(), lifted_by = $4
                    WHERE x.event_id = $1 AND x.author_id = $2 AND x.kind = ANY($3::text[])
                      AND {IN_FORCE}""",
                event_id,
                author_id,
                list(FAMILY[new.kind]),
                by + " (replaced)",
            )
            sanction_id = await conn.fetchval(
                """INSERT INTO sanctions (event_id, author_id, kind, until, reason, created_by)
                   VALUES ($1, $2, $3,
                           CASE WHEN $4::int IS NULL THEN NULL
                                ELSE now() + make_interval(mins => $4::int) END, $5, $6)
                   RETURNING id""",
                event_id,
                author_id,
                new.kind,
                new.minutes if new.kind == "timeout" else None,
                new.reason,
                by,
            )
            length = f"{new.minutes} min" if new.minutes and new.kind == "timeout" else "event"
            note = f"{author['name'] or 'author'} #{author_id}, {length}: {new.reason}"
            await audit_event(
                conn, event_id, who, new.kind, note, True, author_id=author_id
            )  # fmt: skip
            outcome = SanctionOutcome(
                result=SanctionResult(
                    sanction=await self._sanction(conn, sanction_id), removed=[], refused=[]
                ),
                author_sub=author["external_id"],
            )
            if new.kind != "flag":
                await self._refuse_pending(conn, event_id, author_id, new, by, who, outcome)
            for session in sessions:
                await self._remove_all(conn, session, author_id, new.reason, by, who, outcome)
        return outcome

    async def _refuse_pending(
        self,
        conn: asyncpg.Connection,
        event_id: int,
        author_id: int,
        new: NewSanction,
        by: str,
        who: Identity,
        outcome: SanctionOutcome,
    ) -> None:
        rows = await conn.fetch(
            """UPDATE comments c SET status = 'rejected', reviewed_by = $3, reviewed_at = now(),
                   hold_reason = $4
               FROM sessions s
               WHERE s.id = c.session_id AND s.event_id = $1 AND c.author_id = $2
                 AND c.status = 'held'
               RETURNING c.id, s.slug, s.id AS session_id""",
            event_id,
            author_id,
            by,
            "banned" if new.kind == "ban" else "timed out",
        )
        for row in rows:
            outcome.result.refused.append(row["id"])
            outcome.dropped.append((row["slug"], row["id"], "rejected"))
            await audit_event(
                conn, event_id, who, "reject", new.reason, True,
                session_id=row["session_id"], comment_id=row["id"], author_id=author_id,
            )  # fmt: skip

    async def _remove_all(
        self,
        conn: asyncpg.Connection,
        session: SessionRecord,
        author_id: int,
        reason: str,
        by: str,
        who: Identity,
        outcome: SanctionOutcome,
    ) -> None:
        """Remove the author's published comments in ``session``, one event each."""
        ids = await conn.fetch(
            """SELECT id FROM comments WHERE session_id = $1 AND author_id = $2
                 AND status = 'published' ORDER BY id""",
            session.id,
            author_id,
        )
        for (comment_id,) in ids:
            seq = await next_seq(conn, session, accepting=False)
            row = await conn.fetchrow(
                f"""WITH c AS (
                        UPDATE comments SET status = 'removed', removed_at = now(),
                            removed_by = $2, open_reports = 0
                        WHERE id = $1 RETURNING *)
                    SELECT {COMMENT} FROM c JOIN authors a ON a.id = c.author_id""",
                comment_id,
                by,
            )
            _, event = await self._comment_event(conn, session, "comment.removed", seq, row)
            await resolve_reports(conn, [comment_id])
            await audit_event(
                conn, session.event_id, who, "remove", reason or "remove all", True,
                session_id=session.id, comment_id=comment_id, author_id=author_id,
            )  # fmt: skip
            outcome.result.removed.append(comment_id)
            outcome.dropped.append((session.slug, comment_id, "removed"))
            outcome.events.append((session, event))

    async def lift(self, event: str, author_id: int, who: Identity) -> tuple[list[str], str]:
        """Lift every sanction in force on the author in the event; audited. Returns the kinds
        lifted, and the author's sub."""
        by = f"{who.name or 'moderator'} ({who.sub})"
        async with self._connection() as conn, conn.transaction():
            event_id = await self._event_id(conn, event)
            sub = await conn.fetchval("SELECT external_id FROM authors WHERE id = $1", author_id)
            if sub is None:
                raise NotFound("unknown_author", f"no author has id {author_id}")
            lifted = await conn.fetch(
                f"""UPDATE sanctions x SET lifted_at = now(), lifted_by = $3
                    WHERE x.event_id = $1 AND x.author_id = $2 AND {IN_FORCE} RETURNING kind""",
                event_id,
                author_id,
                by,
            )
            kinds = ", ".join(sorted(r["kind"] for r in lifted)) or "nothing in force"
            await audit_event(
                conn, event_id, who, "lift", f"#{author_id}: {kinds}", bool(lifted),
                author_id=author_id,
            )  # fmt: skip
        return [r["kind"] for r in lifted], sub

    async def sanctions(self, event: str) -> list[SanctionView]:
        """Sanctions in force in the event, newest first."""
        async with self._connection() as conn:
            await self._event_id(conn, event)
            rows = await conn.fetch(
                f"""SELECT {SANCTION} FROM {SANCTION_FROM}
                    WHERE e.slug = $1 AND {IN_FORCE} ORDER BY x.id DESC""",
                event,
            )
        return [sanction_view(r) for r in rows]

    async def posting_sanction(self, event_id: int, sub: str) -> SanctionView | None:
        """The ban, or else the longest timeout, in force for ``sub`` in the event: what their
        board shows instead of the form."""
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"""SELECT {SANCTION} FROM {SANCTION_FROM}
                    WHERE x.event_id = $1 AND a.external_id = $2 AND x.kind <> 'flag'
                      AND {IN_FORCE}
                    ORDER BY (x.kind = 'ban') DESC, x.until DESC NULLS FIRST LIMIT 1""",
                event_id,
                sub,
            )
        return sanction_view(row) if row is not None else None

    async def _sanction(self, conn: asyncpg.Connection, sanction_id: int) -> SanctionView:
        row = await conn.fetchrow(
            f"SELECT {SANCTION} FROM {SANCTION_FROM} WHERE x.id = $1", sanction_id
        )
        assert row is not None
        return sanction_view(row)

    async def _event_id(self, conn: asyncpg.Connection, event: str) -> int:
        found: int | None = await conn.fetchval("SELECT id FROM events WHERE slug = $1", event)
        if found is None:
            raise NotFound("unknown_event", f"no event has slug {event!r}")
        return found

    async def _lock_sessions(self, conn: asyncpg.Connection, event_id: int) -> list[SessionRecord]:
        rows = await conn.fetch(
            f"""SELECT {SESSION} FROM {SESSION_FROM} WHERE s.event_id = $1 ORDER BY s.id
                FOR NO KEY UPDATE OF s""",
            event_id,
        )
        return [SessionRecord(**dict(r)) for r in rows]


def sanction_view(row: asyncpg.Record) -> SanctionView:
    return SanctionView(
        id=row["id"],
        event=row["event"],
        author=author_view(row),
        kind=row["kind"],
        until=row["until"],
        reason=row["reason"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )
