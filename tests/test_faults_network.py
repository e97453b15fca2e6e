"""Bad networks, slow clients and dead clients, against real server processes, through the
fault-injecting proxy of ``tests/faultproxy.py`` (which is tested first, against an echo server).

Each server test prints one ``FAULT <name>: ...`` line with what it measured (events lost and
duplicated, time to converge or to shed, memory growth), for ``docs/reliability.md``. Times are
recorded, never asserted: the machine is shared. What is asserted is what the service promises
(every event once, in order; boards equal to pages; 4008 at the bound; bounded memory; dead
connections closed) with generous deadlines.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from .faultproxy import Direction, FaultProxy, Faults

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
