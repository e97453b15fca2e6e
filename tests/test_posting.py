"""Posts written in batches (``server/storage/posting.py``), against a real PostgreSQL: a burst
to one session, or to many, shares transactions and still gets gapless seqs in commit order in
each session; each post in a batch is judged after the ones before it; a refused post writes
nothing, and a post PostgreSQL rejects fails alone."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest

from server.auth import Identity
from server.errors import BackchannelError, Forbidden, SessionChanged, TooManyRequests
from server.moderation import admit
from server.protocol import SessionPatch
from server.storage import Hold, SessionRecord, Standing, Store, posting

from .conftest import new_board, nonce
from .servers import InProcessServer


def person(name: str = "Ada") -> Identity:
    return Identity(
        sub=f"posting-{uuid.uuid4().hex[:12]}", name=name, profession="Nursing", city="Albany",
        region="NY", country="US", role="attendee", event="*", expires_at=float("inf"),
    )  # fmt: skip


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = await Store.connect(database_url, 4)
    yield store
    await store.close()


@pytest.fixture
async def session(server: InProcessServer, store: Store) -> SessionRecord:
    board = await new_board(server.url)
    return await store.session(board.session)


async def seqs_and_numbers(store: Store, session: SessionRecord) -> list[asyncpg.Record]:
    async with store.pool.acquire() as conn:
        return await conn.fetch(
            """SELECT e.seq, c.number, c.created_at, c.body FROM session_events e
               JOIN comments c ON c.id = e.comment_id WHERE e.session_id = $1 ORDER BY e.seq""",
            session.id,
        )


async def test_a_burst_shares_transactions_and_keeps_seqs_gapless(
    store: Store, session: SessionRecord
) -> None:
    authors = [person(f"Author {i}") for i in range(40)]
    bodies = [f"burst {nonce()}" for _ in range(300)]
    results = await asyncio.gather(
        *(store.post(session, authors[i % 40], body, None, None) for i, body in enumerate(bodies))
    )
    seqs = sorted(result.seq for result, _ in results if result.seq is not None)
    assert len(seqs) == 300 and all(event is not None for _, event in results)
    rows = await seqs_and_numbers(store, session)
    assert [r["seq"] for r in rows] == seqs == list(range(seqs[0], seqs[0] + 300))
    # Numbers follow seqs: commit order is seq order, within a batch and across batches.
    assert [r["number"] for r in rows] == list(range(1, 301))
    assert sorted(r["body"] for r in rows) == sorted(bodies)
    # Posts of one transaction share its clock: 300 posts in far fewer transactions.
    assert len({r["created_at"] for r in rows}) < 150


async def test_batches_keep_numbers_and_counts_as_the_triggers_would(
    server: InProcessServer, store: Store
) -> None:
    """The batch numbers and counts its comments itself (the per-row triggers are off for it):
    over bursts of top-level posts, held ones, replies and replies to replies in two sessions,
    every number, total and reply count equals a recount from the comments themselves."""
    sessions = [await store.session((await new_board(server.url)).session) for _ in range(2)]
    roots = {}
    for session in sessions:
        first, _ = await store.post(session, person(), f"root {nonce()}", None, None)
        roots[session.id] = first.comment.id
    posts = []
    for i in range(120):
        session = sessions[i % 2]
        parent = roots[session.id] if i % 3 == 0 else None
        hold = Hold("premoderation") if i % 5 == 0 else None
        posts.append(store.post(session, person(), f"post {i} {nonce()}", parent, None, hold=hold))
    first_wave = await asyncio.gather(*posts)
    replies = [
        r.comment for r, _ in first_wave if r.comment.parent_id and r.comment.status == "published"
    ]
    by_slug = {session.slug: session for session in sessions}
    deeper = [
        store.post(by_slug[c.session], person(), f"deeper {nonce()}", c.id, None)
        for c in replies
    ]  # fmt: skip
    await asyncio.gather(*deeper)
    async with store.pool.acquire() as conn:
        for session in sessions:
            row = await conn.fetchrow(
                "SELECT comment_count, last_number FROM sessions WHERE id = $1", session.id
            )
            published = await conn.fetchval(
                "SELECT count(*) FROM comments WHERE session_id = $1 AND status = 'published'",
                session.id,
            )
            numbers = await conn.fetch(
                """SELECT number FROM comments WHERE session_id = $1 AND parent_id IS NULL
                   AND status = 'published' ORDER BY id""",
                session.id,
            )
            assert row["comment_count"] == published
            assert [r["number"] for r in numbers] == list(range(1, row["last_number"] + 1))
            assert (
                await conn.fetchval(
                    """SELECT count(*) FROM comments WHERE session_id = $1
                   AND (status <> 'published' OR parent_id IS NOT NULL) AND number IS NOT NULL""",
                    session.id,
                )
                == 0
            )
        wrong = await conn.fetch(
            """WITH RECURSIVE up(id, ancestor) AS (
                   SELECT id, parent_id FROM comments
                   WHERE session_id = ANY($1::bigint[]) AND status = 'published'
                     AND parent_id IS NOT NULL
                   UNION ALL
                   SELECT up.id, c.parent_id FROM up JOIN comments c ON c.id = up.ancestor
                   WHERE c.parent_id IS NOT NULL)
               SELECT c.id, c.reply_count, count(up.id) AS recounted
               FROM comments c LEFT JOIN up ON up.ancestor = c.id
               WHERE c.session_id = ANY($1::bigint[])
               GROUP BY c.id HAVING c.reply_count <> count(up.id)""",
            [session.id for session in sessions],
        )
    assert wrong == []


async def test_each_post_is_judged_after_the_ones_before_it_in_its_batch(
    store: Store, session: SessionRecord
) -> None:
    slow = dataclasses.replace(session, slow_mode_seconds=60)
    someone = person()

    def judge(standing: Standing) -> Hold | None:
        return admit(standing, slow, someone, None)

    bodies = [f"again {nonce()}" for _ in range(8)]
    posts = [store.post(slow, someone, body, None, None, admit=judge) for body in bodies]
    tries = await asyncio.gather(*posts, return_exceptions=True)
    written = [t for t in tries if not isinstance(t, BaseException)]
    refused = [t for t in tries if isinstance(t, TooManyRequests)]
    assert len(written) == 1 and len(refused) == 7, tries
    assert {r.code for r in refused} == {"slow_mode"}


async def test_a_refused_post_writes_nothing_and_its_batch_goes_on(
    store: Store, session: SessionRecord
) -> None:
    refused_author = person("Refused Newcomer")

    def refuse(standing: Standing) -> None:
        raise Forbidden("banned", "not this one")

    others = [person() for _ in range(20)]
    outcomes = await asyncio.gather(
        *(store.post(session, who, f"fine {nonce()}", None, None) for who in others[:10]),
        store.post(session, refused_author, f"refused {nonce()}", None, None, admit=refuse),
        *(store.post(session, who, f"fine {nonce()}", None, None) for who in others[10:]),
        return_exceptions=True,
    )
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], BackchannelError)
    assert failures[0].code == "banned"
    rows = await seqs_and_numbers(store, session)
    assert len(rows) == 20 and not any(r["body"].startswith("refused") for r in rows)
    # Not even its author's details were written.
    assert await store.author_of(refused_author) is None


async def test_a_post_postgresql_rejects_fails_alone(store: Store, session: SessionRecord) -> None:
    # 5,001 characters: the API refuses this before the store; the schema's CHECK is the last
    # line, and here the only one.
    too_long = "x" * 5001
    authors = [person() for _ in range(30)]
    outcomes = await asyncio.gather(
        *(store.post(session, who, f"kept {nonce()}", None, None) for who in authors[:15]),
        store.post(session, person(), too_long, None, None),
        *(store.post(session, who, f"kept {nonce()}", None, None) for who in authors[15:]),
        return_exceptions=True,
    )
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], asyncpg.CheckViolationError)
    rows = await seqs_and_numbers(store, session)
    assert len(rows) == 30
    assert [r["seq"] for r in rows] == list(range(rows[0]["seq"], rows[0]["seq"] + 30))


async def test_the_same_client_key_twice_in_one_batch_posts_once(
    store: Store, session: SessionRecord
) -> None:
    someone = person()
    key = uuid.uuid4().hex
    first, second = await asyncio.gather(
        store.post(session, someone, f"once {nonce()}", None, key),
        store.post(session, someone, f"once {nonce()}", None, key),
    )
    assert first[0].created and not second[0].created
    assert first[0].comment.id == second[0].comment.id and second[1] is None
    assert len(await seqs_and_numbers(store, session)) == 1


async def test_posts_to_many_sessions_share_transactions_each_session_gapless(
    server: InProcessServer, store: Store
) -> None:
    sessions = [await store.session((await new_board(server.url)).session) for _ in range(6)]
    authors = [person(f"Author {i}") for i in range(12)]
    outcomes = await asyncio.gather(
        *(
            store.post(sessions[i % 6], authors[i % 12], f"many {i} {nonce()}", None, None)
            for i in range(240)
        )
    )
    times = set()
    for n, session in enumerate(sessions):
        rows = await seqs_and_numbers(store, session)
        assert len(rows) == 40
        assert [r["seq"] for r in rows] == list(range(rows[0]["seq"], rows[0]["seq"] + 40))
        assert [r["number"] for r in rows] == list(range(1, 41))
        assert all(r["body"].startswith("many ") and int(r["body"].split()[1]) % 6 == n
                   for r in rows)  # fmt: skip
        times |= {r["created_at"] for r in rows}
        # Each event's total counts the session's comments up to and including it.
        mine = sorted((r.seq, e) for r, e in outcomes if r.comment.session == session.slug)
        totals = [msgspec.json.decode(e)["total"] for _, e in mine]  # type: ignore[arg-type]
        assert totals == list(range(1, 41))
    # One transaction's posts share its clock: 240 posts over 6 sessions in far fewer.
    assert len(times) < 120


async def test_a_closed_session_refuses_its_posts_and_not_the_others_of_the_batch(
    server: InProcessServer, store: Store
) -> None:
    open_one = await store.session((await new_board(server.url)).session)
    closed = await store.session((await new_board(server.url, state="closed")).session)
    outcomes = await asyncio.gather(
        *(store.post(open_one, person(), f"open {nonce()}", None, None) for _ in range(10)),
        *(store.post(closed, person(), f"closed {nonce()}", None, None) for _ in range(5)),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 5 and all(getattr(o, "code", "") == "session_closed" for o in refused)
    assert len(await seqs_and_numbers(store, open_one)) == 10
    assert await seqs_and_numbers(store, closed) == []


async def test_a_post_judged_by_outdated_settings_is_refused_unwritten(
    server: InProcessServer, store: Store, database_url: str
) -> None:
    """Another process changed the session after this one read it: the batch sees the version
    move under the session's lock and refuses the post (to be judged again), writing nothing,
    while a post judged by the current record goes through in the same batch."""
    kept = await store.session((await new_board(server.url)).session)
    other = await Store.connect(database_url, 1)
    try:
        moderator = dataclasses.replace(person("Mo"), role="moderator")
        patch = msgspec.convert({"premoderated": True}, SessionPatch)
        await other.update_session(kept, patch, moderator)
    finally:
        await other.close()
    current = await store.session(kept.slug)
    assert current.settings_version == kept.settings_version + 1
    outdated, fresh = await asyncio.gather(
        store.post(kept, person(), f"judged by the old record {nonce()}", None, None),
        store.post(current, person(), f"judged by the new one {nonce()}", None, None),
        return_exceptions=True,
    )
    assert isinstance(outdated, SessionChanged) and outdated.code == "session_changed"
    assert isinstance(fresh, tuple) and fresh[0].created
    async with store.pool.acquire() as conn:
        bodies = await conn.fetch("SELECT body FROM comments WHERE session_id = $1", kept.id)
    assert [row["body"] for row in bodies] == [fresh[0].comment.body]


async def test_two_processes_batching_the_same_sessions_never_deadlock(
    server: InProcessServer, store: Store, database_url: str
) -> None:
    other = await Store.connect(database_url, 4)  # a second process's store
    try:
        sessions = [await store.session((await new_board(server.url)).session) for _ in range(5)]
        # Each store meets the sessions in its own order; both lock them in id order.
        posts = [
            (store if i % 2 else other).post(
                sessions[(i * 3 if i % 2 else -i) % 5], person(), f"both {nonce()}", None, None
            )
            for i in range(300)
        ]
        outcomes = await asyncio.gather(*posts)
        assert all(result.seq is not None for result, _ in outcomes)
        for session in sessions:
            rows = await seqs_and_numbers(store, session)
            assert [r["seq"] for r in rows] == list(range(rows[0]["seq"], rows[0]["seq"] + 60))
    finally:
        await other.close()


async def test_posts_waiting_past_their_bounds_are_refused_not_queued(
    store: Store, session: SessionRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bounds made small: every post is submitted before the writer's first turn.
    monkeypatch.setattr(posting, "MAX_WAITING_IN_PROCESS", 5)
    tries = await asyncio.gather(
        *(store.post(session, person(), f"bound {nonce()}", None, None) for _ in range(12)),
        return_exceptions=True,
    )
    refused = [t for t in tries if isinstance(t, BackchannelError)]
    assert len(refused) == 7 and {r.code for r in refused} == {"posts_busy"}
    assert len(await seqs_and_numbers(store, session)) == 5
    monkeypatch.setattr(posting, "MAX_WAITING_IN_PROCESS", 1000)
    monkeypatch.setattr(posting, "MAX_WAITING", 3)
    tries = await asyncio.gather(
        *(store.post(session, person(), f"bound {nonce()}", None, None) for _ in range(4)),
        return_exceptions=True,
    )
    assert [getattr(t, "code", None) for t in tries].count("session_busy") == 1
