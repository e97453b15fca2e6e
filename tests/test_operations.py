"""Operations: Prometheus metrics on their own address, a drain on SIGTERM that loses no
acknowledged post, structured logs that never carry a token or a comment's text, request ids,
the admin view of the busiest sessions. Real processes, real sockets, real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from client import Api, ApiError, Feed
from server import heap
from server.config import Settings

from .conftest import Board, make_token, new_board
from .servers import InProcessServer, RedisServer, ServerProcess


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, from the Prometheus text format."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def until(condition: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


# --- Metrics -------------------------------------------------------------------------------------


async def test_metrics_show_the_traffic_on_their_own_address(
    make_settings: Callable[..., Settings], workdir: Path
) -> None:
    redis = RedisServer(workdir / "metrics-redis").start()
    settings = make_settings(
        metrics_address="127.0.0.1:0", redis_url=redis.url, ws_send_buffer_limit=4096
    )
    server = await InProcessServer(settings).start()
    try:
        services = server.app.state.services
        port = services.metrics.port
        assert port is not None and port != server.port
        async with httpx.AsyncClient() as http:
            public = await http.get(f"{server.url}/metrics")
        assert public.status_code == 404  # never on the public address
        board = await new_board(server.url)
        stuck_sock = socket.socket()
        stuck_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        stuck_sock.connect(("127.0.0.1", server.port))
        url = f"ws://127.0.0.1:{server.port}/v1/sessions/{board.session}/live"
        async with Feed(board.url, board.session, since=0) as watcher, \
                connect(url, sock=stuck_sock, max_queue=1, ping_interval=None) as stuck, \
                board.api() as api:  # fmt: skip
            # Until the stuck client is shed (the kernel's buffers fill first).
            posted = 0
            while services.hub.stats.shed == 0:
                assert posted < 2000, "the stuck client was never shed"
                await asyncio.gather(*(api.post(board.session, "🌊" * 5000) for _ in range(8)))
                posted += 8
            await watcher.events(posted, timeout=60)
            # Redis restarts and the bus reconnects.
            redis.kill()
            redis.start()
            await until(lambda: services.hub.bus.reconnects >= 1)
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(stuck.recv(), 30)
            metrics_url = f"http://127.0.0.1:{port}/metrics"
            seen: dict[str, float] = {}

            async def scraped() -> bool:
                async with httpx.AsyncClient() as http:
                    seen.update(samples((await http.get(metrics_url)).text))
                return seen.get("backchannel_redis_reconnects_total", 0) >= 1

            deadline = time.monotonic() + 20
            while not await scraped():
                assert time.monotonic() < deadline, seen
                await asyncio.sleep(0.2)
        for name in (
            "backchannel_events_published_total",
            "backchannel_deliveries_total",
            "backchannel_frames_sent_total",
            "backchannel_bytes_sent_total",
            "backchannel_clients_shed_total",
            "backchannel_redis_reconnects_total",
            "backchannel_post_seconds_count",
            "backchannel_fanout_seconds_count",
            'backchannel_db_pool_connections{state="idle"}',
            "backchannel_db_pool_max",
        ):
            assert seen.get(name, 0) > 0, f"{name} is {seen.get(name)}"
        assert "backchannel_connections" in seen and "backchannel_watched_sessions" in seen
        assert seen["backchannel_events_published_total"] >= posted
        # No label grows with the audience: no session or user in any metric.
        assert not [n for n in seen if board.session in n or "session=" in n or "user=" in n]
    finally:
        await server.stop()
        redis.stop()


async def test_a_bad_metrics_address_is_refused_at_start() -> None:
    from server.config import load_settings
    from server.errors import ConfigError

    with pytest.raises(ConfigError, match="METRICS_ADDRESS"):
        load_settings({"METRICS_ADDRESS": "nine-thousand"}, dotenv=None)


# --- The busiest sessions, request ids -----------------------------------------------------------


async def test_admins_see_the_busiest_sessions_and_no_one_else(server: InProcessServer) -> None:
    quiet, busy = await new_board(server.url), await new_board(server.url)
    feeds = [Feed(server.url, busy.session) for _ in range(3)] + [Feed(server.url, quiet.session)]
    for feed in feeds:
        await feed.__aenter__()
    try:
        async with Api(server.url, make_token("admin", "*")) as admin:
            deadline = time.monotonic() + 20
            while True:  # each feed joins its session just after its hello
                listed = await admin.request("GET", "/v1/admin/sessions", params={"limit": 200})
                counts = {s["slug"]: (s["watching"], s["here"]) for s in listed["sessions"]}
                if counts.get(busy.session) == (3, 3) and counts.get(quiet.session) == (1, 1):
                    break
                assert time.monotonic() < deadline, counts
                await asyncio.sleep(0.05)
        slugs = [s["slug"] for s in listed["sessions"]]
        assert slugs.index(busy.session) < slugs.index(quiet.session)
        async with Api(server.url, make_token("admin", busy.event)) as scoped:
            with pytest.raises(ApiError) as refused:
                await scoped.request("GET", "/v1/admin/sessions")
        assert refused.value.status == 403
    finally:
        for feed in feeds:
            await feed.__aexit__(None, None, None)


async def test_every_response_carries_a_request_id(board: Board) -> None:
    async with httpx.AsyncClient(base_url=board.url) as http:
        mine = await http.get(f"/v1/sessions/{board.session}", headers={"X-Request-ID": "abc-123"})
        fresh = await http.get("/v1/no/such/route")
        hostile = await http.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert mine.headers["x-request-id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{16}", fresh.headers["x-request-id"])
    assert fresh.headers["x-backchannel-server"]
    assert hostile.headers["x-request-id"] != "<script>"


# --- Structured logs -----------------------------------------------------------------------------


async def test_json_logs_name_the_request_and_session_never_the_token_or_text(
    env: dict[str, str], workdir: Path
) -> None:
    log_path = workdir / "json.log"
    server = await ServerProcess(
        {**env, "LOG_FORMAT": "json", "SERVER_NAME": "j"}, log_path
    ).start()
    try:
        board = await new_board(server.url)
        token = make_token("attendee", board.event, name="Quiet Person")
        secret_text = "my-very-private-words-" + "x" * 8
        async with Api(server.url, token) as api, Feed(server.url, board.session, token=token) as f:
            await f.next_message("auth.ok")
            await api.http.post(
                f"/v1/sessions/{board.session}/comments",
                json={"body": secret_text},
                headers={"X-Request-ID": "req-42"},
            )
    finally:
        server.stop()
    text = log_path.read_text()
    assert token not in text and secret_text not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines, text[-2000:]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    created = [line for line in lines if "comment.created" in line["message"]]
    assert created and created[0]["request_id"] == "req-42"
    assert created[0]["session"] == board.session
    # uvicorn's own lines go through the same format.
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert not [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("{")]


# --- Drain on SIGTERM ----------------------------------------------------------------------------


async def test_sigterm_drains_no_acknowledged_post_is_lost(
    env: dict[str, str], workdir: Path, database_url: str
) -> None:
    server = await ServerProcess(
        {**env, "SERVER_NAME": "draining", "SHUTDOWN_GRACE": "5"}, workdir / "drain.log"
    ).start()
    board = await new_board(server.url)
    acknowledged: list[int] = []
    refused = 0
    stop = asyncio.Event()

    async def post_forever(api: Api) -> None:
        nonlocal refused
        n = 0
        while not stop.is_set():
            n += 1
            try:
                acknowledged.append(
                    (await api.post(board.session, f"in flight {n}"))["comment"]["id"]
                )
            except (httpx.TransportError, ApiError):
                refused += 1  # not acknowledged: the client would retry elsewhere
                await asyncio.sleep(0.01)

    watcher = Feed(server.url, board.session)
    await watcher.__aenter__()
    apis = [Api(server.url, make_token("attendee", board.event)) for _ in range(4)]
    posters = [asyncio.create_task(post_forever(api)) for api in apis]
    try:
        await until(lambda: len(acknowledged) >= 20)
        assert server.process is not None
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(Exception) as closed:
            while True:
                await watcher.next_event(timeout=30)
        assert getattr(closed.value, "code", None) == 1012, closed.value
        assert "reconnect" in getattr(closed.value, "reason", "")
        await asyncio.to_thread(server.process.wait, 30)
        took = time.monotonic() - began
        print(f"drained and exited in {took:.2f} s (grace 5 s)")
        assert server.process.returncode == 0
    finally:
        stop.set()
        await asyncio.gather(*posters)
        for api in apis:
            await api.__aexit__(None, None, None)
        server.stop()
    conn = await asyncpg.connect(database_url)
    try:
        stored = {
            r["id"]
            for r in await conn.fetch(
                """SELECT c.id FROM comments c JOIN sessions s ON s.id = c.session_id
                   WHERE s.slug = $1""",
                board.session,
            )
        }
    finally:
        await conn.close()
    assert set(acknowledged) <= stored, "an acknowledged post was lost"
    assert len(stored) == len(acknowledged)  # nothing half-stored either


# --- Rate limits ---------------------------------------------------------------------------------


async def test_posting_and_connecting_are_rate_limited(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        posts_per_minute=3,
        address_posts_per_minute=8,
        address_connects_per_minute=4,
        rate_limit_exempt="",
    )
    server = await InProcessServer(settings).start()
    try:
        board = await new_board(server.url)
        async with board.api() as person, board.api("presenter") as presenter:
            for n in range(3):
                await person.post(board.session, f"thought {n}")
            with pytest.raises(ApiError) as per_person:
                await person.post(board.session, "one too many")
            error = per_person.value
            assert (error.status, error.code) == (429, "rate_limited")
            assert 1 <= error.details["retry_after"] <= 60
            for n in range(4):  # presenters are not limited per person...
                await presenter.post(board.session, f"from the stage {n}")
            with pytest.raises(ApiError) as per_address:  # ...but the address is (8 a minute)
                await presenter.post(board.session, "and one more")
            assert (per_address.value.status, per_address.value.code) == (429, "rate_limited")
            response = await presenter.http.post(
                f"/v1/sessions/{board.session}/comments", json={"body": "again"}
            )
            assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
        async with board.api() as reader:
            total = (await reader.session(board.session))["total"]
        assert total == 7  # nothing refused was stored
        closes = []
        for _ in range(6):
            try:
                async with Feed(server.url, board.session) as feed:
                    await feed.next_message("watching", timeout=10)
            except ConnectionClosed as closed:  # before its hello
                assert closed.rcvd is not None
                closes.append((closed.rcvd.code, closed.rcvd.reason))
        assert len(closes) == 2  # 4 a minute: the 5th and 6th are refused
        assert closes[0][0] == 4429 and "retry in" in closes[0][1]
    finally:
        await server.stop()


def test_the_grafana_dashboard_uses_only_metrics_the_server_exports() -> None:
    from server.metrics import Metrics

    dashboard = Path(__file__).resolve().parent.parent / "deploy/grafana/backchannel-dashboard.json"
    queried = set(re.findall(r"backchannel_\w+", dashboard.read_text(encoding="utf-8")))
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    families = {family.name: family.type for family in Metrics().registry.collect()}
    exported = {name + end for name, kind in families.items() for end in suffixes[kind]}
    assert queried, "the dashboard queries nothing"
    assert queried <= exported, f"not exported: {sorted(queried - exported)}"
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in queried}
    assert set(families) <= shown, f"not on the dashboard: {sorted(set(families) - shown)}"


def test_a_started_server_sets_the_collector_for_many_connections(server: InProcessServer) -> None:
    # The in-process server shares this process's collector: its lifespan set the thresholds.
    assert gc.get_threshold() == (heap.YOUNG, heap.MIDDLE, heap.OLD)
