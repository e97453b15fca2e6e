"""The live feed: replay with ``since``, ordering under concurrency, redaction, private notices,
and refusals. Real server, real WebSockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from client import Api, Feed, FeedClosed
from server.config import Settings

from .conftest import Board, make_token, new_board, nonce
from .servers import InProcessServer


@pytest.fixture(scope="module")
async def small_ring_server(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[InProcessServer]:
    """A server whose ring holds 4 events, so catch-ups go to PostgreSQL."""
    srv = await InProcessServer(make_settings(ring_size=4)).start()
    yield srv
    await srv.stop()


@pytest.fixture(params=["ring", "database"])
async def any_board(
    request: pytest.FixtureRequest, board: Board, small_ring_server: InProcessServer
) -> Board:
    return board if request.param == "ring" else await new_board(small_ring_server.url)


async def post_many(api: Api, session: str, count: int, prefix: str = "comment") -> list[dict]:
    return [await api.post(session, f"{prefix} {i}") for i in range(count)]


async def test_reconnect_with_since_gets_exactly_the_missed_events(any_board: Board) -> None:
    board = any_board
    async with board.api() as api:
        async with Feed(board.url, board.session, since=0) as feed:
            await post_many(api, board.session, 5, "before")
            assert [e["seq"] for e in await feed.events(5)] == [1, 2, 3, 4, 5]
            last = feed.last_seq
        missed = await post_many(api, board.session, 20, "while away")
        async with Feed(board.url, board.session, since=last) as feed:
            replay = await feed.events(20)
            assert [e["seq"] for e in replay] == list(range(6, 26))
            assert [e["comment"]["body"] for e in replay] == [m["comment"]["body"] for m in missed]
            live = await api.post(board.session, "live again")
            event = await feed.next_event()  # Feed raises on any gap or duplicate
            assert event["seq"] == live["seq"] == 26


async def test_concurrent_posters_get_consecutive_seqs_and_watchers_see_all_in_order(
    board: Board,
) -> None:
    posters, each = 50, 2
    feeds = [Feed(board.url, board.session, since=0) for _ in range(5)]
    for feed in feeds:
        await feed.__aenter__()
    try:
        clients = [board.api(sub=f"poster-{i}") for i in range(posters)]

        async def run(api: Api, i: int) -> list[int]:
            return [(await api.post(board.session, f"from {i} #{n}"))["seq"] for n in range(each)]

        seqs = [
            s
            for batch in await asyncio.gather(*(run(c, i) for i, c in enumerate(clients)))
            for s in batch
        ]
        total = posters * each
        assert sorted(seqs) == list(range(1, total + 1))
        for feed in feeds:
            received = await feed.events(total)
            assert [e["seq"] for e in received] == list(range(1, total + 1))
        for api in clients:
            await api.http.aclose()
    finally:
        for feed in feeds:
            await feed.__aexit__(None, None, None)


async def test_removed_text_never_leaves_the_server(any_board: Board) -> None:
    board = any_board
    secret = f"words to be removed {nonce()}"
    async with board.api() as api, board.api("moderator") as mod:
        async with Feed(board.url, board.session, since=0) as live:
            doomed = (await api.post(board.session, secret))["comment"]
            await api.post(board.session, "a reply that keeps the thread", parent_id=doomed["id"])
            for i in range(6):  # push the early events out of a small ring
                await api.post(board.session, f"filler {i}")
            removal = await mod.remove(doomed["id"])
            assert removal["changed"] is True
            events = await live.events(9)
            assert events[-1]["kind"] == "comment.removed"
            assert events[-1]["comment"]["body"] is None
        async with board.anonymous() as anonymous:
            page = await anonymous.http.get(f"/v1/sessions/{board.session}/comments")
        assert secret not in page.text
        placeholder = page.json()["threads"][-1]
        assert placeholder["comment"]["status"] == "removed"
        assert placeholder["comment"]["author"] is None
        assert placeholder["replies"][0]["body"] == "a reply that keeps the thread"
        async with Feed(board.url, board.session, since=0) as replay:
            replayed = await replay.events(9)
        assert secret not in json.dumps(replayed)
        assert replayed[0]["kind"] == "comment.created"
        assert replayed[0]["comment"]["status"] == "removed"


async def test_moderator_removal_is_idempotent_and_writes_one_event(board: Board) -> None:
    async with board.api() as api, board.api("moderator", name="Mod Erin") as mod:
        comment = (await api.post(board.session, "off-topic advert"))["comment"]
        first = await mod.remove(comment["id"])
        again = await mod.remove(comment["id"])
        session = await api.session(board.session)
    assert first["changed"] and not again["changed"]
    assert again["removed_by"] == first["removed_by"] and "Mod Erin" in again["removed_by"]
    assert again["removed_at"] == first["removed_at"]
    assert session["head"] == 2  # the post and one removal


async def test_author_is_told_privately_when_their_comment_is_removed(board: Board) -> None:
    author_token = make_token("attendee", board.event, sub="author-1")
    async with Api(board.url, author_token) as author, board.api("moderator") as mod:
        comment = (await author.post(board.session, "something against the rules"))["comment"]
        async with (
            Feed(board.url, board.session, token=author_token) as mine,
            Feed(board.url, board.session) as other,
        ):
            ok = await mine.next_message("auth.ok")
            assert ok["author_id"] == comment["author"]["id"]
            await mod.remove(comment["id"])
            notice = await mine.next_message("notice")
            assert notice == {
                "type": "notice",
                "kind": "comment.removed",
                "session": board.session,
                "comment_id": comment["id"],
            }
            await other.next_event()  # the public removal, and nothing private
            assert not [m for m in other.messages if m["type"] == "notice"]


async def test_bad_token_on_the_feed_is_refused_and_watching_goes_on(board: Board) -> None:
    async with Feed(board.url, board.session, token="not-a-jwt") as feed, board.api() as api:
        error = await feed.next_message("error")
        assert error["code"] == "token_malformed"
        await api.post(board.session, "still watching")
        assert (await feed.next_event())["comment"]["body"] == "still watching"


async def closed_with(url: str, send: str | bytes | None = None) -> tuple[int, str]:
    async with connect(url, max_size=2**22) as ws:
        if send is not None:
            await ws.recv()  # hello
            await ws.send(send)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code, exc.rcvd.reason


async def test_feed_refusals_close_with_named_codes(board: Board) -> None:
    base = board.url.replace("http", "ws") + f"/v1/sessions/{board.session}/live"
    assert (await closed_with(board.url.replace("http", "ws") + "/v1/sessions/nope/live"))[
        0
    ] == 4404
    assert (await closed_with(base + "?since=abc"))[0] == 4400
    assert (await closed_with(base + "?since=999"))[0] == 4400
    assert (await closed_with(base, '{"type": "subscribe"}'))[0] == 4400
    assert (await closed_with(base, "not json"))[0] == 4400
    assert (await closed_with(base, b"\x00\x01"))[0] == 1003
    code, _ = await closed_with(base, json.dumps({"type": "auth", "token": "x" * 20_000}))
    assert code == 1009


async def test_flooding_client_is_closed_with_1008(board: Board) -> None:
    base = board.url.replace("http", "ws") + f"/v1/sessions/{board.session}/live"
    async with connect(base) as ws:
        await ws.recv()
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(200):
                await ws.send(json.dumps({"type": "auth", "token": "x"}))
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_foreign_origin_is_refused_at_handshake(board: Board) -> None:
    base = board.url.replace("http", "ws") + f"/v1/sessions/{board.session}/live"
    with pytest.raises(Exception, match="403"):
        async with connect(base, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    async with Feed(board.url, board.session, origin=board.url) as feed:
        assert feed.hello["session"] == board.session


async def test_feed_closed_error_carries_code() -> None:
    assert FeedClosed(4008, "too slow").code == 4008


async def test_a_feed_finds_a_session_made_anew_after_this_process_kept_the_old_one(
    server: InProcessServer, database_url: str
) -> None:
    """Feeds open from the session this process keeps in memory; when that one was deleted and
    a session with the same slug made meanwhile, the feed watches the new one."""
    board = await new_board(server.url)
    async with Api(server.url, make_token("attendee", board.event)) as poster:
        await poster.post(board.session, "Kept in memory by this post")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """WITH gone AS (SELECT id FROM sessions WHERE slug = $1),
                    e AS (DELETE FROM session_events WHERE session_id IN (SELECT id FROM gone)),
                    c AS (DELETE FROM comments WHERE session_id IN (SELECT id FROM gone))
               SELECT 1""",
            board.session,
        )
        await conn.execute(
            "DELETE FROM audit_log WHERE session_id IN (SELECT id FROM sessions WHERE slug = $1)",
            board.session,
        )
        # Made anew as another process would make it (this one's memory untouched).
        await conn.execute(
            """WITH old AS (DELETE FROM sessions WHERE slug = $1 RETURNING event_id)
               INSERT INTO sessions (event_id, slug, title)
               SELECT event_id, $1, 'Made anew' FROM old""",
            board.session,
        )
    finally:
        await conn.close()
    async with (
        Feed(server.url, board.session, since=0) as feed,
        Api(server.url, make_token("attendee", board.event)) as poster,
    ):
        await poster.post(board.session, "Into the new session")
        event = await feed.next_event()
        assert (event["seq"], event["comment"]["body"]) == (1, "Into the new session")
