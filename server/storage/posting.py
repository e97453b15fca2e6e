"""Posting: a session's comments written in batches, one transaction per session at a time.

A session's posts are serialised by its row lock (gapless seqs, commit order = seq order). If
each post took the lock, a pooled connection and a commit of its own, a busy session would
accept one post per commit and its waiting posts would hold the whole pool. Instead the posts
that reach a process while one of the session's batches is being written wait in memory,
holding no connection, and the next transaction writes all of them: one lock, one commit (one
WAL flush), a few statements per post with no client logic between them but the judgment.

Each post is judged in that transaction after the ones before it (so slow mode and the
per-minute limit see them), and every refusal happens before the post writes anything, so a
refused post needs no rollback. If PostgreSQL rejects a statement the transaction is lost: the
batch is then written again, one post per transaction, and only the post at fault fails. No post
is acknowledged before its transaction has committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from ..auth import Identity
from ..errors import BackchannelError, BadRequest, Conflict, Unavailable
from ..protocol import PUBLIC_STATES, Event, PostResult, encode_event
from .base import (
    COMMENT,
    STANDING,
    Hold,
    SessionRecord,
    Standing,
    ancestors,
    comment_view,
    own_view,
    reply_counts,
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
    """Per process: each session's waiting posts and the one task writing them."""

    def __init__(self, store: CommentStore) -> None:
        self._store = store
        self._waiting: dict[int, deque[Post]] = {}
        self._writers: set[asyncio.Task[None]] = set()

    async def submit(self, post: Post) -> Written:
        session = post.session
        queue = self._waiting.get(session.id)
        if queue is None:
            queue = self._waiting[session.id] = deque()
            writer = asyncio.create_task(
                self._drain(session, queue), name=f"posts of session {session.slug}"
            )
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        elif len(queue) >= MAX_WAITING:
            log.warning("session %s: %d posts waiting, refusing more", session.slug, len(queue))
            raise Unavailable("session_busy", "this session has too many posts waiting; retry")
        queue.append(post)
        return await post.done

    async def close(self) -> None:
        """Wait for the batches under way (their posts' requests are waiting for them)."""
        if self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)

    async def _drain(self, session: SessionRecord, queue: deque[Post]) -> None:
        try:
            while queue:
                batch: list[Post] = []
                while queue and len(batch) < MAX_BATCH:
                    post = queue.popleft()
                    if not post.done.done():  # not abandoned before its turn
                        batch.append(post)
                if batch:
                    await self._write(batch)
        finally:
            # No await between the queue running dry and this: a post arriving now starts a
            # writer of its own. Posts left here mean this task was cancelled.
            del self._waiting[session.id]
            while queue:
                queue.popleft().settle(asyncio.CancelledError())

    async def _write(self, batch: list[Post]) -> None:
        outcomes: list[Written | BaseException]
        try:
            outcomes = list(await self._store.write_posts(batch))
        except asyncpg.PostgresError as exc:
            # A statement of one post broke the transaction (a constraint, a concurrent retry
            # with the same client key): write each post alone, so that only that one fails.
            if len(batch) > 1:
                log.warning(
                    "session %s: a batch of %d posts failed (%s: %s); writing them one by one",
                    batch[0].session.slug, len(batch), type(exc).__name__, exc,
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


async def write_post(
    store: CommentStore, conn: asyncpg.Connection, post: Post
) -> tuple[Written | BackchannelError, int | None]:
    """Write one post in the caller's transaction, which holds the session's lock; or refuse it
    (the error, as the outcome) having written nothing. Also the author's id, to remember once
    the transaction has committed."""
    session, who = post.session, post.who
    author_id = store.known_author(who)
    if author_id is None:
        author_id = await conn.fetchval("SELECT id FROM authors WHERE external_id = $1", who.sub)
        fresh = True  # their details are written with the post
    else:
        fresh = False
    row = await conn.fetchrow(
        f"""SELECT {STANDING},
                (SELECT c.id FROM comments c WHERE c.session_id = s.id
                   AND c.author_id = $2 AND c.client_key = $4) AS existing,
                p.session_id AS parent_session, p.root_id AS parent_root,
                p.depth AS parent_depth, p.status AS parent_status
            FROM sessions s LEFT JOIN comments p ON p.id = $5 WHERE s.id = $1""",
        session.id,
        author_id,
        session.event_id,
        post.client_key,
        post.parent_id,
    )
    try:
        if row is None or not row["accepting"]:
            raise Conflict("session_closed", f"comments are closed for session {session.slug!r}")
        if row["existing"] is not None:
            found = await store.by_client_key(conn, session, row["existing"])
            return (found, None), None
        root_id, depth = parent_place(session, post.parent_id, row)
        hold = post.hold
        if post.admit is not None:
            hold = post.admit(Standing.of(row))
    except BackchannelError as refused:
        return refused, None
    if fresh:
        author_id = await store.write_author(conn, who)
    assert author_id is not None
    values = (
        session.id, author_id, post.parent_id, root_id, depth, post.body, post.client_key,
        post.question, post.at,
    )  # fmt: skip
    if hold is not None:
        row = await conn.fetchrow(
            f"""WITH c AS ({INSERT_COMMENT} VALUES ({COMMENT_VALUES}, 'held', $10, $11)
                           RETURNING *)
                SELECT {COMMENT} FROM c JOIN authors a ON a.id = c.author_id""",
            *values,
            hold.reason,
            hold.match,
        )
        assert row is not None
        log.info("session %s: comment %d held (%s)", session.slug, row["id"], hold.reason)
        support = session.support_message if hold.reason == "crisis" else None
        held = PostResult(own_view(row, session), None, True, support or None)
        return (held, None), author_id
    # The seq, the comment and its event in one statement. The insert's trigger counts the
    # comment in its session's row, which this statement took before: its total is one more.
    row = await conn.fetchrow(
        f"""WITH s AS (UPDATE sessions SET last_seq = last_seq + 1 WHERE id = $1
                       RETURNING last_seq, comment_count),
                 c AS ({INSERT_COMMENT} SELECT {COMMENT_VALUES}, 'published', NULL, NULL FROM s
                       RETURNING *),
                 e AS (INSERT INTO session_events (session_id, seq, kind, comment_id)
                       SELECT $1, s.last_seq, 'comment.created', c.id FROM s, c
                       RETURNING seq, at)
            SELECT {COMMENT}, e.seq, e.at AS event_at, s.comment_count + 1 AS total
            FROM c JOIN authors a ON a.id = c.author_id, e, s""",
        *values,
    )
    assert row is not None
    comment = comment_view(row, session.slug)
    reply_to = await ancestors(conn, {post.parent_id} if post.parent_id else set())
    event = Event(
        seq=row["seq"],
        kind="comment.created",
        at=row["event_at"],
        total=row["total"],
        comment=comment,
        reply_counts=reply_counts(post.parent_id, reply_to),
    )
    log.info("session %s: comment.created comment %d (seq %d)", session.slug, comment.id, event.seq)
    return (
        PostResult(comment=comment, seq=event.seq, created=True),
        encode_event(event),
    ), author_id


INSERT_COMMENT = """INSERT INTO comments (session_id, author_id, parent_id, root_id, depth, body,
    client_key, question, created_at, status, hold_reason, hold_match)"""
COMMENT_VALUES = """$1::bigint, $2::bigint, $3::bigint, $4::bigint, $5::integer, $6::text, $7::text,
    $8::boolean, coalesce($9::timestamptz, now())"""


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
