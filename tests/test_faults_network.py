"""Bad networks, slow clients and dead clients, against real server processes, through the
fault-injecting proxy of ``tests/faultproxy.py`` (which is tested first, against an echo server).

Each server test prints one ``FAULT <name>: ...`` line with what it measured (events lost and
duplicated, time to converge or to shed, memory growth), for ``docs/reliability.md``. Times are
recorded, never asserted: the machine is shared (the proxy's own tests assert only the floors its
faults guarantee: 0.2 s of latency each way makes a round trip of at least 0.4 s). What is asserted
is what the service promises (every event once, in order; boards equal to pages; 4008 at the
bound; bounded memory; dead connections closed), with generous deadlines.

No test here is marked slow (the project defines no such marker); the longest takes about 35 s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import resource
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.protocol import State

from client import Api, Feed, FeedClosed, watch

from .conftest import make_token, new_board
from .faultproxy import Direction, FaultProxy, Faults
from .servers import ServerProcess

BIG = "🌊" * 5000  # 5,000 characters, 20,000 bytes of UTF-8: the largest comment
WMEM_MAX = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])

# --- The proxy itself, against an echo server -----------------------------------------------


class EchoServer:
    """Echoes every byte; records what each connection received and how it ended. With
    ``greeting``, sends it first on each connection (and echoes nothing)."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.greeting = greeting
        self.received: list[bytearray] = []
        self.ended: list[str | None] = []
        self.server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[:2]

    async def __aenter__(self) -> EchoServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.received)
        self.received.append(bytearray())
        self.ended.append(None)
        try:
            if self.greeting:
                writer.write(self.greeting)
                await writer.drain()
            while data := await reader.read(65536):
                self.received[index] += data
                if not self.greeting:
                    writer.write(data)
                    await writer.drain()
            self.ended[index] = "eof"
        except ConnectionResetError:
            self.ended[index] = "reset"
        finally:
            writer.close()


async def until(
    condition: Callable[[], object], timeout: float = 30, what: str = "condition"
) -> float:
    """Wait until ``condition()`` is true; return how long it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} not met in {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def read_exactly(reader: asyncio.StreamReader, size: int, timeout: float = 30) -> bytes:
    return await asyncio.wait_for(reader.readexactly(size), timeout)


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    async with EchoServer() as server:
        yield server


async def test_proxy_forwards_a_clean_stream_unchanged(echo: EchoServer) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    async with FaultProxy(echo.address) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(payload)
        assert await read_exactly(reader, len(payload)) == payload
        writer.close()
        await proxy.connections[0].wait_closed(10)
    assert proxy.connections[0].bytes_up == proxy.connections[0].bytes_down == len(payload)
    assert proxy.connections[0].client_ended == "eof"
    assert not proxy.connections[0].errors


async def test_proxy_latency_delays_each_way_and_keeps_order(echo: EchoServer) -> None:
    async with FaultProxy(echo.address, faults=Faults(latency=0.2)) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        start = time.monotonic()
        writer.write(b"ping")
        assert await read_exactly(reader, 4) == b"ping"
        rtt = time.monotonic() - start
        # Many small writes, each its own chunk: they come back in the order sent.
        sent = b"".join(f"<{i}>".encode() for i in range(200))
        for i in range(200):
            writer.write(f"<{i}>".encode())
            await writer.drain()
        assert await read_exactly(reader, len(sent)) == sent
        writer.close()
    print(f"PROXY latency 0.2 s each way: round trip {rtt:.3f}s")
    assert rtt >= 0.4  # a floor the proxy guarantees, not a performance claim


async def test_proxy_trickle_limits_bandwidth(echo: EchoServer) -> None:
    async with FaultProxy(echo.address, faults=Faults(bandwidth=2000)) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        start = time.monotonic()
        writer.write(b"x" * 3000)
        await read_exactly(reader, 3000)
        took = time.monotonic() - start
        # Switched off at run time: the next bytes go at once.
        proxy.set_faults(Faults())
        writer.write(b"y" * 100_000)
        await read_exactly(reader, 100_000)
        writer.close()
    print(f"PROXY trickle 2000 B/s: 3000 bytes echoed in {took:.2f}s")
    assert took >= 1.0  # 3000 bytes at 2000 B/s, less the first slice each way


async def test_proxy_stall_holds_data_then_delivers_it(echo: EchoServer) -> None:
    async with FaultProxy(echo.address) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"before")
        assert await read_exactly(reader, 6) == b"before"
        start = time.monotonic()
        proxy.stall(1.0)
        writer.write(b"during")
        assert await read_exactly(reader, 6) == b"during"
        held = time.monotonic() - start
        # A stall without end, lifted by hand, on one connection only.
        connection = proxy.connections[0]
        connection.stall()
        writer.write(b"held")
        await until(lambda: echo.received[0].endswith(b"during"))
        assert connection.bytes_up == 12
        connection.resume()
        assert await read_exactly(reader, 4) == b"held"
        # One way only: the server hears, the client does not, until it is lifted.
        connection.stall(direction=Direction.DOWN)
        writer.write(b"one-way")
        await until(lambda: echo.received[0].endswith(b"one-way"))
        assert connection.bytes_down == 16
        connection.resume()
        assert await read_exactly(reader, 7) == b"one-way"
        writer.close()
    print(f"PROXY stall 1.0 s: data held {held:.2f}s")
    assert held >= 0.9


async def test_proxy_blackhole_drops_everything_and_keeps_the_connection(
    echo: EchoServer,
) -> None:
    async with FaultProxy(echo.address) as proxy:
        r1, w1 = await asyncio.open_connection(*proxy.address)
        r2, w2 = await asyncio.open_connection(*proxy.address)
        await proxy.wait_for(lambda: len(proxy.connections) == 2)
        first = proxy.connections[0]
        first.set_faults(Faults(blackhole=Direction.BOTH))  # this connection only
        w1.write(b"lost")
        w2.write(b"kept")
        assert await read_exactly(r2, 4) == b"kept"
        await until(lambda: first.dropped_up == 4, what="dropped")
        # Back to clean: the dropped bytes were dropped, not delayed; the connection held.
        first.set_faults(None)
        w1.write(b"next")
        assert await read_exactly(r1, 4) == b"next"
        assert echo.received[0] == b"next"
        # A blackhole swallows the end of the stream too: the server never hears of it.
        first.set_faults(Faults(blackhole=Direction.BOTH))
        w1.close()
        await until(lambda: first.client_ended == "eof", what="client eof")
        assert echo.ended[0] is None and first.open
        w2.close()
    assert echo.ended[0] == "reset"  # closing the proxy resets what is left open


async def test_proxy_reset_cuts_mid_stream_with_rst() -> None:
    async with (
        EchoServer(greeting=bytes(100_000)) as source,
        FaultProxy(source.address, faults=Faults(reset_after=1000)) as proxy,
    ):
        reader, writer = await asyncio.open_connection(*proxy.address)
        received = bytearray()
        with pytest.raises(ConnectionResetError):
            while data := await asyncio.wait_for(reader.read(65536), 10):
                received += data
        writer.close()
        await until(lambda: source.ended[0] is not None, what="server side ended")
        assert len(received) == 1000
        assert source.ended[0] == "reset"
        assert proxy.connections[0].reset_by_proxy
    # At run time, on one connection: after its next 10 bytes to the client.
    async with EchoServer() as echo, FaultProxy(echo.address) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"a" * 100)
        await read_exactly(reader, 100)
        proxy.connections[0].reset(after=10)
        writer.write(b"b" * 100)
        tail = bytearray()
        with pytest.raises(ConnectionResetError):
            while data := await asyncio.wait_for(reader.read(65536), 10):
                tail += data
        writer.close()
        await until(lambda: echo.ended[0] is not None, what="server side ended")
    assert tail == b"b" * 10
    assert echo.ended[0] == "reset"


async def test_proxy_passes_a_servers_reset_on_after_its_data() -> None:
    got_it = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"last words")
        await writer.drain()
        await got_it.wait()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with FaultProxy(server.sockets[0].getsockname()[:2]) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        assert await read_exactly(reader, 10) == b"last words"
        got_it.set()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), 10)
        writer.close()
    server.close()
    await server.wait_closed()
    assert proxy.connections[0].target_ended == "reset"


# --- Helpers for the server tests ---------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[object]], timeout: float = 60, what: str = "condition"
) -> float:
    """Wait until ``await check()`` is true (polled every 100 ms); return how long it took."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} not met in {timeout}s")
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def here(admin: Api, slug: str) -> int:
    """Watchers of ``slug`` on the process ``admin`` talks to (``GET /v1/admin/sessions``)."""
    listed = await admin.request("GET", "/v1/admin/sessions", params={"limit": 200})
    return next((s["here"] for s in listed["sessions"] if s["slug"] == slug), 0)


def upgrade_request(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def raw_watcher(
    port: int,
    path: str,
    *,
    rcvbuf: int = 4096,
    mss: int | None = None,
    wait_for_101: bool = True,
) -> tuple[socket.socket, bytes]:
    """A WebSocket client on a bare socket whose receive buffer is ``rcvbuf`` (and MSS ``mss``;
    both set before it connects): it does the handshake (reading the 101 unless told not to) and
    then reads nothing more, answers no ping, sends no close: a client that stopped reading.
    Returns the socket and the bytes read after the response's headers."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if mss is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, upgrade_request(port, path))
        response = b""
        while wait_for_101 and b"\r\n\r\n" not in response:
            data = await asyncio.wait_for(loop.sock_recv(sock, 1024), 60)
            if not data:
                raise ConnectionError(f"handshake: connection closed after {response!r}")
            response += data
    except BaseException:
        sock.close()
        raise
    head, _, rest = response.partition(b"\r\n\r\n")
    if wait_for_101 and not head.startswith(b"HTTP/1.1 101"):
        sock.close()
        raise ConnectionError(f"handshake refused: {head!r}")
    return sock, rest


def holds_connection_from(pid: int, peer: tuple[str, int]) -> bool:
    """Whether process ``pid`` still has a socket open whose remote end is ``peer`` (IPv4). A
    socket the process closed may live on in the kernel for a while, but as nobody's file."""
    mine = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            mine.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    remote = f"{socket.inet_aton(peer[0])[::-1].hex().upper()}:{peer[1]:04X}"
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == remote and f"socket:[{fields[9]}]" in mine:
            return True
    return False


def close_code(stream: bytes) -> int | None:
    """The code of the close frame in a server's (unmasked) frames, None if none is complete."""
    at = 0
    while at + 2 <= len(stream):
        opcode, size = stream[at] & 0x0F, stream[at + 1] & 0x7F
        at += 2
        if size == 126:
            (size,) = struct.unpack("!H", stream[at : at + 2])
            at += 2
        elif size == 127:
            (size,) = struct.unpack("!Q", stream[at : at + 8])
            at += 8
        if at + size > len(stream):
            return None
        if opcode == 0x8:
            return int(struct.unpack("!H", stream[at : at + 2])[0]) if size >= 2 else 1005
        at += size
    return None


async def post_many(poster: Api, slug: str, body: str, count: int, at_once: int = 8) -> None:
    for first in range(0, count, at_once):
        await asyncio.gather(*(poster.post(slug, body) for _ in range(min(at_once, count - first))))


# --- Dead clients: no close frame, no FIN, nothing ------------------------------------------------

PING_INTERVAL, PING_TIMEOUT, SHED_GRACE = 1.0, 2.0, 2.0
# Large enough that a replay of more than the kernel holds for one socket still fits under it.
DEAD_LIMIT = WMEM_MAX + 4 * 2**20


@pytest.fixture(scope="module")
async def pinging(env: dict[str, str], workdir: Path) -> AsyncIterator[ServerProcess]:
    """A server that pings every second and gives up on a pong after two."""
    server = ServerProcess(
        {
            **env,
            "SERVER_NAME": "pinging",
            "WS_PING_INTERVAL": str(PING_INTERVAL),
            "WS_PING_TIMEOUT": str(PING_TIMEOUT),
            "WS_SHED_GRACE": str(SHED_GRACE),
            "WS_SEND_BUFFER_LIMIT": str(DEAD_LIMIT),
        },
        workdir / "pinging.log",
    )
    await server.start()
    yield server
    server.stop()


async def test_blackholed_clients_are_closed_after_the_ping_timeout(
    pinging: ServerProcess,
) -> None:
    """Clients vanish (the proxy drops everything both ways and keeps their connections open):
    the server's pings go unanswered and it closes them, and its count of watchers goes back to
    0. The clients never hear a thing."""
    board = await new_board(pinging.url)
    count = 5
    proxy = await FaultProxy.to_url(pinging.url).start()
    feeds = [
        Feed(proxy.url, board.session, since=0, ping_interval=None, close_timeout=1)
        for _ in range(count)
    ]
    try:
        async with Api(pinging.url, make_token("admin", "*")) as admin:
            for feed in feeds:
                await feed.__aenter__()
            await eventually(lambda: equals(here(admin, board.session), count), what="joined")
            start = time.monotonic()
            proxy.set_faults(Faults(blackhole=Direction.BOTH))  # the clients vanish
            gone = await eventually(
                lambda: equals(here(admin, board.session), 0), what="dead clients dropped"
            )
        await proxy.wait_for(lambda: all(c.target_ended for c in proxy.connections))
        closed = max((c.target_ended_at or 0) - start for c in proxy.connections)
        # The clients heard nothing: no close frame, no FIN; only the server gave up.
        assert all(c.open and c.client_ended is None for c in proxy.connections)
        assert all(feed.ws is not None and feed.ws.state is State.OPEN for feed in feeds)
        assert all(c.target_ended == "eof" for c in proxy.connections)
    finally:
        await proxy.close()
        for feed in feeds:
            await feed.__aexit__(None, None, None)
    print(
        f"FAULT dead-clients-blackholed: clients={count} ping_interval={PING_INTERVAL}s "
        f"ping_timeout={PING_TIMEOUT}s here_back_to_0_in={gone:.2f}s "
        f"sockets_closed_in={closed:.2f}s"
    )


async def test_a_client_whose_pongs_are_lost_is_closed_with_1011(pinging: ServerProcess) -> None:
    """What the server sends on a ping timeout, seen by a client that still hears it."""
    board = await new_board(pinging.url)
    async with (
        FaultProxy.to_url(pinging.url) as proxy,
        Api(pinging.url, make_token("admin", "*")) as admin,
        Feed(proxy.url, board.session, since=0, ping_interval=None, close_timeout=1) as feed,
    ):
        await eventually(lambda: equals(here(admin, board.session), 1), what="joined")
        start = time.monotonic()
        proxy.set_faults(Faults(blackhole=Direction.UP))  # it hears the server; nothing comes back
        with pytest.raises(FeedClosed) as closed:
            await feed.next_event(timeout=60)
        heard = time.monotonic() - start
        gone = await eventually(lambda: equals(here(admin, board.session), 0), what="dropped")
    # docs/protocol.md, "Keepalive" and "Close codes": 1011, "keepalive ping timeout".
    assert (closed.value.code, closed.value.reason) == (1011, "keepalive ping timeout")
    print(
        f"FAULT pongs-lost: close_code={closed.value.code} reason={closed.value.reason!r} "
        f"closed_in={heard:.2f}s here_back_to_0_in={heard + gone:.2f}s"
    )


async def test_a_dead_client_with_unsent_data_is_released_after_the_ping_timeout(
    pinging: ServerProcess,
) -> None:
    """A client vanishes while a replay is on its way: its side of the link returns nothing, not
    even a window (the proxy stops reading from the server). More is unsent than the kernel holds
    for the socket, less than ``WS_SEND_BUFFER_LIMIT``, so the hub does not shed it; the ping
    timeout must then release it. (uvicorn's own keepalive timeout sends 1011 and calls
    ``transport.close()``, which waits for the unsent bytes to flush, forever here, without telling
    the app: the watcher stayed in the hub with its buffer. Fixed in b6101a2: the transport tells
    the app and aborts the socket after ``WS_SHED_GRACE``.)"""
    board = await new_board(pinging.url)
    replay = WMEM_MAX + 2**20  # bytes of events: more than one socket's kernel buffers
    async with Api(pinging.url, make_token("attendee", board.event)) as poster:
        await post_many(poster, board.session, BIG, replay // len(BIG.encode()) + 1)
    proxy = FaultProxy.to_url(pinging.url, upstream_rcvbuf=4096, chunk_size=4096, buffer_limit=4096)
    await proxy.start()
    proxy.stall(direction=Direction.DOWN)  # from the start: the 101 never reaches the client
    sock: socket.socket | None = None
    try:
        async with Api(pinging.url, make_token("admin", "*")) as admin:
            path = f"/v1/sessions/{board.session}/live?since=0"
            sock, _ = await raw_watcher(proxy.port, path, wait_for_101=False)
            await eventually(lambda: equals(here(admin, board.session), 1), what="joined")
            upstream = proxy.connections[0].upstream_address
            assert upstream is not None and holds_connection_from(pinging.pid, upstream)
            start = time.monotonic()
            bound = PING_INTERVAL + PING_TIMEOUT + SHED_GRACE + 10
            try:
                gone = await eventually(
                    lambda: equals(here(admin, board.session), 0), bound, what="dead client dropped"
                )
            except TimeoutError:
                print(
                    f"FAULT dead-client-unsent-data: replay={replay} limit={DEAD_LIMIT} "
                    f"still_here_after={time.monotonic() - start:.1f}s "
                    f"socket_held={holds_connection_from(pinging.pid, upstream)}"
                )
                raise
        released = await until(
            lambda: not holds_connection_from(pinging.pid, upstream),
            bound,
            what="server socket released",
        )
        print(
            f"FAULT dead-client-unsent-data: replay={replay} limit={DEAD_LIMIT} "
            f"here_back_to_0_in={gone:.2f}s socket_released_in={gone + released:.2f}s"
        )
    finally:
        await proxy.close()
        if sock is not None:
            sock.close()


# --- Boards converge through bad networks ---------------------------------------------------------


class EventBoard:
    """A watcher's board built from events alone, as "Applying events" says: each comment's state
    replaces what was held, counts are values to set; and every seq applied, to check."""

    def __init__(self) -> None:
        self.comments: dict[int, dict[str, Any]] = {}
        self.total = 0
        self.seqs: list[int] = []
        self.error: BaseException | None = None

    def apply(self, event: dict[str, Any]) -> None:
        self.seqs.append(event["seq"])
        self.total = event["total"]
        if (comment := event.get("comment")) is not None:
            self.comments[comment["id"]] = dict(comment)
        for entry in event.get("reply_counts", ()):
            if (held := self.comments.get(entry["id"])) is not None:
                held["reply_count"] = entry["reply_count"]
        for entry in event.get("helpful", ()):
            if (held := self.comments.get(entry["id"])) is not None:
                held["helpful_count"] = entry["helpful_count"]

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    def shown(self) -> dict[int, dict[str, Any]]:
        """What pages show: published comments, and the places of others with published
        replies beneath them."""
        return {
            cid: c
            for cid, c in self.comments.items()
            if c["status"] == "published" or c["reply_count"] > 0
        }

    def lost_and_duplicated(self, head: int) -> tuple[int, int]:
        return head - len(set(self.seqs)), len(self.seqs) - len(set(self.seqs))


async def read_pages(api: Api, slug: str) -> tuple[dict[int, dict[str, Any]], int, int]:
    """Every comment the pages show, by id, with the first page's total and head."""
    shown: dict[int, dict[str, Any]] = {}
    page = first = await api.page(slug)
    while True:
        for thread in page["threads"]:
            shown[thread["comment"]["id"]] = thread["comment"]
            replies, cursor = list(thread["replies"]), thread["replies_next"]
            while cursor is not None:
                more = await api.replies(thread["comment"]["id"], after=cursor)
                replies += more["replies"]
                cursor = more["next"]
            shown.update((r["id"], r) for r in replies)
        if page["older"] is None:
            return shown, first["total"], first["head"]
        page = await api.page(slug, before=page["older"])


async def follow(base_url: str, slug: str, board: EventBoard) -> None:
    """``client.watch`` from the start of the log, applied to ``board``, for as long as it runs."""
    try:
        async for event in watch(base_url, slug, since=0, max_backoff=1.0):
            board.apply(event)
    except Exception as exc:  # a gap or a duplicate (Feed checks), a fatal close
        board.error = exc
        raise


async def churn(slug: str, url: str, event: str, rounds: int, seed: int) -> int:
    """Posts, replies, edits, removals and restores over a clean connection, one every 50 ms or
    so; returns how many changes were made."""
    rng = random.Random(seed)
    authors = [Api(url, make_token("attendee", event, name=f"Author {i}")) for i in range(4)]
    moderator = Api(url, make_token("moderator", event))
    status: dict[int, str] = {}
    owner: dict[int, Api] = {}
    changes = 0
    try:
        for n in range(rounds):
            published = [cid for cid, s in status.items() if s == "published"]
            removed = [cid for cid, s in status.items() if s == "removed"]
            roll = rng.random()
            if roll < 0.45 or not published:
                author = rng.choice(authors)
                parent = rng.choice(published) if published and rng.random() < 0.4 else None
                body = f"Note {n}: the slow breathing part was useful on a night shift."
                result = await author.post(slug, body, parent_id=parent)
                assert result["comment"]["status"] == "published", result
                cid = result["comment"]["id"]
                status[cid], owner[cid] = "published", author
            elif roll < 0.65:
                cid = rng.choice(published)
                await owner[cid].edit(cid, f"Note edited in round {n}: it stayed with me.")
            elif roll < 0.85:
                cid = rng.choice(published)
                await moderator.remove(cid)
                status[cid] = "removed"
            elif removed:
                cid = rng.choice(removed)
                await moderator.restore(cid)
                status[cid] = "published"
            else:
                continue
            changes += 1
            await asyncio.sleep(rng.uniform(0.02, 0.08))  # the pace of the workload
    finally:
        for api in (*authors, moderator):
            await api.__aexit__(None, None, None)
    return changes


async def chaos(proxy: FaultProxy, *, stalls: bool, resets: bool, seed: int) -> None:
    """Stalls of 0.5 to 1.5 s every 2 to 3 s, and/or resets of every open connection after its
    next 1 to 3,000 bytes to the client (so mid-frame), every 0.5 to 1.5 s, until cancelled."""
    rng = random.Random(seed)
    next_stall = time.monotonic() + rng.uniform(1, 2)
    while True:
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        if resets:
            for connection in proxy.open_connections:
                connection.reset(after=rng.randint(1, 3000))
        if stalls and time.monotonic() >= next_stall:
            proxy.stall(rng.uniform(0.5, 1.5))
            next_stall = time.monotonic() + rng.uniform(2, 3)


async def test_boards_converge_through_bad_networks(env: dict[str, str], workdir: Path) -> None:
    server = ServerProcess({**env, "SERVER_NAME": "converge"}, workdir / "converge.log")
    await server.start()
    board = await new_board(server.url)
    # name: (faults, stalls, resets)
    links: dict[str, tuple[Faults, bool, bool]] = {
        "latency-200ms": (Faults(latency=0.2), False, False),
        "stalls": (Faults(), True, False),
        "trickle-6KB/s": (Faults(bandwidth=6 * 1024), False, False),
        "resets-mid-frame": (Faults(), False, True),
        "all-at-once": (Faults(latency=0.2, bandwidth=32 * 1024), True, True),
    }
    proxies = {name: FaultProxy.to_url(server.url, faults=f) for name, (f, _, _) in links.items()}
    boards = {name: EventBoard() for name in links}
    readers: list[asyncio.Task[None]] = []
    troubles: list[asyncio.Task[None]] = []
    try:
        for seed, (name, (_, stalling, resetting)) in enumerate(links.items()):
            proxy = await proxies[name].start()
            readers.append(asyncio.create_task(follow(proxy.url, board.session, boards[name])))
            if stalling or resetting:
                troubles.append(
                    asyncio.create_task(chaos(proxy, stalls=stalling, resets=resetting, seed=seed))
                )
        changes = await churn(board.session, server.url, board.event, rounds=160, seed=7)
        written = time.monotonic()
        for task in troubles:  # the stalls and resets end with the writes; latency and trickle stay
            task.cancel()
        async with Api(server.url) as reader:
            head = (await reader.session(board.session))["head"]
            converged: dict[str, float] = {}

            def caught_up() -> bool:
                for name, watched in boards.items():
                    if watched.error is not None:
                        raise AssertionError(f"{name}: {watched.error!r}")
                    if watched.last_seq >= head and name not in converged:
                        converged[name] = time.monotonic() - written
                return len(converged) == len(boards)

            await until(caught_up, timeout=120, what="every watcher at the head")
            pages, total, page_head = await read_pages(reader, board.session)
        connections = {name: len(proxy.connections) for name, proxy in proxies.items()}
        resets = {
            name: sum(c.reset_by_proxy for c in proxy.connections)
            for name, proxy in proxies.items()
        }
        mid_chunk = {
            name: sum(c.cut is not None and 0 < c.cut[0] < c.cut[1] for c in proxy.connections)
            for name, proxy in proxies.items()
        }
    finally:
        for proxy in proxies.values():
            await proxy.close()
        for task in [*troubles, *readers]:
            task.cancel()
        await asyncio.gather(*troubles, *readers, return_exceptions=True)
        server.stop()
    assert page_head == head
    for name, watched in boards.items():
        lost, duplicated = watched.lost_and_duplicated(head)
        print(
            f"FAULT converge {name}: events={head} changes={changes} lost={lost} "
            f"dup={duplicated} connections={connections[name]} resets={resets[name]} "
            f"cut_mid_chunk={mid_chunk[name]} "
            f"converged_in={converged[name]:.2f}s"
        )
        assert watched.seqs == list(range(1, head + 1)), name
        assert watched.total == total, name
        assert watched.shown() == pages, name
    print(
        f"FAULT converge: watchers={len(boards)} events={head} lost=0 dup=0 "
        f"all_converged_in={max(converged.values()):.2f}s"
    )


# --- A trickle client is shed at its bound, the others keep receiving ----------------------------


async def read_into(feed: Feed, board: EventBoard, closed: list[FeedClosed]) -> None:
    """Apply every event ``feed`` brings to ``board`` until it closes (noted in ``closed``)."""
    try:
        while True:
            board.apply(await feed.next_event(timeout=None))
    except FeedClosed as exc:
        closed.append(exc)
    except Exception as exc:
        board.error = exc
        raise


class RssSampler:
    """The peak resident memory of a process, sampled every 50 ms while in use."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.server.rss())
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> RssSampler:
        self.peak = self.server.rss()
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.peak = max(self.peak, self.server.rss())


async def test_a_trickle_client_is_shed_at_its_bound_and_the_others_keep_up(
    env: dict[str, str], workdir: Path
) -> None:
    limit = 65536
    margin = 8 * 2**20
    server = ServerProcess(
        {
            **env,
            "SERVER_NAME": "trickle",
            "WS_SEND_BUFFER_LIMIT": str(limit),
            # Long enough for the trickle client to read its close frame once the link is fast.
            "WS_SHED_GRACE": "120",
            # The ring of recent events grows with every event (up to 1024 of 20 kB by default):
            # keep it small, so that what grows is what the slow client holds.
            "RING_SIZE": "16",
        },
        workdir / "trickle.log",
    )
    await server.start()
    board = await new_board(server.url)
    body = ("A slow breath out before sleep settles the whole night. " * 40)[:2000]
    normal = 3
    boards = [EventBoard() for _ in range(normal)]
    trickle_board, trickle_closed, normal_closed = EventBoard(), [], []  # type: ignore[var-annotated]
    readers: list[asyncio.Task[None]] = []
    posted = 0

    async def post_every_50ms(stop: asyncio.Event) -> None:
        async def one() -> None:
            nonlocal posted
            await poster.post(board.session, body)
            posted += 1

        posts: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            if len(posts) < 8:
                task = asyncio.create_task(one())
                posts.add(task)
                task.add_done_callback(posts.discard)
            await asyncio.sleep(0.05)  # the pace of the posts
        await asyncio.gather(*posts)

    try:
        async with (
            Api(server.url, make_token("attendee", board.event)) as poster,
            Api(server.url, make_token("admin", "*")) as admin,
            # A client on Ethernet (MSS 1460): on loopback's 64 KiB segments the server's kernel
            # would take 3 MiB before its own buffer (and so the bound) saw a byte, and the ping
            # timeout (20 s + 20 s) would cut the client off first.
            FaultProxy.to_url(
                server.url,
                upstream_rcvbuf=4096,
                upstream_mss=1460,
                chunk_size=1024,
                buffer_limit=1024,
            ) as proxy,
        ):
            feeds = [Feed(server.url, board.session, since=0) for _ in range(normal)]
            for feed, watched in zip(feeds, boards, strict=True):
                await feed.__aenter__()
                readers.append(asyncio.create_task(read_into(feed, watched, normal_closed)))
            # Warm up (allocator pools, caches, the ring), then measure from there.
            await post_many(poster, board.session, body, 40, at_once=4)
            await until(lambda: all(b.last_seq == 40 for b in boards), what="warm-up read")
            proxy.set_faults(Faults(bandwidth=1024))
            trickle = Feed(proxy.url, board.session, since=40, ping_interval=None, close_timeout=1)
            async with RssSampler(server) as rss:
                before = server.rss()
                await trickle.__aenter__()
                readers.append(
                    asyncio.create_task(read_into(trickle, trickle_board, trickle_closed))
                )
                await eventually(
                    lambda: equals(here(admin, board.session), normal + 1), what="join"
                )
                stop = asyncio.Event()
                posting = asyncio.create_task(post_every_50ms(stop))
                shed_in = await eventually(
                    lambda: equals(here(admin, board.session), normal), 120, what="trickle shed"
                )
                at_shed = posted
                # The others go on receiving: another second of posts after the shed.
                await until(lambda: posted >= at_shed + 20, what="posts after the shed")
                stop.set()
                await posting
            head = (await poster.session(board.session))["head"]
            others_in = await until(
                lambda: all(b.last_seq == head for b in boards), what="others at head"
            )
            assert not normal_closed, normal_closed  # none of the others was cut off
            # The link recovers: the trickle client reads what was queued, then the 4008.
            proxy.set_faults(Faults())
            await until(lambda: bool(trickle_closed), timeout=60, what="trickle client closed")
            got_before_shed = trickle_board.last_seq
            async with Feed(server.url, board.session, since=got_before_shed) as again:
                while trickle_board.last_seq < head:
                    trickle_board.apply(await again.next_event(timeout=30))
            await trickle.__aexit__(None, None, None)
            for feed in feeds:
                await feed.__aexit__(None, None, None)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        server.stop()
    grown = rss.peak - before
    for watched in boards:
        assert watched.error is None and watched.seqs == list(range(1, head + 1))
    assert trickle_closed[0].code == 4008, trickle_closed[0]
    assert trickle_board.seqs == list(range(41, head + 1))  # nothing lost over the reconnect
    lost, duplicated = trickle_board.lost_and_duplicated(head - 40)
    print(
        f"FAULT trickle-shed: limit={limit} bandwidth=1024B/s posts_every=50ms "
        f"event_bytes~{len(body.encode()) + 600} normal_watchers={normal} shed_in={shed_in:.2f}s "
        f"posts_before_shed={at_shed} close_code={trickle_closed[0].code} "
        f"events_read_before_close={got_before_shed - 40} lost={lost} dup={duplicated} "
        f"others_lost=0 others_at_head_after_last_post={others_in:.2f}s "
        f"rss_growth={grown} bound={limit}+{margin}"
    )
    assert grown <= limit + margin, f"RSS grew by {grown} bytes; bound {limit} + {margin}"


# --- A thousand clients that never read -----------------------------------------------------------


def open_files_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise RuntimeError("no Max open files")


async def drain(sock: socket.socket, timeout: float) -> tuple[str, int]:
    """Read ``sock`` to its end: (how it ended, bytes read); how is ``close <code>`` when a
    close frame came, else ``reset`` or ``eof``."""
    loop = asyncio.get_running_loop()
    stream = bytearray()
    how = "eof"
    deadline = time.monotonic() + timeout
    try:
        while True:
            data = await asyncio.wait_for(loop.sock_recv(sock, 262144), deadline - time.monotonic())
            if not data:
                break
            stream += data
    except ConnectionResetError:
        how = "reset"
    except TimeoutError:
        how = "timeout"
    code = close_code(bytes(stream))
    return (f"close {code}" if code is not None else how), len(stream)


async def test_a_thousand_clients_that_never_read_are_shed_and_memory_stays_bounded(
    env: dict[str, str], workdir: Path
) -> None:
    clients = 1000
    # Small, so that the bound means something: 1,000 stuck clients may hold 64 MiB between them.
    limit = 65536
    grace = 30.0  # long enough to read the close frames afterwards
    # Each may hold up to one frame (one event) past the bound: the write that crosses it.
    frame = len(BIG.encode()) + 1024
    margin = clients * frame + 8 * 2**20
    need = clients + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:  # the server inherits it
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    server = ServerProcess(
        {
            **env,
            "SERVER_NAME": "thousand",
            "WS_SEND_BUFFER_LIMIT": str(limit),
            "WS_SHED_GRACE": str(grace),
            "RING_SIZE": "16",  # what grows should be the stuck clients' buffers, not the ring
        },
        workdir / "thousand.log",
    )
    await server.start()
    board = await new_board(server.url)
    socks: list[socket.socket] = []
    try:
        assert open_files_limit(server.pid) >= need, open_files_limit(server.pid)
        async with (
            Api(server.url, make_token("attendee", board.event)) as poster,
            Api(server.url, make_token("admin", "*")) as admin,
            Feed(server.url, board.session, since=0) as reader,
        ):
            await post_many(poster, board.session, BIG, 32, at_once=4)  # warm up
            await reader.events(32, timeout=60)
            path = f"/v1/sessions/{board.session}/live"
            connecting = asyncio.Semaphore(64)

            async def one() -> None:
                async with connecting:
                    # MSS 1460: the kernel holds for each what it would for a client on Ethernet
                    # (about 75 KiB), not the 3 MiB of loopback's 64 KiB segments.
                    sock, _ = await raw_watcher(server.port, path, rcvbuf=4096, mss=1460)
                    socks.append(sock)

            start = time.monotonic()
            await asyncio.gather(*(one() for _ in range(clients)))
            await eventually(
                lambda: equals(here(admin, board.session), clients + 1), 120, what="all joined"
            )
            connected_in = time.monotonic() - start
            fds_before = len(os.listdir(f"/proc/{server.pid}/fd"))
            before = server.rss()
            posts = 0
            async with RssSampler(server) as rss:
                start = time.monotonic()
                watching = asyncio.create_task(
                    eventually(lambda: equals(here(admin, board.session), 1), 60, what="all shed")
                )
                while not watching.done():
                    await poster.post(board.session, BIG)  # one at a time: frames of one event
                    posts += 1
                await watching
                shed_in = time.monotonic() - start
            await reader.events(posts, timeout=60)  # the one client that reads got everything
            ends = await asyncio.gather(*(drain(sock, grace) for sock in socks))
            drained_in = time.monotonic() - start - shed_in
            released_in = await until(
                lambda: len(os.listdir(f"/proc/{server.pid}/fd")) <= fds_before - clients,
                60,
                what="sockets released",
            )
    finally:
        for sock in socks:
            sock.close()
        server.stop()
    grown = rss.peak - before
    outcomes: dict[str, int] = {}
    for how, _ in ends:
        outcomes[how] = outcomes.get(how, 0) + 1
    received = sorted(size for _, size in ends)
    print(
        f"FAULT thousand-stuck-clients: clients={clients} limit={limit} rcvbuf=4096 mss=1460 "
        f"event_bytes~{len(BIG.encode()) + 600} connected_in={connected_in:.1f}s "
        f"posts_until_all_shed={posts} all_shed_in={shed_in:.2f}s outcomes={outcomes} "
        f"bytes_per_client_min/median/max={received[0]}/{received[len(received) // 2]}/"
        f"{received[-1]} drained_in={drained_in:.1f}s fds_released_in_after={released_in:.1f}s "
        f"rss_before={before} rss_growth={grown} bound={clients}x({limit}+{frame})+8MiB"
    )
    assert set(outcomes) <= {"close 4008", "reset"}, outcomes
    bound = clients * limit + margin
    assert grown <= bound, f"RSS grew by {grown} bytes; bound {bound}"
