"""What every part of the store shares: the connection pool, the SQL fragments that select a
comment or a session, and the rendering of rows into the wire views."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

import asyncpg

from ..auth import Identity
from ..errors import Conflict, NotFound, Unavailable
from ..protocol import (
    PUBLIC_STATES,
    AuthorView,
    CommentView,
    HelpfulCount,
    ReplyCount,
    SessionView,
)

if TYPE_CHECKING:
    from ..protocol import EditResult, PostResult

log = logging.getLogger("backchannel.store")

AUTHOR_CACHE_SIZE = 10_000
# The actor of what the service does by itself (automatic slow mode), in the audit log.
SYSTEM = Identity(
    sub="backchannel", name="Backchannel (automatic)", profession="", city="", region="",
    country="", role="system", event="*", expires_at=float("inf"),
)  # fmt: skip
PUBLIC = list(PUBLIC_STATES)


# A comment row as every reader needs it: the comment and its author.
COMMENT = """
    c.id, c.session_id, c.parent_id, c.root_id, c.depth, c.number, c.status, c.body,
    c.reply_count, c.created_at, c.edited_at, c.removed_at, c.removed_by, c.author_id,
    c.question, c.highlighted_at, c.answered_at, c.helpful_count, c.hold_reason, c.hold_match,
    c.reviewed_by, c.reviewed_at, c.session_id, c.open_reports,
    a.name, a.profession, a.city, a.region, a.country, a.external_id
"""
COMMENT_FROM = "comments c JOIN authors a ON a.id = c.author_id"
# Shown in pages: public comments, and hidden ones whose replies still need their place.
SHOWN = "(c.status = ANY($PUBLIC) OR c.reply_count > 0)"

SESSION = """
    s.id, s.event_id, e.slug AS event_slug, s.slug, s.title, s.speakers, s.prompt, s.state,
    s.opens_at, s.closes_at, s.last_seq, s.comment_count, s.premoderated, e.banned_words,
    e.suspect_words, e.support_message, e.report_threshold, s.slow_mode_seconds,
    s.auto_slow_threshold, s.auto_slow_seconds, s.auto_slow_window, s.slow_auto,
    s.settings_version
"""
SESSION_FROM = "sessions s JOIN events e ON e.id = s.event_id"
# The posting window, checked in the same statement that takes the seq.
ACCEPTING = """s.state = 'open' AND (s.opens_at IS NULL OR s.opens_at <= now())
    AND (s.closes_at IS NULL OR now() < s.closes_at)"""

STATEMENT_LIFETIME = 30  # seconds a prepared statement (and its cached plan) is kept

LOST_CONNECTION_ERRORS = (asyncpg.InterfaceError, asyncpg.exceptions._base.InternalClientError)
CONNECTION_ERRORS = (
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
    premoderated: bool = False
    banned_words: list[str] = field(default_factory=list)
    suspect_words: list[str] = field(default_factory=list)
    support_message: str = ""
    report_threshold: int = 3
    slow_mode_seconds: int = 0
    auto_slow_threshold: int = 0
    auto_slow_seconds: int = 30
    auto_slow_window: int = 60
    slow_auto: bool = False
    settings_version: int = 0
    """Of what posting reads from here (see :class:`~server.errors.SessionChanged`)."""

    @property
    def slow_mode(self) -> int:
        """Seconds between one person's posts in force now (0: no slow mode)."""
        automatic = self.auto_slow_seconds if self.slow_auto else 0
        return max(self.slow_mode_seconds, automatic)

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
            premoderated=self.premoderated,
            slow_mode=self.slow_mode,
            slow_mode_auto=self.slow_auto and self.auto_slow_seconds > self.slow_mode_seconds,
            slow_mode_seconds=self.slow_mode_seconds,
            auto_slow_threshold=self.auto_slow_threshold,
            auto_slow_seconds=self.auto_slow_seconds,
            auto_slow_window=self.auto_slow_window,
            server_time=now,
        )


def author_view(row: asyncpg.Record | dict[str, Any]) -> AuthorView:
    """The author columns of a row (``author_id``, ``name``, ``profession``, ...)."""
    return AuthorView(
        id=row["author_id"],
        name=row["name"],
        profession=row["profession"],
        city=row["city"],
        region=row["region"],
        country=row["country"],
    )


def comment_view(
    row: asyncpg.Record | dict[str, Any], session: str, *, redact: bool = True
) -> CommentView:
    """The comment as a watcher sees it: not public, it is redacted (no body, no author) unless
    ``redact`` is False, for its own author and for moderators."""
    public = row["status"] in PUBLIC_STATES or not redact
    author = author_view(row) if public else None
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
        question=row["question"],
        highlighted_at=row["highlighted_at"],
        answered_at=row["answered_at"],
        helpful_count=row["helpful_count"],
        hold_reason=row["hold_reason"] if not redact else None,
    )


def author_key(who: Identity) -> tuple[str, ...]:
    """An author as the ``authors`` table stores them: (external id, name, profession, city,
    region, country)."""
    return (who.sub, who.name, who.profession, who.city, who.region, who.country)


def own_view(row: asyncpg.Record, session: SessionRecord) -> CommentView:
    """A comment as its own author sees it: held ones too ("awaiting review"), and rejected
    ones with the reason; never one a moderator removed."""
    own = ("published", "held", "rejected")
    return comment_view(row, session.slug, redact=row["status"] not in own)


def sql(query: str) -> str:
    return query.replace("$PUBLIC", "$1::text[]")


async def keep_session_state(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection given back, beyond rolling back a transaction left
    open: nothing. asyncpg's default reset (unlock advisory locks, close cursors, unlisten,
    reset settings) is a round trip per request, and the store leaves none of these behind:
    settings are never changed, and :meth:`StoreBase.exclusive` releases its lock itself."""


class StoreBase:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # (sub, name, profession, city, region, country) -> (author id, when to look again)
        self._authors: OrderedDict[tuple[str, ...], tuple[int, float]] = OrderedDict()

    @classmethod
    async def connect(cls, dsn: str, size: int) -> Self:
        # Prepared statements are made anew after STATEMENT_LIFETIME: a plan (posting uses
        # generic plans) chosen while a table was small or its statistics stale is not kept
        # once the table has grown.
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min(2, size),
            max_size=size,
            reset=keep_session_state,
            max_cached_statement_lifetime=STATEMENT_LIFETIME,
        )
        return cls(pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; a database that cannot be reached becomes :class:`Unavailable`
        (503 with Retry-After), whatever statement found out."""
        try:
            async with self._pool.acquire(timeout=5) as conn:
                try:
                    yield conn
                except LOST_CONNECTION_ERRORS as exc:
                    # A pooled connection whose server went away fails with these; any other
                    # time they are bugs, and stay errors.
                    if not conn.is_closed():
                        raise
                    raise ConnectionResetError(f"{type(exc).__name__}: {exc}") from exc
        except CONNECTION_ERRORS as exc:
            log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
            raise Unavailable("database_unavailable", "the database is unavailable; retry") from exc

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Run a block in one process of the cluster at a time (a PostgreSQL advisory lock,
        held by one pooled connection for the block)."""
        async with self._connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", name)
            try:
                yield
            finally:
                try:
                    await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", name)
                except BaseException:
                    conn.terminate()  # the lock goes with the connection, not back to the pool
                    raise

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    async def _session(self, conn: asyncpg.Connection, where: str, key: object) -> SessionRecord:
        row = await conn.fetchrow(f"SELECT {SESSION} FROM {SESSION_FROM} WHERE {where}", key)
        if row is None:
            raise NotFound("unknown_session", f"no session matches {key!r}")
        return SessionRecord(**dict(row))

    async def _comment(self, conn: asyncpg.Connection, comment_id: int) -> asyncpg.Record:
        row = await conn.fetchrow(
            f"SELECT {COMMENT} FROM {COMMENT_FROM} WHERE c.id = $1", comment_id
        )
        if row is None:
            raise NotFound("unknown_comment", f"no comment has id {comment_id}")
        return row


Ancestors = dict[int, tuple[int | None, int]]


async def ancestors(conn: asyncpg.Connection, parent_ids: set[int]) -> Ancestors:
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


# Events after which a reply may be public beneath ancestors that a board never held: pages
# leave out a hidden comment without public replies, and this reply is now one.
REAPPEARING = frozenset({"comment.restored", "comment.approved"})


async def hidden_ancestors(
    conn: asyncpg.Connection, ids: list[int], session: str
) -> list[CommentView]:
    """Those of ``ids`` that are not public, redacted (placeholders), outermost first."""
    rows = await conn.fetch(
        f"""SELECT {COMMENT} FROM {COMMENT_FROM}
            WHERE c.id = ANY($1::bigint[]) AND NOT (c.status = ANY($2::text[]))
            ORDER BY c.depth""",
        ids,
        list(PUBLIC_STATES),
    )
    return [comment_view(r, session) for r in rows]


async def helpful_counts(conn: asyncpg.Connection, ids: list[int]) -> list[HelpfulCount]:
    rows = await conn.fetch(
        "SELECT id, helpful_count FROM comments WHERE id = ANY($1::bigint[]) ORDER BY id", ids
    )
    return [HelpfulCount(id=r["id"], helpful_count=r["helpful_count"]) for r in rows]


def reply_counts(parent_id: int | None, ancestors: Ancestors) -> list[ReplyCount]:
    """The reply counts of a comment's ancestors, nearest first."""
    counts = []
    while parent_id is not None and parent_id in ancestors:
        next_id, count = ancestors[parent_id]
        counts.append(ReplyCount(id=parent_id, reply_count=count))
        parent_id = next_id
    return counts


async def next_seq(conn: asyncpg.Connection, session: SessionRecord, *, accepting: bool) -> int:
    """Take the session's next seq, locking its row until commit. With ``accepting``, only while
    the session takes posts (open, and inside its window), else :class:`Conflict`."""
    seq: int | None = await conn.fetchval(
        f"""UPDATE sessions s SET last_seq = last_seq + 1
            WHERE s.id = $1 AND {ACCEPTING if accepting else "true"} RETURNING last_seq""",
        session.id,
    )
    if seq is None:
        raise Conflict("session_closed", f"comments are closed for session {session.slug!r}")
    return seq


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a post is held for review, and what matched (for moderators)."""

    reason: str
    match: str = ""


@dataclass(frozen=True, slots=True)
class Standing:
    """An author's standing in an event when they post: what moderators decided about them
    (sanctions in force) and when they last posted in this session (for slow mode)."""

    banned: bool
    timed_out: bool
    timed_out_until: datetime | None
    """When the timeout ends; None with ``timed_out``: for the rest of the event."""
    flagged: bool
    last_post_at: datetime | None
    now: datetime
    posts_last_minute: int = 0
    first_in_minute: datetime | None = None
    """The oldest of their posts in this session in the last minute."""

    @classmethod
    def of(cls, row: asyncpg.Record) -> Standing:
        """From a row with the columns of :func:`standing_columns` (and perhaps others)."""
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    def after_post(self) -> Standing:
        """The standing once they have posted now (for their next post in the same batch)."""
        return replace(
            self,
            last_post_at=self.now,
            posts_last_minute=self.posts_last_minute + 1,
            first_in_minute=self.first_in_minute or self.now,
        )


def sanctions_in_force(author: str, event: str = "$3") -> str:
    """The sanctions in force for the author ``author`` in event ``event`` (SQL expressions)."""
    return f"""sanctions x WHERE x.event_id = {event} AND x.author_id = {author}
    AND x.lifted_at IS NULL AND (x.until IS NULL OR x.until > now())"""


def standing_columns(author: str, event: str = "$3") -> str:
    """The columns of :class:`Standing` for the author ``author`` in session ``s`` of event
    ``event`` (SQL expressions), and whether the session takes posts now (``accepting``)."""
    in_force = sanctions_in_force(author, event)
    mine = f"FROM comments c WHERE c.session_id = s.id AND c.author_id = {author}"
    last_minute = "c.created_at > now() - interval '1 minute'"
    return f"""{ACCEPTING} AS accepting, now() AS now,
    (SELECT max(created_at) {mine}) AS last_post_at,
    (SELECT count(*) {mine} AND {last_minute}) AS posts_last_minute,
    (SELECT min(created_at) {mine} AND {last_minute}) AS first_in_minute,
    (SELECT coalesce(bool_or(kind = 'ban'), false) FROM {in_force}) AS banned,
    (SELECT coalesce(bool_or(kind = 'timeout'), false) FROM {in_force}) AS timed_out,
    (SELECT CASE WHEN bool_or(until IS NULL) THEN NULL ELSE max(until) END
     FROM {in_force} AND kind = 'timeout') AS timed_out_until,
    (SELECT coalesce(bool_or(kind = 'flag'), false) FROM {in_force}) AS flagged"""


async def standing(
    conn: asyncpg.Connection, session: SessionRecord, author_id: int, *, require_open: bool = True
) -> Standing:
    """The author's standing; :class:`Conflict` unless the session takes posts now (or with
    ``require_open`` False). Posts judge it under the session's lock (``posting``)."""
    row = await conn.fetchrow(
        f"SELECT {standing_columns('$2')} FROM sessions s WHERE s.id = $1",
        session.id,
        author_id,
        session.event_id,
    )
    if row is None or (require_open and not row["accepting"]):
        raise Conflict("session_closed", f"comments are closed for session {session.slug!r}")
    return Standing.of(row)


async def audit(
    conn: asyncpg.Connection,
    session: SessionRecord,
    who: Identity,
    action: str,
    comment_id: int | None,
    reason: str,
    changed: bool,
) -> None:
    """Record a moderator's action: who, when, what, why, and whether it changed anything."""
    await audit_event(
        conn, session.event_id, who, action, reason, changed,
        session_id=session.id, comment_id=comment_id,
    )  # fmt: skip


async def audit_event(
    conn: asyncpg.Connection,
    event_id: int,
    who: Identity,
    action: str,
    reason: str,
    changed: bool,
    *,
    session_id: int | None = None,
    comment_id: int | None = None,
    author_id: int | None = None,
) -> None:
    """Record an action in an event, about a session, a comment or an author where it has one."""
    await conn.execute(
        """INSERT INTO audit_log (event_id, session_id, actor, actor_name, role, action,
                                  comment_id, author_id, reason, changed)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        event_id,
        session_id,
        who.sub,
        who.name,
        who.role,
        action,
        comment_id,
        author_id,
        reason[:500],
        changed,
    )


class Unchanged(Exception):
    """Rolls back a transaction whose change turned out to be a no-op."""

    def __init__(self, result: PostResult | EditResult | None) -> None:
        self.result = result
