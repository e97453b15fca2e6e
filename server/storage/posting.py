"""Posting: comments written in batches, many posts (of one session or of many) per transaction.

A session's posts are serialised by its row lock (gapless seqs, commit order = seq order). If
each post took the lock, a pooled connection and a commit of its own, a busy session would
accept one post per commit and its waiting posts would hold the whole pool; and a process taking
posts for many sessions at once would pay a transaction, its round trips and a WAL flush for each
one. Instead the posts that reach a process while a batch is being written wait in memory,
holding no connection, and the next transaction writes them all, whatever their sessions: it
locks their sessions (in id order, as every batch does, so two processes' batches cannot
deadlock), and writes them in a handful of statements whatever the batch's size, with one
commit (one WAL flush).

Each post is judged in that transaction after the ones before it (so slow mode and the
per-minute limit see them), and every refusal happens before the post writes anything, so a
refused post needs no rollback. If PostgreSQL rejects a statement the transaction is lost: the
batch is then written again, one post per transaction, and only the post at fault fails. No post
is acknowledged before its transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from ..auth import Identity
from ..errors import BackchannelError, BadRequest, Conflict, SessionChanged, Unavailable
from ..protocol import PUBLIC_STATES, Event, PostResult, ReplyCount, encode_event
from .base import (
    COMMENT,
    Ancestors,
    Hold,
    SessionRecord,
    Standing,
    ancestors,
    author_key,
    comment_view,
    own_view,
    standing_columns,
)

if TYPE_CHECKING:
    from .comments import CommentStore

log = logging.getLogger("backchannel.store")

# Posts written in one transaction at most: enough to take a burst in a few commits, few enough
# that the first of them is not kept waiting long for the last.
MAX_BATCH = 64
# Posts of one session that may wait in a process for their turn; more are refused (503
# session_busy) rather than queued without bound.
MAX_WAITING = 2_000
# Posts of all sessions that may wait in a process; more are refused (503 posts_busy).
MAX_WAITING_IN_PROCESS = 20_000

# Judges an author's standing when they post: may raise (refused) or return a hold.
Admit = Callable[[Standing], Hold | None]
Written = tuple[PostResult, bytes | None]


@dataclass(slots=True)
class Post:
    """One post waiting for its session's next batch, and the future its request awaits."""

    session: SessionRecord
    who: Identity
    body: str
    parent_id: int | None
    client_key: str | None
    question: bool
    hold: Hold | None
    at: datetime | None
    admit: Admit | None
    done: asyncio.Future[Written] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, outcome: Written | BaseException) -> None:
        if self.done.done():
            return  # its request gave up waiting
        if isinstance(outcome, asyncio.CancelledError):
            self.done.cancel()
        elif isinstance(outcome, BaseException):
            self.done.set_exception(outcome)
        else:
            self.done.set_result(outcome)


class PostQueue:
    """Per process: the posts waiting for the next batch, in arrival order, and the one task
    writing them."""

    def __init__(self, store: CommentStore) -> None:
        self._store = store
        self._waiting: deque[Post] = deque()
        self._per_session: Counter[int] = Counter()
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, post: Post) -> Written:
        session = post.session
        if self._per_session[session.id] >= MAX_WAITING:
            log.warning("session %s: %d posts waiting, refusing more", session.slug, MAX_WAITING)
            raise Unavailable("session_busy", "this session has too many posts waiting; retry")
        if len(self._waiting) >= MAX_WAITING_IN_PROCESS:
            log.warning("%d posts waiting in this process, refusing more", len(self._waiting))
            raise Unavailable("posts_busy", "this server has too many posts waiting; retry")
        self._waiting.append(post)
        self._per_session[session.id] += 1
        if self._writer is None:
            # In a context of its own: it writes for many requests, and its log lines belong
            # to none of them (each post's own line is logged by its request).
            self._writer = asyncio.create_task(
                self._drain(), name="posts", context=contextvars.Context()
            )
        return await post.done

    async def close(self) -> None:
        """Wait for the batches under way (their posts' requests are waiting for them)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    def _next_batch(self) -> list[Post]:
        batch: list[Post] = []
        while self._waiting and len(batch) < MAX_BATCH:
            post = self._waiting.popleft()
            self._per_session[post.session.id] -= 1
            if not self._per_session[post.session.id]:
                del self._per_session[post.session.id]
            if not post.done.done():  # not abandoned before its turn
                batch.append(post)
        return batch

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._next_batch()
                if batch:
                    await self._write(batch)
        finally:
            # No await between the queue running dry and this: a post arriving now starts a
            # writer of its own. Posts left here mean this task was cancelled.
            self._writer = None
            while self._waiting:
                self._waiting.popleft().settle(asyncio.CancelledError())
            self._per_session.clear()

    async def _write(self, batch: list[Post]) -> None:
        outcomes: list[Written | BaseException]
        try:
            outcomes = list(await self._store.write_posts(batch))
        except asyncpg.PostgresError as exc:
            # A statement of one post broke the transaction (a constraint, a concurrent retry
            # with the same client key): write each post alone, so that only that one fails.
            if len(batch) > 1:
                slugs = sorted({post.session.slug for post in batch})
                log.warning(
                    "a batch of %d posts (sessions %s) failed (%s: %s); writing them one by one",
                    len(batch), ", ".join(slugs), type(exc).__name__, exc,
                )  # fmt: skip
            outcomes = []
            for post in batch:
                outcomes.append(await self._write_alone(post))
        except BaseException as exc:
            for post in batch:
                post.settle(exc)
            raise
        for post, outcome in zip(batch, outcomes, strict=True):
            post.settle(outcome)

    async def _write_alone(self, post: Post) -> Written | BaseException:
        for attempt in range(2):
            try:
                outcomes = await self._store.write_posts([post])
                return outcomes[0]
            except Exception as exc:
                # The same client key committed meanwhile by a writer that did not lock the
                # session (an import): once more, and the retry finds it.
                duplicate = isinstance(exc, asyncpg.UniqueViolationError)
                if attempt or not duplicate or post.client_key is None:
                    return exc
        raise AssertionError("unreachable")


@dataclass(slots=True)
class Admitted:
    """A post the batch will write: its place in the batch and in its thread, and its fate."""

    index: int
    root_id: int | None
    depth: int
    hold: Hold | None


async def write_batch(
    store: CommentStore, conn: asyncpg.Connection, batch: list[Post]
) -> tuple[list[Written | BackchannelError], dict[str, int]]:
    """Write a batch of posts in the caller's transaction, which holds the locks of their
    sessions, in a handful of statements whatever its size: each post's outcome (its result, or
    why it was refused, having written nothing), and the ids of the authors written (to
    remember once the transaction has committed)."""
    outcomes: list[Written | BackchannelError | None] = [None] * len(batch)
    author_ids, uncached = await author_ids_of(store, conn, batch)
    # Every post gets its row (LEFT JOIN): a session gone meanwhile reads as not accepting.
    rows = await conn.fetch(
        f"""SELECT i.n, s.settings_version = i.settings_version AS current,
                {standing_columns("i.author_id", event="s.event_id")},
                (SELECT c.id FROM comments c WHERE c.session_id = s.id
                   AND c.author_id = i.author_id AND c.client_key = i.client_key) AS existing,
                p.session_id AS parent_session, p.root_id AS parent_root,
                p.depth AS parent_depth, p.status AS parent_status
            FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::integer[])
                     WITH ORDINALITY
                     AS i(session_id, author_id, client_key, parent_id, settings_version, n)
                 LEFT JOIN sessions s ON s.id = i.session_id
                 -- One index lookup per reply (LIMIT keeps it a lookup: as a join, the planner
                 -- may scan the whole table when it thinks it small).
                 LEFT JOIN LATERAL (SELECT p.session_id, p.root_id, p.depth, p.status
                                    FROM comments p WHERE p.id = i.parent_id LIMIT 1) p ON true
            ORDER BY i.n""",
        [post.session.id for post in batch],
        [author_ids.get(post.who.sub) for post in batch],
        [post.client_key for post in batch],
        [post.parent_id for post in batch],
        [post.session.settings_version for post in batch],
    )
    admitted: list[Admitted] = []
    retried: dict[int, int] = {}  # index -> the stored comment its client key names
    repeats: dict[int, int] = {}  # index -> the earlier post of this batch with its client key
    keys: dict[tuple[int, str, str], int] = {}
    standings: dict[tuple[int, str], Standing] = {}  # (session, author) -> as of their last post
    for index, (post, row) in enumerate(zip(batch, rows, strict=True)):
        session = post.session
        author = (session.id, post.who.sub)
        key = (*author, post.client_key) if post.client_key is not None else None
        try:
            if not row["current"]:  # judged by outdated settings (or the session is gone)
                raise SessionChanged(session.slug)
            if not row["accepting"]:
                raise Conflict(
                    "session_closed", f"comments are closed for session {session.slug!r}"
                )
            if row["existing"] is not None:
                retried[index] = row["existing"]
                continue
            if key is not None and key in keys:
                repeats[index] = keys[key]
                continue
            root_id, depth = parent_place(session, post.parent_id, row)
            # Judged after this author's earlier posts in the batch, as if each had committed.
            standing = standings.get(author) or Standing.of(row)
            hold = post.admit(standing) if post.admit is not None else post.hold
        except BackchannelError as refused:
            outcomes[index] = refused
            continue
        standings[author] = standing.after_post()
        if key is not None:
            keys[key] = index
        admitted.append(Admitted(index, root_id, depth, hold))
    fresh = [batch[a.index].who for a in admitted if a.index in uncached]
    written = await write_authors(conn, fresh, author_ids)
    if admitted:
        await insert_comments(conn, batch, admitted, author_ids, outcomes)
    if retried:
        stored = await store.comments(conn, list(retried.values()))
        for index, comment_id in retried.items():
            found = PostResult(own_view(stored[comment_id], batch[index].session), None, False)
            outcomes[index] = (found, None)
    for index, first in repeats.items():
        earlier = outcomes[first]
        assert isinstance(earlier, tuple)
        outcomes[index] = (PostResult(earlier[0].comment, None, False), None)
    assert all(outcome is not None for outcome in outcomes)
    return outcomes, written  # type: ignore[return-value]


async def author_ids_of(
    store: CommentStore, conn: asyncpg.Connection, batch: list[Post]
) -> tuple[dict[str, int], set[int]]:
    """The ids of the batch's authors, known to this process or stored (new ones are absent),
    and which posts' author details this process has not written lately (by index)."""
    ids: dict[str, int] = {}
    uncached = set()
    for index, post in enumerate(batch):
        known = store.known_author(post.who)
        if known is None:
            uncached.add(index)
        else:
            ids[post.who.sub] = known
    unknown = {batch[index].who.sub for index in uncached} - ids.keys()
    if unknown:
        rows = await conn.fetch(
            "SELECT external_id, id FROM authors WHERE external_id = ANY($1::text[])",
            sorted(unknown),
        )
        ids.update((row["external_id"], row["id"]) for row in rows)
    return ids, uncached


async def write_authors(
    conn: asyncpg.Connection, authors: list[Identity], ids: dict[str, int]
) -> dict[str, int]:
    """Write the details of the admitted posts' authors that this process has not written
    lately (new ones, renamed ones, or just not cached), filling in ``ids``; the ids written."""
    details = {who.sub: who for who in authors}  # one row per author, their latest details
    if not details:
        return {}
    rows = await conn.fetch(
        """INSERT INTO authors (external_id, name, profession, city, region, country)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                $6::text[])
           ON CONFLICT (external_id) DO UPDATE SET name = EXCLUDED.name,
               profession = EXCLUDED.profession, city = EXCLUDED.city,
               region = EXCLUDED.region, country = EXCLUDED.country, updated_at = now()
           RETURNING external_id, id""",
        *(list(column) for column in zip(*map(author_key, details.values()), strict=True)),
    )
    written = {row["external_id"]: row["id"] for row in rows}
    ids.update(written)
    return written


# The batch's admitted posts, in order: each published one takes the next seq of its session
# and logs its event, each published top-level one the next number; the statement counts them in
# their sessions' rows and their ancestors' reply counts, set-wise, instead of the per-row
# triggers (which the batch's transaction turns off with ``backchannel.counted``: see
# migration 0008). A reply's ancestors all exist before the batch (a parent must be stored).
INSERT_COMMENTS = f"""
WITH RECURSIVE input AS (
        SELECT i.*, i.status = 'published' AND i.parent_id IS NULL AS numbered,
               count(*) FILTER (WHERE i.status = 'published' AND i.parent_id IS NULL)
                   OVER (PARTITION BY i.session_id ORDER BY i.n) AS k
        FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                    $5::integer[], $6::text[], $7::text[], $8::boolean[],
                    $9::timestamptz[], $10::text[], $11::text[], $12::text[])
            WITH ORDINALITY AS i(session_id, author_id, parent_id, root_id, depth, body,
                                 client_key, question, at, status, hold_reason, hold_match, n)),
    counts AS (SELECT session_id, count(*) FILTER (WHERE status = 'published') AS published,
                      count(*) FILTER (WHERE numbered) AS numbered
               FROM input GROUP BY session_id),
    s AS (UPDATE sessions SET last_seq = last_seq + counts.published,
                 last_number = last_number + counts.numbered,
                 comment_count = comment_count + counts.published
          FROM counts WHERE sessions.id = counts.session_id
          RETURNING sessions.id, sessions.last_seq, sessions.last_number,
                    sessions.comment_count - counts.published AS count_before,
                    counts.published, counts.numbered),
    c AS (INSERT INTO comments (session_id, author_id, parent_id, root_id, depth, body,
                                client_key, question, created_at, status, hold_reason,
                                hold_match, number)
          SELECT i.session_id, author_id, parent_id, root_id, depth, body, client_key,
                 question, coalesce(at, now()), status, hold_reason, hold_match,
                 CASE WHEN i.numbered THEN s.last_number - s.numbered + i.k END
          FROM input i JOIN s ON s.id = i.session_id ORDER BY n
          RETURNING *),
    up (id, replies) AS (
          SELECT parent_id, 1 FROM input WHERE status = 'published' AND parent_id IS NOT NULL
          UNION ALL
          SELECT p.parent_id, up.replies FROM up JOIN comments p ON p.id = up.id
          WHERE p.parent_id IS NOT NULL),
    r AS (UPDATE comments SET reply_count = comments.reply_count + t.replies
          FROM (SELECT id, sum(replies) AS replies FROM up GROUP BY id) t
          WHERE comments.id = t.id),
    e AS (INSERT INTO session_events (session_id, seq, kind, comment_id)
          SELECT p.session_id, s.last_seq - s.published + p.k, 'comment.created', p.id
          FROM (SELECT id, session_id,
                       row_number() OVER (PARTITION BY session_id ORDER BY id) AS k
                FROM c WHERE status = 'published') p JOIN s ON s.id = p.session_id
          RETURNING seq, comment_id, at)
SELECT {COMMENT}, e.seq, e.at AS event_at, s.count_before
FROM c JOIN authors a ON a.id = c.author_id JOIN s ON s.id = c.session_id
    LEFT JOIN e ON e.comment_id = c.id
ORDER BY c.id"""


async def insert_comments(
    conn: asyncpg.Connection,
    batch: list[Post],
    admitted: list[Admitted],
    author_ids: dict[str, int],
    outcomes: list[Written | BackchannelError | None],
) -> None:
    """Insert the admitted posts in one statement, in order, and fill in their outcomes."""
    posts = [batch[a.index] for a in admitted]
    columns: list[list[object]] = [
        [post.session.id for post in posts],
        [author_ids[post.who.sub] for post in posts],
        [post.parent_id for post in posts],
        [a.root_id for a in admitted],
        [a.depth for a in admitted],
        [post.body for post in posts],
        [post.client_key for post in posts],
        [post.question for post in posts],
        [post.at for post in posts],
        ["published" if a.hold is None else "held" for a in admitted],
        [a.hold.reason if a.hold else None for a in admitted],
        [a.hold.match if a.hold else None for a in admitted],
    ]
    rows = await conn.fetch(INSERT_COMMENTS, *columns)
    parents = {post.parent_id for post in posts if post.parent_id is not None}
    found = await ancestors(conn, parents)
    later: Counter[int] = Counter()  # replies of this batch after the one at hand, per ancestor
    events: list[tuple[Post, int, asyncpg.Record, list[ReplyCount]]] = []
    for a, row in reversed(list(zip(admitted, rows, strict=True))):
        post = batch[a.index]
        if a.hold is not None:
            support = post.session.support_message if a.hold.reason == "crisis" else None
            held = PostResult(own_view(row, post.session), None, True, support or None)
            outcomes[a.index] = (held, None)
            continue
        # Each event carries its ancestors' counts as of that event, not as of the batch.
        line = list(thread_above(post.parent_id, found))
        counts = [ReplyCount(id=up, reply_count=found[up][1] - later[up]) for up in line]
        later.update(line)
        events.append((post, a.index, row, counts))
    first: dict[int, int] = {}  # session -> its first seq in this batch
    for post, _, row, _ in events:
        first[post.session.id] = min(row["seq"], first.get(post.session.id, row["seq"]))
    for post, index, row, counts in events:
        comment = comment_view(row, post.session.slug)
        event = Event(
            seq=row["seq"],
            kind="comment.created",
            at=row["event_at"],
            total=row["count_before"] + row["seq"] - first[post.session.id] + 1,
            comment=comment,
            reply_counts=counts,
        )
        result = PostResult(comment=comment, seq=event.seq, created=True)
        outcomes[index] = (result, encode_event(event))


def thread_above(parent_id: int | None, found: Ancestors) -> Iterator[int]:
    """A reply's parent and the parent's ancestors, nearest first."""
    while parent_id is not None and parent_id in found:
        yield parent_id
        parent_id = found[parent_id][0]


def parent_place(
    session: SessionRecord, parent_id: int | None, row: asyncpg.Record
) -> tuple[int | None, int]:
    """Where a reply goes (its thread's root and its depth), if its parent may have replies."""
    if parent_id is None:
        return None, 0
    if row["parent_session"] != session.id:
        raise BadRequest("bad_parent", f"comment {parent_id} is not in session {session.slug!r}")
    if row["parent_status"] not in PUBLIC_STATES:
        raise Conflict("parent_not_published", f"comment {parent_id} is {row['parent_status']}")
    return row["parent_root"] or parent_id, row["parent_depth"] + 1
