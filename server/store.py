"""All SQL of Backchannel, and the only module that talks to PostgreSQL.

Every change a watcher can see is written together with its entry in ``session_events`` in one
transaction. Each such transaction starts by taking the next ``seq`` from the session's row
(``UPDATE sessions SET last_seq = last_seq + 1``), which also locks that row: seqs of a session
increase by exactly 1, commit order equals seq order, and because every writer locks the session
first, writers of one session cannot deadlock. A change that turns out to be a no-op (a retried
post, removing what is already removed) rolls back, seq included.

Methods return the change's event already encoded (``bytes``) for the hub to publish.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from .auth import Identity
from .errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from .protocol import (
    PUBLIC_STATES,
    AuthorView,
    CommentView,
    Event,
    EventInfo,
    ModerationResult,
    NewSession,
    Page,
    PostResult,
    RepliesPage,
    ReplyCount,
    SessionChange,
    SessionPatch,
    SessionView,
    ThreadView,
    encode_event,
)

log = logging.getLogger("backchannel.store")

_PUBLIC = list(PUBLIC_STATES)
_AUTHOR_CACHE_SIZE = 10_000

# A comment row as every reader needs it: the comment and its author.
_COMMENT = """
    c.id, c.session_id, c.parent_id, c.root_id, c.depth, c.number, c.status, c.body,
    c.reply_count, c.created_at, c.edited_at, c.removed_at, c.removed_by, c.author_id,
    a.name, a.profession, a.city, a.region, a.country, a.external_id
"""
_COMMENT_FROM = "comments c JOIN authors a ON a.id = c.author_id"
# Shown in pages: public comments, and hidden ones whose replies still need their place.
_SHOWN = "(c.status = ANY($PUBLIC) OR c.reply_count > 0)"

_SESSION = """
    s.id, s.event_id, e.slug AS event_slug, s.slug, s.title, s.speakers, s.prompt, s.state,
    s.opens_at, s.closes_at, s.last_seq, s.comment_count
"""
_SESSION_FROM = "sessions s JOIN events e ON e.id = s.event_id"
# The posting window, checked in the same statement that takes the seq.
_ACCEPTING = """s.state = 'open' AND (s.opens_at IS NULL OR s.opens_at <= now())
    AND (s.closes_at IS NULL OR now() < s.closes_at)"""

_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: int
    event_id: int
    event_slug: str
    slug: str
    title: str
    speakers: list[str]
    prompt: str
    state: str
    opens_at: datetime | None
    closes_at: datetime | None
    last_seq: int
    comment_count: int

    def view(self) -> SessionView:
        now = datetime.now(UTC)
        accepting = (
            self.state == "open"
            and (self.opens_at is None or self.opens_at <= now)
            and (self.closes_at is None or now < self.closes_at)
        )
        return SessionView(
            slug=self.slug,
            event=self.event_slug,
            title=self.title,
            speakers=self.speakers,
            prompt=self.prompt,
            state=self.state,  # type: ignore[arg-type]
            opens_at=self.opens_at,
            closes_at=self.closes_at,
            accepting=accepting,
            total=self.comment_count,
            head=self.last_seq,
            server_time=now,
        )


def comment_view(row: asyncpg.Record | dict[str, Any], session: str) -> CommentView:
    public = row["status"] in PUBLIC_STATES
    author = (
        AuthorView(
            id=row["author_id"],
            name=row["name"],
            profession=row["profession"],
            city=row["city"],
            region=row["region"],
            country=row["country"],
        )
        if public
        else None
    )
    return CommentView(
        id=row["id"],
        session=session,
        parent_id=row["parent_id"],
        root_id=row["root_id"],
        depth=row["depth"],
        number=row["number"],
        status=row["status"],
        body=row["body"] if public else None,
        author=author,
        reply_count=row["reply_count"],
        created_at=row["created_at"],
        edited_at=row["edited_at"],
    )


def _sql(query: str) -> str:
    return query.replace("$PUBLIC", "$1::text[]")


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._authors: OrderedDict[tuple[str, ...], int] = OrderedDict()

    @classmethod
    async def connect(cls, dsn: str, size: int) -> Store:
        pool = await asyncpg.create_pool(dsn, min_size=min(2, size), max_size=size)
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; a database that cannot be reached becomes :class:`Unavailable`
        (503 with Retry-After), whatever statement found out."""
        try:
            async with self._pool.acquire(timeout=5) as conn:
                yield conn
        except _CONNECTION_ERRORS as exc:
            log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
            raise Unavailable("database_unavailable", "the database is unavailable; retry") from exc

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

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
                                             opens_at, closes_at)
                       SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM events WHERE slug = $1
                       RETURNING id""",
                    event,
                    new.slug,
                    new.title,
                    new.speakers,
                    new.prompt,
                    new.state,
                    new.opens_at,
                    new.closes_at,
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(
                    "session_exists", f"a session with slug {new.slug!r} exists"
                ) from None
            if row is None:
                raise NotFound("unknown_event", f"no event has slug {event!r}")
        return await self.session(new.slug)

    async def session(self, slug: str) -> SessionRecord:
        async with self._connection() as conn:
            return await self._session(conn, "s.slug = $1", slug)

    async def _session(self, conn: asyncpg.Connection, where: str, key: object) -> SessionRecord:
        row = await conn.fetchrow(f"SELECT {_SESSION} FROM {_SESSION_FROM} WHERE {where}", key)
        if row is None:
            raise NotFound("unknown_session", f"no session matches {key!r}")
        return SessionRecord(**dict(row))

    async def head(self, session_id: int) -> int:
        async with self._connection() as conn:
            head: int = await conn.fetchval(
                "SELECT last_seq FROM sessions WHERE id = $1", session_id
            )
            return head

    async def set_state(
        self, session: SessionRecord, state: str
    ) -> tuple[SessionChange, bytes | None]:
        """Open or close; conditional, so setting the state it has changes nothing."""
        kind = "session.opened" if state == "open" else "session.closed"
        return await self._change_session(
            session, kind, "state = $2", state, condition="state <> $2"
        )

    async def update_session(
        self, session: SessionRecord, patch: SessionPatch
    ) -> tuple[SessionChange, bytes | None]:
        fields = {k: v for k, v in _patch_fields(patch).items()}
        if not fields:
            raise BadRequest("empty_patch", "nothing to change")
        opens = patch.opens_at if "opens_at" in fields else session.opens_at
        closes = patch.closes_at if "closes_at" in fields else session.closes_at
        if isinstance(opens, datetime) and isinstance(closes, datetime) and opens >= closes:
            raise BadRequest("bad_window", "opens_at must be before closes_at")
        names = list(fields)
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
        return await self._change_session(
            session, "session.updated", sets, *fields.values(), condition="true"
        )

    async def _change_session(
        self, session: SessionRecord, kind: str, sets: str, *args: object, condition: str = ""
    ) -> tuple[SessionChange, bytes | None]:
        condition = condition or "true"
        async with self._connection() as conn, conn.transaction():
            seq = await conn.fetchval(
                f"""UPDATE sessions SET {sets}, last_seq = last_seq + 1, updated_at = now()
                    WHERE id = $1 AND {condition} RETURNING last_seq""",
                session.id,
                *args,
            )
            if seq is not None:
                await conn.execute(
                    "INSERT INTO session_events (session_id, seq, kind) VALUES ($1, $2, $3)",
                    session.id,
                    seq,
                    kind,
                )
            current = await self._session(conn, "s.id = $1", session.id)
        view = current.view()
        if seq is None:
            return SessionChange(session=view, changed=False, seq=None), None
        event = Event(
            seq=seq, kind=kind, at=view.server_time, total=current.comment_count, session=view
        )
        log.info("session %s: %s (seq %d)", session.slug, kind, seq)
        return SessionChange(session=view, changed=True, seq=seq), encode_event(event)

    # --- Comments --------------------------------------------------------------------------------

    async def _author_id(self, conn: asyncpg.Connection, who: Identity) -> int:
        key = (who.sub, who.name, who.profession, who.city, who.region, who.country)
        cached = self._authors.get(key)
        if cached is not None:
            self._authors.move_to_end(key)
            return cached
        author_id: int = await conn.fetchval(
            """INSERT INTO authors (external_id, name, profession, city, region, country)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (external_id) DO UPDATE SET name = EXCLUDED.name,
                   profession = EXCLUDED.profession, city = EXCLUDED.city,
                   region = EXCLUDED.region, country = EXCLUDED.country, updated_at = now()
               RETURNING id""",
            *key,
        )
        self._authors[key] = author_id
        if len(self._authors) > _AUTHOR_CACHE_SIZE:
            self._authors.popitem(last=False)
        return author_id

    async def author_of(self, who: Identity) -> int | None:
        async with self._connection() as conn:
            found: int | None = await conn.fetchval(
                "SELECT id FROM authors WHERE external_id = $1", who.sub
            )
            return found

    async def post(
        self,
        session: SessionRecord,
        who: Identity,
        body: str,
        parent_id: int | None,
        client_key: str | None,
        *,
        at: datetime | None = None,
    ) -> tuple[PostResult, bytes | None]:
        """Store a comment (``at``: its time, when importing) and log its event. A retry with a
        ``client_key`` already used by this author in this session returns the stored comment
        and no event."""
        async with self._connection() as conn:
            author_id = await self._author_id(conn, who)
            if client_key is not None:
                existing = await self._by_client_key(conn, session, author_id, client_key)
                if existing is not None:
                    return existing, None
            try:
                async with conn.transaction():
                    return await self._insert(
                        conn, session, author_id, body, parent_id, client_key, at
                    )
            except asyncpg.UniqueViolationError:
                # A concurrent retry with the same client key committed first.
                existing = await self._by_client_key(conn, session, author_id, client_key or "")
                if existing is None:
                    raise
                return existing, None

    async def _by_client_key(
        self, conn: asyncpg.Connection, session: SessionRecord, author_id: int, key: str
    ) -> PostResult | None:
        row = await conn.fetchrow(
            f"""SELECT {_COMMENT} FROM {_COMMENT_FROM}
                WHERE c.session_id = $1 AND c.author_id = $2 AND c.client_key = $3""",
            session.id,
            author_id,
            key,
        )
        if row is None:
            return None
        return PostResult(comment=comment_view(row, session.slug), seq=None, created=False)

    async def _insert(
        self,
        conn: asyncpg.Connection,
        session: SessionRecord,
        author_id: int,
        body: str,
        parent_id: int | None,
        client_key: str | None,
        at: datetime | None,
    ) -> tuple[PostResult, bytes]:
        seq = await _next_seq(conn, session, accepting=True)
        root_id, depth = None, 0
        if parent_id is not None:
            root_id, depth = await self._parent(conn, session, parent_id)
        row = await conn.fetchrow(
            f"""WITH c AS (
                    INSERT INTO comments (session_id, author_id, parent_id, root_id, depth, body,
                                          status, client_key, created_at)
                    VALUES ($1, $2, $3, $4, $5, $6, 'published', $7, coalesce($8, now()))
                    RETURNING *)
                SELECT {_COMMENT} FROM c JOIN authors a ON a.id = c.author_id""",
            session.id,
            author_id,
            parent_id,
            root_id,
            depth,
            body,
            client_key,
            at,
        )
        assert row is not None
        return await self._comment_event(conn, session, "comment.created", seq, row)

    async def _parent(
        self, conn: asyncpg.Connection, session: SessionRecord, parent_id: int
    ) -> tuple[int, int]:
        parent = await conn.fetchrow(
            "SELECT session_id, root_id, depth, status FROM comments WHERE id = $1", parent_id
        )
        if parent is None or parent["session_id"] != session.id:
            raise BadRequest(
                "bad_parent", f"comment {parent_id} is not in session {session.slug!r}"
            )
        if parent["status"] not in PUBLIC_STATES:
            raise Conflict("parent_not_published", f"comment {parent_id} is {parent['status']}")
        return parent["root_id"] or parent_id, parent["depth"] + 1

    async def _comment_event(
        self,
        conn: asyncpg.Connection,
        session: SessionRecord,
        kind: str,
        seq: int,
        row: asyncpg.Record,
    ) -> tuple[PostResult, bytes]:
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
        ancestors = await _ancestors(conn, {row["parent_id"]} - {None})
        event = Event(
            seq=seq,
            kind=kind,
            at=counts["at"],
            total=counts["comment_count"],
            comment=comment,
            reply_counts=_reply_counts(row["parent_id"], ancestors),
        )
        log.info("session %s: %s comment %d (seq %d)", session.slug, kind, row["id"], seq)
        return PostResult(comment=comment, seq=seq, created=True), encode_event(event)

    async def comment_session(self, comment_id: int) -> SessionRecord:
        async with self._connection() as conn:
            session = await conn.fetchrow(
                f"""SELECT {_SESSION} FROM {_SESSION_FROM}
                    WHERE s.id = (SELECT session_id FROM comments WHERE id = $1)""",
                comment_id,
            )
        if session is None:
            raise NotFound("unknown_comment", f"no comment has id {comment_id}")
        return SessionRecord(**dict(session))

    async def edit(
        self, session: SessionRecord, comment_id: int, who: Identity, body: str
    ) -> tuple[PostResult, bytes | None]:
        try:
            return await self._edit(session, comment_id, who, body)
        except _Unchanged as unchanged:
            assert unchanged.result is not None
            return unchanged.result, None

    async def _edit(
        self, session: SessionRecord, comment_id: int, who: Identity, body: str
    ) -> tuple[PostResult, bytes]:
        async with self._connection() as conn, conn.transaction():
            seq = await _next_seq(conn, session, accepting=True)
            row = await conn.fetchrow(
                f"""WITH c AS (
                        UPDATE comments c SET body = $2, edited_at = now()
                        FROM authors a
                        WHERE c.id = $1 AND a.id = c.author_id AND a.external_id = $3
                          AND c.status = 'published' AND c.body <> $2
                        RETURNING c.*)
                    SELECT {_COMMENT} FROM c JOIN authors a ON a.id = c.author_id""",
                comment_id,
                body,
                who.sub,
            )
            if row is None:
                current = await self._comment(conn, comment_id)
                if current["external_id"] != who.sub:
                    raise Forbidden("not_author", "only its author can edit a comment")
                if current["status"] not in PUBLIC_STATES:
                    raise Conflict("not_published", f"comment {comment_id} is {current['status']}")
                # Same text as before: nothing to do; roll the seq back.
                raise _Unchanged(PostResult(comment_view(current, session.slug), None, False))
            return await self._comment_event(conn, session, "comment.edited", seq, row)

    async def set_status(
        self, session: SessionRecord, comment_id: int, status: str, moderator: Identity
    ) -> tuple[ModerationResult, bytes | None, str]:
        """Remove (``removed``) or restore (``published``); conditional and idempotent: asking
        for the state the comment is in writes nothing and says who put it there and when.
        Also returns the author's ``sub``, to notify them."""
        kind = "comment.removed" if status == "removed" else "comment.restored"
        by = f"{moderator.name or 'moderator'} ({moderator.sub})" if status == "removed" else None
        async with self._connection() as conn:
            try:
                async with conn.transaction():
                    seq = await _next_seq(conn, session, accepting=False)
                    row = await conn.fetchrow(
                        f"""WITH c AS (
                                UPDATE comments SET status = $2,
                                    removed_at = CASE WHEN $2 = 'removed' THEN now() END,
                                    removed_by = $3
                                WHERE id = $1 AND session_id = $4 AND status <> $2 RETURNING *)
                            SELECT {_COMMENT} FROM c JOIN authors a ON a.id = c.author_id""",
                        comment_id,
                        status,
                        by,
                        session.id,
                    )
                    if row is None:
                        raise _Unchanged(None)
                    _, event = await self._comment_event(conn, session, kind, seq, row)
            except _Unchanged:
                current = await self._comment(conn, comment_id)
                return _moderation(current, session, None), None, current["external_id"]
        return _moderation(row, session, seq), event, row["external_id"]

    async def _comment(self, conn: asyncpg.Connection, comment_id: int) -> asyncpg.Record:
        row = await conn.fetchrow(
            f"SELECT {_COMMENT} FROM {_COMMENT_FROM} WHERE c.id = $1", comment_id
        )
        if row is None:
            raise NotFound("unknown_comment", f"no comment has id {comment_id}")
        return row

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
                    _sql(f"""SELECT {_COMMENT} FROM {_COMMENT_FROM}
                        WHERE c.session_id = $2 AND c.parent_id IS NULL AND c.number > $3
                          AND {_SHOWN} ORDER BY c.number ASC LIMIT $4"""),
                    _PUBLIC,
                    session.id,
                    after,
                    limit + 1,
                )
                more_newer, rows = len(rows) > limit, list(reversed(rows[:limit]))
                more_older = bool(rows)
            else:
                rows = await conn.fetch(
                    _sql(f"""SELECT {_COMMENT} FROM {_COMMENT_FROM}
                        WHERE c.session_id = $2 AND c.parent_id IS NULL
                          AND c.number < coalesce($3, 2147483647)
                          AND {_SHOWN} ORDER BY c.number DESC LIMIT $4"""),
                    _PUBLIC,
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
                _sql(f"""SELECT {_COMMENT} FROM unnest($2::bigint[]) AS r(root)
                    CROSS JOIN LATERAL (
                        SELECT * FROM comments c WHERE c.root_id = r.root AND {_SHOWN}
                        ORDER BY c.id LIMIT $3) c
                    JOIN authors a ON a.id = c.author_id
                    ORDER BY c.id"""),
                _PUBLIC,
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
                _sql(f"""SELECT {_COMMENT} FROM {_COMMENT_FROM}
                    WHERE c.root_id = $2 AND c.id > coalesce($3, 0) AND {_SHOWN}
                    ORDER BY c.id LIMIT $4"""),
                _PUBLIC,
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
                f"""SELECT e.seq, e.kind, e.at, {_COMMENT}
                    FROM session_events e
                    LEFT JOIN comments c ON c.id = e.comment_id
                    LEFT JOIN authors a ON a.id = c.author_id
                    WHERE e.session_id = $1 AND e.seq > $2 AND e.seq <= $3
                    ORDER BY e.seq""",
                session.id,
                after,
                upto,
            )
            ancestors = await _ancestors(conn, {r["parent_id"] for r in rows} - {None})
        view = current.view()
        events = []
        for row in rows:
            comment = session_view = None
            counts: list[ReplyCount] = []
            if row["kind"].startswith("comment."):
                comment = comment_view(row, session.slug)
                counts = _reply_counts(row["parent_id"], ancestors)
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


Ancestors = dict[int, tuple[int | None, int]]


async def _ancestors(conn: asyncpg.Connection, parent_ids: set[int]) -> Ancestors:
    """Each of these comments and all their ancestors: id -> (parent_id, reply_count)."""
    if not parent_ids:
        return {}
    rows = await conn.fetch(
        """WITH RECURSIVE up AS (
               SELECT id, parent_id, reply_count FROM comments WHERE id = ANY($1::bigint[])
               UNION
               SELECT c.id, c.parent_id, c.reply_count
               FROM comments c JOIN up ON c.id = up.parent_id)
           SELECT * FROM up""",
        list(parent_ids),
    )
    return {r["id"]: (r["parent_id"], r["reply_count"]) for r in rows}


def _reply_counts(parent_id: int | None, ancestors: Ancestors) -> list[ReplyCount]:
    """The reply counts of a comment's ancestors, nearest first."""
    counts = []
    while parent_id is not None and parent_id in ancestors:
        next_id, count = ancestors[parent_id]
        counts.append(ReplyCount(id=parent_id, reply_count=count))
        parent_id = next_id
    return counts


def _moderation(row: asyncpg.Record, session: SessionRecord, seq: int | None) -> ModerationResult:
    return ModerationResult(
        comment=comment_view(row, session.slug),
        changed=seq is not None,
        removed_by=row["removed_by"],
        removed_at=row["removed_at"],
        seq=seq,
    )


async def _next_seq(conn: asyncpg.Connection, session: SessionRecord, *, accepting: bool) -> int:
    """Take the session's next seq, locking its row until commit. With ``accepting``, only while
    the session takes posts (open, and inside its window), else :class:`Conflict`."""
    seq: int | None = await conn.fetchval(
        f"""UPDATE sessions s SET last_seq = last_seq + 1
            WHERE s.id = $1 AND {_ACCEPTING if accepting else "true"} RETURNING last_seq""",
        session.id,
    )
    if seq is None:
        raise Conflict("session_closed", f"comments are closed for session {session.slug!r}")
    return seq


class _Unchanged(Exception):
    """Rolls back a transaction whose change turned out to be a no-op."""

    def __init__(self, result: PostResult | None) -> None:
        self.result = result


def _patch_fields(patch: SessionPatch) -> dict[str, object]:
    return {
        f.name: getattr(patch, f.name)
        for f in msgspec.structs.fields(patch)
        if getattr(patch, f.name) is not msgspec.UNSET
    }
