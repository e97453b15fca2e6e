"""The server side of the screens: questions, presenter marks, helpful counts, permalinks,
watcher counts (in one process and across processes), token expiry on the feed, ``watch()`` and
``backchannel watch``, security headers and CORS, demo tokens. Real servers, real sockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from client import Api, ApiError, Feed, watch
from server.config import Settings

from .conftest import Board, make_token, new_board
from .servers import InProcessServer, ServerProcess

HOST_ORIGIN = "https://host.example"
EVIL_ORIGIN = "https://evil.example"

Event = dict[str, Any]


# --- Servers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def cold_server(make_settings: Callable[..., Settings]) -> AsyncIterator[InProcessServer]:
    """A second server on the same database: its rings are cold, so its replays come from
    PostgreSQL while the ``server`` fixture's come from memory."""
    srv = await InProcessServer(make_settings()).start()
    yield srv
    await srv.stop()


@pytest.fixture(scope="module")
async def host_server(make_settings: Callable[..., Settings]) -> AsyncIterator[InProcessServer]:
    """A server that lets the host site https://host.example use the API and the feed."""
    srv = await InProcessServer(make_settings(allowed_origins=HOST_ORIGIN)).start()
    yield srv
    await srv.stop()


def server_process(env: dict[str, str], workdir: Path, role: str) -> ServerProcess:
    """A ``python -m server serve`` child on PostgreSQL and Redis, with a name of its own."""
    name = f"screens-{role}-{uuid.uuid4().hex[:6]}"
    return ServerProcess({**env, "SERVER_NAME": name}, workdir / f"{name}.log")


# --- Helpers -------------------------------------------------------------------------------------


async def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 50 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def events_until(
    feed: Feed, done: Callable[[Event], bool], timeout: float = 10
) -> list[Event]:
    """The events ``feed`` receives up to and including the first one for which ``done``."""
    deadline = time.monotonic() + timeout
    received: list[Event] = []
    while not received or not done(received[-1]):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no awaited event within {timeout}s; got {received}")
        received.append(await feed.next_event(remaining))
    return received


async def watching_reaches(feed: Feed, count: int, timeout: float) -> None:
    """Read ``watching`` messages until one says ``count``."""
    deadline = time.monotonic() + timeout
    last = None
    while last != count:
        remaining = deadline - time.monotonic()
        try:
            message = await feed.next_message("watching", timeout=max(remaining, 0.001))
        except TimeoutError:
            raise AssertionError(f"watching stayed at {last}, expected {count}") from None
        last = message["count"]


async def replay(url: str, session: str) -> list[Event]:
    """Every event of ``session`` as a feed with ``since=0`` replays it from ``url``."""
    async with Api(url) as anonymous:
        head = (await anonymous.session(session))["head"]
    async with Feed(url, session, since=0) as feed:
        return await feed.events(head)


async def post(api: Api, session: str, body: str, **fields: Any) -> Any:
    payload = {"body": body, **fields}
    return await api.request("POST", f"/v1/sessions/{session}/comments", json=payload)


async def set_mark(api: Api, comment_id: int, mark: str, on: bool) -> Any:
    body = {"mark": mark, "on": on}
    return await api.request("POST", f"/v1/comments/{comment_id}/marks", json=body)


async def mark_helpful(api: Api, comment_id: int) -> Any:
    return await api.request("POST", f"/v1/comments/{comment_id}/helpful")


async def locate(api: Api, comment_id: int) -> Any:
    return await api.request("GET", f"/v1/comments/{comment_id}")


async def refusal(call: Any) -> tuple[int, str]:
    """The status and code of the ApiError the awaitable ``call`` raises."""
    with pytest.raises(ApiError) as refused:
        await call
    return refused.value.status, refused.value.code


async def head_of(api: Api, session: str) -> int:
    head: int = (await api.session(session))["head"]
    return head


def helpful_of(event: Event, comment_id: int) -> int | None:
    """The helpful count a ``helpful.counts`` event gives ``comment_id``, if any."""
    if event["kind"] != "helpful.counts":
        return None
    return next((h["helpful_count"] for h in event["helpful"] if h["id"] == comment_id), None)


def top_numbers(page: dict[str, Any]) -> list[int]:
    return [thread["comment"]["number"] for thread in page["threads"]]


def comments_by_id(page: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {thread["comment"]["id"]: thread["comment"] for thread in page["threads"]}


# --- Questions -----------------------------------------------------------------------------------


async def test_a_question_is_stored_and_shown_as_one(board: Board) -> None:
    async with board.api() as api, Feed(board.url, board.session, since=0) as feed:
        asked = (await post(api, board.session, "How do I start?", question=True))["comment"]
        plain = (await api.post(board.session, "Thank you"))["comment"]
        assert (asked["question"], plain["question"]) == (True, False)
        live = await feed.events(2)
        assert [(e["comment"]["id"], e["comment"]["question"]) for e in live] == [
            (asked["id"], True),
            (plain["id"], False),
        ]
        page = await api.page(board.session)
    shown = comments_by_id(page)
    assert (shown[asked["id"]]["question"], shown[plain["id"]]["question"]) == (True, False)


# --- Presenter marks -----------------------------------------------------------------------------


async def test_presenter_marks_set_clear_and_replay(
    board: Board, cold_server: InProcessServer
) -> None:
    async with (
        board.api() as attendee,
        board.api("presenter") as presenter,
        board.api("moderator") as moderator,
        Feed(board.url, board.session, since=0) as feed,
    ):
        comment = (await attendee.post(board.session, "Could you say more?"))["comment"]
        doomed = (await attendee.post(board.session, "Buy my course"))["comment"]
        await feed.events(2)
        cid = comment["id"]

        lit = await set_mark(presenter, cid, "highlighted", True)
        assert lit["changed"] is True
        assert lit["comment"]["highlighted_at"] is not None
        assert lit["comment"]["answered_at"] is None
        event = await feed.next_event()
        assert (event["kind"], event["seq"]) == ("comment.marked", lit["seq"])
        assert event["comment"] == lit["comment"]

        head = await head_of(attendee, board.session)
        again = await set_mark(presenter, cid, "highlighted", True)
        assert (again["changed"], again["seq"]) == (False, None)
        assert again["comment"]["highlighted_at"] == lit["comment"]["highlighted_at"]
        assert await head_of(attendee, board.session) == head  # nothing written

        answered = await set_mark(presenter, cid, "answered", True)
        assert answered["changed"] is True
        assert answered["comment"]["answered_at"] is not None
        assert answered["comment"]["highlighted_at"] == lit["comment"]["highlighted_at"]
        assert (await feed.next_event())["comment"] == answered["comment"]

        cleared = await set_mark(presenter, cid, "highlighted", False)
        assert cleared["changed"] is True
        assert cleared["comment"]["highlighted_at"] is None
        assert cleared["comment"]["answered_at"] == answered["comment"]["answered_at"]
        event = await feed.next_event()
        assert (event["kind"], event["comment"]) == ("comment.marked", cleared["comment"])
        assert (await set_mark(presenter, cid, "highlighted", False))["changed"] is False

        assert await refusal(set_mark(attendee, cid, "answered", False)) == (403, "role_required")
        await moderator.remove(doomed["id"])
        await feed.next_event()
        head = await head_of(attendee, board.session)
        assert await refusal(set_mark(presenter, doomed["id"], "highlighted", True)) == (
            409,
            "not_published",
        )
        assert await head_of(attendee, board.session) == head
        page = await attendee.page(board.session)
    assert comments_by_id(page)[cid] == cleared["comment"]
    for url in (board.url, cold_server.url):  # from memory, then from PostgreSQL
        events = await replay(url, board.session)
        about = [e["comment"] for e in events if e["comment"]["id"] == cid]
        assert len(about) == 4  # created, highlighted, answered, cleared
        assert {(c["highlighted_at"], c["answered_at"]) for c in about} == {
            (None, answered["comment"]["answered_at"])
        }, url


# --- Helpful -------------------------------------------------------------------------------------


async def test_helpful_counts_once_per_person_and_arrives_aggregated(
    board: Board, cold_server: InProcessServer
) -> None:
    async with AsyncExitStack() as stack:
        author = await stack.enter_async_context(board.api())
        moderator = await stack.enter_async_context(board.api("moderator"))
        feed = await stack.enter_async_context(Feed(board.url, board.session, since=0))
        fans = [await stack.enter_async_context(board.api()) for _ in range(20)]
        first = (await author.post(board.session, "Name the feeling first"))["comment"]["id"]
        second = (await author.post(board.session, "Breathe out longer"))["comment"]["id"]
        doomed = (await author.post(board.session, "Visit my site"))["comment"]["id"]
        await feed.events(3)

        marked = await mark_helpful(fans[0], first)
        assert marked == {"comment_id": first, "marked": True, "helpful_count": 1}
        again = await mark_helpful(fans[0], first)
        assert again == {"comment_id": first, "marked": False, "helpful_count": 1}
        await events_until(feed, lambda e: helpful_of(e, first) == 1)
        assert (await mark_helpful(fans[1], first))["helpful_count"] == 2
        await events_until(feed, lambda e: helpful_of(e, first) == 2)

        clicks = await asyncio.gather(*(mark_helpful(fan, second) for fan in fans))
        assert all(click["marked"] for click in clicks)
        assert sorted(click["helpful_count"] for click in clicks) == list(range(1, 21))
        burst = await events_until(feed, lambda e: helpful_of(e, second) == 20, timeout=15)
        assert {e["kind"] for e in burst} == {"helpful.counts"}
        assert len(burst) <= 5, f"{len(burst)} helpful.counts events for 20 clicks"

        await moderator.remove(doomed)
        assert await refusal(mark_helpful(fans[2], doomed)) == (409, "not_published")
        page = await author.page(board.session)
    shown = comments_by_id(page)
    assert (shown[first]["helpful_count"], shown[second]["helpful_count"]) == (2, 20)
    current = {first: 2, second: 20}
    replayed = {
        source: [
            (h["id"], h["helpful_count"])
            for e in await replay(url, board.session)
            if e["kind"] == "helpful.counts"
            for h in e["helpful"]
        ]
        for source, url in (("memory", board.url), ("database", cold_server.url))
    }
    assert {source: {c for c, _ in counts} for source, counts in replayed.items()} == {
        "memory": {first, second},
        "database": {first, second},
    }
    # A replay leaves every count current: its last helpful.counts event for a comment carries
    # the current count (from memory an earlier event may show an older one, set and then
    # corrected in the same replay; from PostgreSQL every one shows the current count).
    final = {source: dict(counts) for source, counts in replayed.items()}
    assert final == {"memory": current, "database": current}
    assert all(n == current[c] for c, n in replayed["database"])


# --- Permalinks ----------------------------------------------------------------------------------


async def test_locate_names_the_page_that_shows_a_comment(board: Board) -> None:
    async with board.api() as api:
        posted = []
        for chunk in range(0, 120, 20):
            posted += await asyncio.gather(
                *(api.post(board.session, f"comment {i}") for i in range(chunk, chunk + 20))
            )
        by_number = {p["comment"]["number"]: p["comment"]["id"] for p in posted}
        assert sorted(by_number) == list(range(1, 121))
        on_first_page = {120, 71}  # 50 a page, newest first
        for number in (7, 70, 71, 120):
            where = await locate(api, by_number[number])
            assert where["comment"]["id"] == by_number[number]
            assert where["root_id"] == by_number[number]
            assert (where["before"] is None) == (number in on_first_page), (number, where)
            page = await api.page(board.session, before=where["before"])
            assert number in top_numbers(page), (number, where["before"], top_numbers(page))

        seventh = await locate(api, by_number[7])
        reply = (await api.post(board.session, "a reply", parent_id=by_number[7]))["comment"]
        nested = (await api.post(board.session, "a reply to it", parent_id=reply["id"]))["comment"]
        for comment in (reply, nested):
            where = await locate(api, comment["id"])
            assert (where["comment"]["id"], where["root_id"]) == (comment["id"], by_number[7])
            assert where["before"] == seventh["before"]
        page = await api.page(board.session, before=seventh["before"])
        thread = next(t for t in page["threads"] if t["comment"]["id"] == by_number[7])
        assert [r["id"] for r in thread["replies"]] == [reply["id"], nested["id"]]
        assert await refusal(locate(api, 2**40)) == (404, "unknown_comment")


# --- Watching counts -----------------------------------------------------------------------------


async def test_a_joining_watcher_is_told_how_many_watch(board: Board) -> None:
    async with AsyncExitStack() as stack:
        for count in range(1, 4):
            feed = await stack.enter_async_context(Feed(board.url, board.session))
            message = await feed.next_message("watching")
            assert message == {"type": "watching", "session": board.session, "count": count}


async def test_watching_counts_add_up_across_processes_and_drop_a_dead_one(
    env: dict[str, str], workdir: Path
) -> None:
    a, b = server_process(env, workdir, "a"), server_process(env, workdir, "b")
    try:
        await asyncio.gather(a.start(), b.start())
        board = await new_board(a.url)
        async with AsyncExitStack() as stack:
            on_a = [await stack.enter_async_context(Feed(a.url, board.session)) for _ in range(20)]
            on_b = [await stack.enter_async_context(Feed(b.url, board.session)) for _ in range(10)]
            await asyncio.gather(*(watching_reaches(f, 30, 20) for f in on_a + on_b))

            for feed in on_a[:5] + on_b[:5]:
                await feed.__aexit__(None, None, None)
            staying_a, staying_b = on_a[5:], on_b[5:]
            await asyncio.gather(*(watching_reaches(f, 20, 20) for f in staying_a + staying_b))

            assert b.process is not None
            b.process.kill()
            await asyncio.gather(*(watching_reaches(f, len(staying_a), 30) for f in staying_a))
    finally:
        a.stop()
        b.stop()


# --- Token expiry on the feed --------------------------------------------------------------------


async def test_an_expired_token_is_told_and_watching_goes_on(board: Board) -> None:
    short = make_token("attendee", board.event, ttl=3)
    async with board.api() as api, Feed(board.url, board.session, since=0, token=short) as feed:
        ok = await feed.next_message("auth.ok")
        assert ok["role"] == "attendee"
        assert not [m for m in feed.messages if m["type"] == "error"]
        expired = await feed.next_message("error", timeout=20)
        assert expired["code"] == "token_expired"
        posted = await api.post(board.session, "still watching after expiry")
        assert (await feed.next_event())["seq"] == posted["seq"]
        assert feed.ws is not None
        fresh = make_token("attendee", board.event)
        await feed.ws.send(json.dumps({"type": "auth", "token": fresh}))
        again = await feed.next_message("auth.ok")
        assert again["expires_at"] > ok["expires_at"]
        posted = await api.post(board.session, "and after the fresh token")
        assert (await feed.next_event())["seq"] == posted["seq"]


# --- watch() and backchannel watch ---------------------------------------------------------------


async def post_bodies(url: str, event: str, session: str, bodies: list[str]) -> list[int]:
    async with Api(url, make_token("attendee", event)) as api:
        return [(await api.post(session, body))["seq"] for body in bodies]


async def test_watch_resumes_across_a_server_restart(env: dict[str, str], workdir: Path) -> None:
    first = server_process(env, workdir, "first")
    second = server_process(env, workdir, "second")
    second.port = first.port
    second.env["PORT"] = str(first.port)
    seen: list[Event] = []

    async def follow(url: str, session: str) -> None:
        async for event in watch(url, session, since=0):
            seen.append(event)

    follower: asyncio.Task[None] | None = None
    try:
        await first.start()
        board = await new_board(first.url)
        follower = asyncio.create_task(follow(first.url, board.session))
        before = [f"before the restart {i}" for i in range(5)]
        after = [f"after the restart {i}" for i in range(5)]
        await post_bodies(first.url, board.event, board.session, before)
        await eventually(lambda: len(seen) >= 5, 15, "the first five events")
        first.stop()
        await second.start()
        await post_bodies(second.url, board.event, board.session, after)
        await eventually(lambda: len(seen) >= 10, 30, "the five events after the restart")
        # One more, so that a duplicate or a stray event before it would show.
        (marker,) = await post_bodies(second.url, board.event, board.session, ["marker"])
        await eventually(lambda: len(seen) >= 11, 15, "the marker")
        assert not follower.done()
        assert [e["seq"] for e in seen] == list(range(1, 12))
        assert marker == 11
        assert [e["comment"]["body"] for e in seen] == [*before, *after, "marker"]
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        first.stop()
        second.stop()


async def test_backchannel_watch_prints_one_line_per_event(board: Board, tmp_path: Path) -> None:
    bodies = [f"printed {i} {uuid.uuid4().hex[:8]}" for i in range(3)]
    await post_bodies(board.url, board.event, board.session, bodies[:2])
    with open(tmp_path / "watch.err", "wb") as errors:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "server", "watch", board.url, board.session),
            *("--since", "0"),
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        while len(lines) < 3:
            if len(lines) == 2:
                await post_bodies(board.url, board.event, board.session, bodies[2:])
            remaining = deadline - time.monotonic()
            raw = await asyncio.wait_for(process.stdout.readline(), max(remaining, 0.001))
            assert raw, f"watch exited: {(tmp_path / 'watch.err').read_text()}"
            lines.append(raw.decode().rstrip("\n"))
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
    for seq, (line, body) in enumerate(zip(lines, bodies, strict=True), 1):
        assert line.startswith(f"#{seq} comment.created {seq}. "), line
        assert line.endswith(f": {body}"), line


# --- Headers, CORS and origins -------------------------------------------------------------------


async def test_pages_carry_a_strict_csp_and_responses_nosniff(server: InProcessServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        for path in ("/healthz", "/v1/sessions/no-such-session", "/openapi.json"):
            response = await http.get(path)
            assert response.headers["x-content-type-options"] == "nosniff", path


async def preflight(url: str, path: str, origin: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with httpx.AsyncClient(base_url=url) as http:
        return await http.options(path, headers=headers)


async def test_cors_lets_the_host_site_in_and_no_other(host_server: InProcessServer) -> None:
    board = await new_board(host_server.url)
    path = f"/v1/sessions/{board.session}/comments"
    allowed = await preflight(host_server.url, path, HOST_ORIGIN)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == HOST_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    refused = await preflight(host_server.url, path, EVIL_ORIGIN)
    assert refused.status_code >= 400
    assert "access-control-allow-origin" not in refused.headers
    async with httpx.AsyncClient(base_url=host_server.url) as http:
        simple = await http.get(path, headers={"Origin": EVIL_ORIGIN})
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


async def test_the_feed_accepts_the_host_site_origin_and_refuses_others(
    host_server: InProcessServer,
) -> None:
    board = await new_board(host_server.url)
    async with Feed(host_server.url, board.session, origin=HOST_ORIGIN) as feed:
        assert feed.hello["session"] == board.session
    url = host_server.url.replace("http", "ws") + f"/v1/sessions/{board.session}/live"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, origin=EVIL_ORIGIN):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403


# --- Demo tokens ---------------------------------------------------------------------------------


async def dev_token(url: str, **identity: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as http:
        return await http.post("/v1/dev/token", json=identity)


async def test_dev_tokens_come_only_from_a_demo_server(
    server: InProcessServer, make_settings: Callable[..., Settings]
) -> None:
    assert (await dev_token(server.url, sub="someone")).status_code == 404
    demo = await InProcessServer(make_settings(demo=True, jwt_secrets="")).start()
    try:
        admin = (await dev_token(demo.url, sub="demo-admin", role="admin")).json()["token"]
        suffix = uuid.uuid4().hex[:8]
        event, session = f"demo-ev-{suffix}", f"demo-se-{suffix}"
        async with Api(demo.url, admin) as api:
            await api.create_event(event, "Demo event")
            await api.create_session(event, session, "Demo session")
        identity = {"name": "Maya Lin", "profession": "Nursing", "city": "Albany", "country": "US"}
        issued = await dev_token(demo.url, sub=f"maya-{suffix}", **identity)
        assert issued.status_code == 200
        async with Api(demo.url, issued.json()["token"]) as api:
            posted = await api.post(session, "Hello from the demo")
        author = posted["comment"]["author"]
        assert {k: author[k] for k in identity} == identity
        assert posted["comment"]["body"] == "Hello from the demo"
    finally:
        await demo.stop()
