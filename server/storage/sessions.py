"""Events and sessions: creating them, reading them, opening, closing and changing sessions."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg
import msgspec

from ..auth import Identity
from ..errors import BadRequest, Conflict, NotFound
from ..protocol import (
    Event,
    EventInfo,
    EventRules,
    NewSession,
    SessionChange,
    SessionPatch,
    encode_event,
)
from .base import SYSTEM, SessionRecord, StoreBase, audit, audit_event

log = logging.getLogger("backchannel.store")


# Sessions kept in memory for posting (see ``session``); past this many, all are read afresh.
SESSION_CACHE_SIZE = 10_000


class SessionStore(StoreBase):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self._recent: dict[str, SessionRecord] = {}

    # --- Events and sessions ---------------------------------------------------------------------

    async def create_event(self, slug: str, title: str) -> EventInfo:
        async with self._connection() as conn:
            try:
                await conn.execute("INSERT INTO events (slug, title) VALUES ($1, $2)", slug, title)
            except asyncpg.UniqueViolationError:
                raise Conflict("event_exists", f"an event with slug {slug!r} exists") from None
        return EventInfo(slug=slug, title=title, sessions=[])

    async def event(self, slug: str) -> EventInfo:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                """SELECT e.slug, e.title, coalesce(array_agg(s.slug ORDER BY s.id)
                          FILTER (WHERE s.id IS NOT NULL), '{}') AS sessions
                   FROM events e LEFT JOIN sessions s ON s.event_id = e.id
                   WHERE e.slug = $1 GROUP BY e.id""",
                slug,
            )
        if row is None:
            raise NotFound("unknown_event", f"no event has slug {slug!r}")
        return EventInfo(slug=row["slug"], title=row["title"], sessions=list(row["sessions"]))

    async def create_session(self, event: str, new: NewSession) -> SessionRecord:
        if new.opens_at and new.closes_at and new.opens_at >= new.closes_at:
            raise BadRequest("bad_window", "opens_at must be before closes_at")
        async with self._connection() as conn:
            try:
                row = await conn.fetchrow(
                    """INSERT INTO sessions (event_id, slug, title, speakers, prompt, state,
                                             opens_at, closes_at, premoderated,
                                             slow_mode_seconds, auto_slow_threshold,
                                             auto_slow_seconds, auto_slow_window)
                       SELECT id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
                       FROM events WHERE slug = $1
                       RETURNING id""",
                    event,
                    new.slug,
                    new.title,
                    new.speakers,
                    new.prompt,
                    new.state,
                    new.opens_at,
                    new.closes_at,
                    new.premoderated,
                    new.slow_mode_seconds,
                    new.auto_slow_threshold,
                    new.auto_slow_seconds,
                    new.auto_slow_window,
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(
                    "session_exists", f"a session with slug {new.slug!r} exists"
                ) from None
            if row is None:
                raise NotFound("unknown_event", f"no event has slug {event!r}")
        return await self.session(new.slug)

    async def session(self, slug: str, *, recent: bool = False) -> SessionRecord:
        """The session; with ``recent``, perhaps as this process read it a while ago, for
        posting: its counts are stale then, and its settings are checked by each batch of posts
        under the session's lock (a post judged by outdated ones is refused with
        :class:`SessionChanged`, to be judged again by a record read afresh)."""
        if recent and (kept := self._recent.get(slug)) is not None:
            return kept
        async with self._connection() as conn:
            record = await self._session(conn, "s.slug = $1", slug)
        if len(self._recent) >= SESSION_CACHE_SIZE:
            self._recent.clear()
        self._recent[slug] = record
        return record

    async def event_rules(self, event: str) -> EventRules:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                """SELECT banned_words, suspect_words, support_message, report_threshold
                   FROM events WHERE slug = $1""",
                event,
            )
        if row is None:
            raise NotFound("unknown_event", f"no event has slug {event!r}")
        return EventRules(**dict(row))

    async def set_event_rules(self, event: str, rules: EventRules, who: Identity) -> EventRules:
        """Change an event's word lists or support message (audited as ``rules``)."""
        fields = patch_fields(rules)
        if not fields:
            raise BadRequest("empty_patch", "nothing to change")
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
        async with self._connection() as conn, conn.transaction():
            found = await conn.fetchval(
                f"UPDATE events SET {sets} WHERE slug = $1 RETURNING id", event, *fields.values()
            )
            if found is None:
                raise NotFound("unknown_event", f"no event has slug {event!r}")
            # What posting reads from the event is checked by each batch as the sessions' own.
            await conn.execute(
                "UPDATE sessions SET settings_version = settings_version + 1 WHERE event_id = $1",
                found,
            )
            await audit_event(conn, found, who, "rules", describe(fields), True)
        self._recent.clear()
        return await self.event_rules(event)

    async def head(self, session_id: int) -> int:
        async with self._connection() as conn:
            head: int | None = await conn.fetchval(
                "SELECT last_seq FROM sessions WHERE id = $1", session_id
            )
        if head is None:  # deleted (retention) since the caller read it
            raise NotFound("unknown_session", f"no session has id {session_id}")
        return head

    async def set_state(
        self, session: SessionRecord, state: str, who: Identity, reason: str = ""
    ) -> tuple[SessionChange, bytes | None]:
        """Open or close; conditional, so setting the state it has changes nothing. Audited."""
        kind = "session.opened" if state == "open" else "session.closed"
        action = "open" if state == "open" else "close"
        return await self._change_session(
            session, kind, "state = $2", state, condition="state <> $2",
            audited=(who, action, reason),
        )  # fmt: skip

    async def update_session(
        self, session: SessionRecord, patch: SessionPatch, who: Identity
    ) -> tuple[SessionChange, bytes | None]:
        """Change a session's fields; audited (``slow_mode`` when it sets slow mode, else
        ``update``), with the patch's ``reason``."""
        fields = patch_fields(patch)
        reason = str(fields.pop("reason", ""))
        if not fields:
            raise BadRequest("empty_patch", "nothing to change")
        opens = patch.opens_at if "opens_at" in fields else session.opens_at
        closes = patch.closes_at if "closes_at" in fields else session.closes_at
        if isinstance(opens, datetime) and isinstance(closes, datetime) and opens >= closes:
            raise BadRequest("bad_window", "opens_at must be before closes_at")
        places = [f"${i}" for i in range(2, len(fields) + 2)]
        sets = ", ".join(f"{name} = {place}" for name, place in zip(fields, places, strict=True))
        # Conditional like every change: a patch that changes nothing writes nothing.
        differs = " OR ".join(
            f"{name} IS DISTINCT FROM {place}" for name, place in zip(fields, places, strict=True)
        )
        action = "slow_mode" if SLOW_MODE_FIELDS & fields.keys() else "update"
        return await self._change_session(
            session, "session.updated", sets, *fields.values(), condition=f"({differs})",
            audited=(who, action, reason or describe(fields)),
        )  # fmt: skip

    async def set_auto_slow(self) -> list[tuple[SessionRecord, bool, bytes]]:
        """Switch automatic slow mode on in open sessions whose posts per minute, over their
        last ``auto_slow_window`` seconds, exceed their threshold, and off where they have
        fallen below half of it (so that a rate hovering at the threshold does not flap), or
        the threshold was set to 0. Conditional: of several processes doing this at once, one
        logs each change. Audited as the service's own action."""
        recent = """(SELECT count(*) FROM comments c WHERE c.session_id = s.id
                     AND c.created_at > now() - make_interval(secs => s.auto_slow_window))"""
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"""SELECT s.id, s.slow_auto, s.auto_slow_threshold AS threshold,
                           {recent} * 60.0 / s.auto_slow_window AS per_minute
                    FROM sessions s
                    WHERE s.slow_auto
                       OR (s.auto_slow_threshold > 0 AND s.state = 'open' AND {recent} > 0)"""
            )
        changes = []
        for row in rows:
            threshold = row["threshold"]
            rate = float(row["per_minute"])
            if not row["slow_auto"] and rate > threshold:
                on = True
            elif row["slow_auto"] and (threshold == 0 or rate < threshold / 2):
                on = False
            else:
                continue
            async with self._connection() as conn:
                session = await self._session(conn, "s.id = $1", row["id"])
            reason = f"automatic: {rate:.0f} posts per minute (threshold {threshold})"
            _, event = await self._change_session(
                session, "session.updated", "slow_auto = $2", on, condition="slow_auto <> $2",
                audited=(SYSTEM, "slow_mode", reason),
            )  # fmt: skip
            if event is not None:
                changes.append((session, on, event))
        return changes

    async def _change_session(
        self,
        session: SessionRecord,
        kind: str,
        sets: str,
        *args: object,
        condition: str = "",
        audited: tuple[Identity, str, str] | None = None,
    ) -> tuple[SessionChange, bytes | None]:
        """Apply ``sets`` where ``condition`` holds and log ``kind``; with ``audited`` (who,
        action, reason), record the action in the same transaction, changed or not."""
        condition = condition or "true"
        async with self._connection() as conn, conn.transaction():
            seq = await conn.fetchval(
                f"""UPDATE sessions SET {sets}, last_seq = last_seq + 1, updated_at = now(),
                        settings_version = settings_version + 1
                    WHERE id = $1 AND {condition} RETURNING last_seq""",
                session.id,
                *args,
            )
            at = datetime.now(UTC)
            if seq is not None:
                at = await conn.fetchval(
                    """INSERT INTO session_events (session_id, seq, kind) VALUES ($1, $2, $3)
                       RETURNING at""",
                    session.id,
                    seq,
                    kind,
                )
            current = await self._session(conn, "s.id = $1", session.id)
            if audited is not None:
                who, action, reason = audited
                await audit(conn, session, who, action, None, reason, seq is not None)
        self._recent.pop(session.slug, None)
        view = current.view()
        if seq is None:
            return SessionChange(session=view, changed=False, seq=None), None
        event = Event(seq=seq, kind=kind, at=at, total=current.comment_count, session=view)
        log.info("session %s: %s (seq %d)", session.slug, kind, seq)
        return SessionChange(session=view, changed=True, seq=seq), encode_event(event)


SLOW_MODE_FIELDS = frozenset(
    {"slow_mode_seconds", "auto_slow_threshold", "auto_slow_seconds", "auto_slow_window"}
)


def describe(fields: dict[str, object]) -> str:
    """``slow_mode_seconds=30, title=...``: what a patch set, for the audit log."""
    return ", ".join(f"{name}={value}" for name, value in sorted(fields.items()))[:500]


def patch_fields(patch: SessionPatch | EventRules) -> dict[str, object]:
    return {
        f.name: getattr(patch, f.name)
        for f in msgspec.structs.fields(patch)
        if getattr(patch, f.name) is not msgspec.UNSET
    }
