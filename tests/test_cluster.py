"""Several server processes sharing PostgreSQL and Redis, as in production: each runs as
``python -m server serve`` in a child process."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from client import Api, ApiError, Feed
from server.cli import LISTEN_BACKLOG

from .conftest import make_token, new_board
from .servers import RedisServer, ServerProcess

BIG = "🌊" * 5000  # 5,000 characters, 20,000 bytes of UTF-8: the largest comment


@pytest.fixture(scope="module")
async def pair(
    env: dict[str, str], workdir: Path
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    a = ServerProcess({**env, "SERVER_NAME": "replica-a"}, workdir / "replica-a.log")
    b = ServerProcess({**env, "SERVER_NAME": "replica-b"}, workdir / "replica-b.log")
    await asyncio.gather(a.start(), b.start())
    yield a, b
    a.stop()
    b.stop()


async def test_post_on_one_process_reaches_watchers_on_both(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    board = await new_board(a.url)
    async with (
        Feed(a.url, board.session, since=0) as on_a,
        Feed(b.url, board.session, since=0) as on_b,
        Api(a.url, make_token("attendee", board.event)) as poster,
        Api(b.url, make_token("moderator", board.event)) as moderator,
    ):
        assert (on_a.hello["server"], on_b.hello["server"]) == ("replica-a", "replica-b")
        posted = await poster.post(board.session, "Posted through replica A")
        for feed in (on_a, on_b):
            event = await feed.next_event()
            assert event["comment"]["body"] == "Posted through replica A"
        await moderator.remove(posted["comment"]["id"])
        for feed in (on_a, on_b):
            event = await feed.next_event()
            assert (event["kind"], event["comment"]["body"]) == ("comment.removed", None)


async def test_a_change_made_on_one_process_judges_the_next_post_on_the_other(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    """Replica A keeps the session in memory for posting; what a moderator changes through
    replica B (pre-moderation, slow mode, the event's word lists) applies to A's very next post,
    with no wait and nothing stale."""
    a, b = pair
    board = await new_board(a.url)
    async with (
        Api(a.url, make_token("attendee", board.event, sub="first")) as first,
        Api(a.url, make_token("attendee", board.event, sub="second")) as second,
        Api(b.url, make_token("moderator", board.event)) as moderator,
    ):
        posted = await first.post(board.session, "Before any change")  # A now keeps the session
        assert posted["comment"]["status"] == "published"

        await moderator.update_session(board.session, premoderated=True)
        held = await first.post(board.session, "Right after pre-moderation was set on B")
        assert (held["comment"]["status"], held["comment"]["hold_reason"]) == (
            "held", "premoderation"
        )  # fmt: skip

        await moderator.update_session(board.session, premoderated=False, slow_mode_seconds=600)
        with pytest.raises(ApiError) as refused:
            await first.post(board.session, "Too soon under slow mode set on B")
        assert (refused.value.status, refused.value.code) == (429, "slow_mode")

        await moderator.update_session(board.session, slow_mode_seconds=0)
        await moderator.request(
            "PATCH", f"/v1/events/{board.event}/rules", json={"banned_words": ["zorblax"]}
        )
        with pytest.raises(ApiError) as banned:
            await second.post(board.session, "A post saying zorblax")
        assert (banned.value.status, banned.value.code) == (400, "banned_word")

        await moderator.close(board.session)
        with pytest.raises(ApiError) as closed:
            await second.post(board.session, "After B closed the session")
        assert (closed.value.status, closed.value.code) == (409, "session_closed")


async def test_each_response_names_its_replica(pair: tuple[ServerProcess, ServerProcess]) -> None:
    names = set()
    for server in pair:
        async with Api(server.url) as api:
            names.add((await api.http.get("/healthz")).headers["x-backchannel-server"])
    assert names == {"replica-a", "replica-b"}


async def test_watchers_recover_after_redis_restarts(env: dict[str, str], workdir: Path) -> None:
    redis = RedisServer(workdir / "redis-restart").start()
    own = {**env, "REDIS_URL": redis.url}
    a = ServerProcess({**own, "SERVER_NAME": "restart-a"}, workdir / "restart-a.log")
    b = ServerProcess({**own, "SERVER_NAME": "restart-b"}, workdir / "restart-b.log")
    await asyncio.gather(a.start(), b.start())
    try:
        board = await new_board(a.url)
        async with (
            Feed(b.url, board.session, since=0) as watcher,
            Api(a.url, make_token("attendee", board.event)) as poster,
        ):
            await poster.post(board.session, "before the restart")
            await watcher.next_event()
            redis.kill()
            during = await poster.post(board.session, "while redis is down")
            assert during["seq"] == 2  # posting still works: PostgreSQL is the truth
            redis.start()
            await poster.post(board.session, "after the restart")
            events = await watcher.events(2, timeout=30)
            assert [e["comment"]["body"] for e in events] == [
                "while redis is down",
                "after the restart",
            ]
    finally:
        a.stop()
        b.stop()
        redis.stop()


async def test_client_that_never_reads_is_cut_off_and_memory_stays_bounded(
    env: dict[str, str], workdir: Path
) -> None:
    limit = 256 * 1024
    server = ServerProcess(
        {
            **env,
            "SERVER_NAME": "slow",
            "WS_SEND_BUFFER_LIMIT": str(limit),
            "RING_SIZE": "16",
            "WS_SHED_GRACE": "60",
        },
        workdir / "slow.log",
    )
    await server.start()
    try:
        board = await new_board(server.url)
        # Enough to fill the kernel's buffers on both sides several times over.
        wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
        rounds = 3 * (wmem_max + limit) // len(BIG.encode()) + 1
        async with (
            Feed(server.url, board.session) as reader,
            Api(server.url, make_token("attendee", board.event)) as poster,
        ):

            async def post_all() -> None:
                for chunk in range(0, rounds, 8):
                    await asyncio.gather(
                        *(poster.post(board.session, BIG) for _ in range(min(8, rounds - chunk)))
                    )

            async def post_round() -> None:
                # Once the reader has them all, they were written to every watcher.
                await asyncio.gather(post_all(), reader.events(rounds, timeout=60))

            await post_round()  # warm up: allocator pools, caches, the ring
            before = server.rss()
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            url = server.url.replace("http", "ws") + f"/v1/sessions/{board.session}/live"
            # A stuck client sends no pings either: the server's bound must cut it off.
            stuck_client = connect(url, sock=sock, max_queue=1, max_size=2**22, ping_interval=None)
            async with stuck_client as stuck:
                await post_round()
                grown = server.rss() - before
                received = 0
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(stuck.recv(), 30)
                        received += 1
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4008, closed.value
        assert received < rounds + 1  # cut off before the end (hello counts as one)
        print(f"RSS growth with a stuck client: {grown} bytes (bound {limit})")
        margin = 4 * 1024 * 1024
        assert grown <= limit + margin, f"RSS grew by {grown} bytes; bound {limit} + {margin}"
    finally:
        server.stop()


async def test_a_replica_listens_with_room_for_a_reconnection_storm(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    """The listening socket's queue (``ss`` shows it as Send-Q) is the kernel's cap or our
    8,192, not uvicorn's 2,048: a storm of reconnections waits there instead of being dropped
    and retried a second or more later."""
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("needs ss (iproute2) to read the listening socket's backlog")
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    shown = subprocess.run(
        [ss, "-ltnH", f"sport = :{pair[0].port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(shown[2]) == min(somaxconn, LISTEN_BACKLOG)
