"""A fault-injecting TCP proxy for tests: loopback, user space, asyncio (``tc netem`` is not
available where the suite runs).

:class:`FaultProxy` listens on a free port and forwards every connection to one target. Faults
are described by :class:`Faults` and can be changed at any time, for the whole proxy
(:meth:`FaultProxy.set_faults`) or for one connection (:meth:`ProxyConnection.set_faults`, which
then no longer follows the proxy's):

- ``latency``: seconds added to every chunk, each way. Chunks are delayed, never reordered.
- ``bandwidth``: bytes per second, each way (a trickle: ``bandwidth=1024``).
- ``blackhole``: the directions (:class:`Direction`) whose bytes are read and dropped, end of
  stream included. The TCP connection stays open and nothing reaches the other side: a client
  that vanished without a close frame, or (``Direction.UP``) one whose answers are all lost.
- ``reset_after``: once this many bytes went server → client on a connection, the chunk in flight
  is cut there (so, usually, mid-frame), the part before the cut is forwarded, and both sockets
  are closed with ``SO_LINGER`` 0: a reset, no FIN.

Besides these, :meth:`FaultProxy.stall` / :meth:`ProxyConnection.stall` stop forwarding (and
reading, so the sender feels the backpressure), both ways or one, for some seconds or until
:meth:`resume` (one way without end: a peer whose TCP stack went away with its window full), and
:meth:`ProxyConnection.reset` resets one connection now or after its next bytes to the client.

Each direction of a connection is a reader (its source socket), a bounded queue of chunks
(``buffer_limit`` bytes: what the proxy itself absorbs before the sender feels backpressure),
and a writer (the other socket). A reset from either side is passed on as a reset once the
data read before it is delivered; an end of stream as an end of stream. ``upstream_rcvbuf`` sets
the receive buffer of the proxy's own socket to the target, before it connects, so that a stall or
a trickle reaches the target's send buffer quickly; ``upstream_mss`` the MSS that socket announces
(``TCP_MAXSEG``). Linux sizes a connection's send buffer from the MSS, which is about 64 KiB on
loopback: there the target's kernel takes about 3 MiB for a reader that never reads before a byte
waits in the target's own buffer; with ``upstream_mss=1460`` (a client on Ethernet) about 75 KiB.

Usage::

    async with FaultProxy(("127.0.0.1", server.port), faults=Faults(latency=0.2)) as proxy:
        async with Feed(proxy.url, session) as feed:
            proxy.set_faults(Faults(bandwidth=1024))
            ...
            proxy.stall(2.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Direction", "FaultProxy", "Faults", "ProxyConnection"]


class Direction(enum.Flag):
    UP = enum.auto()
    """Client → target."""
    DOWN = enum.auto()
    """Target → client."""
    BOTH = UP | DOWN


@dataclass(frozen=True)
class Faults:
    """What a connection suffers. The default is a clean connection."""

    latency: float = 0.0
    """Seconds added to every chunk, each way (order kept)."""
    bandwidth: float | None = None
    """Bytes per second, each way; None: as fast as the sockets go."""
    blackhole: Direction | None = None
    """Directions whose bytes (and end of stream) are read and dropped; None: none."""
    reset_after: int | None = None
    """Reset each connection when this many bytes have gone to its client (cut mid-chunk)."""

    def replace(self, **changes: object) -> Faults:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def drops(self, direction: Direction) -> bool:
        return self.blackhole is not None and bool(self.blackhole & direction)


CLEAN = Faults()

_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def _stall(until: dict[Direction, float], seconds: float | None, direction: Direction) -> None:
    """Set the stall deadlines of ``direction`` (None: without end; 0: lift)."""
    for one in (Direction.UP, Direction.DOWN):
        if one & direction:
            if seconds is None:
                until[one] = float("inf")
            else:
                until[one] = time.monotonic() + seconds if seconds > 0 else 0.0


class _Signal:
    """Wakes every waiter when something changed (faults, stalls)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


@dataclass
class _Chunk:
    due: float
    data: bytes


class _Pipe:
    """Chunks read from one side, waiting for the other; at most ``limit`` bytes (one chunk more
    than that is never held). ``end`` is None while open, then ``"eof"`` or ``"reset"``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.end: str | None = None
        self.discard = False  # the writer is gone: drop what is put
        self._chunks: deque[_Chunk] = deque()
        self._changed = asyncio.Condition()

    async def put(self, chunk: _Chunk) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.size < self.limit or self.discard)
            if self.discard:
                return
            self._chunks.append(chunk)
            self.size += len(chunk.data)
            self._changed.notify_all()

    async def finish(self, how: str) -> None:
        async with self._changed:
            if self.end is None:
                self.end = how
            self._changed.notify_all()

    async def get(self) -> _Chunk | None:
        """The next chunk, or None at the end (see ``end``)."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._chunks) or self.end is not None)
            if not self._chunks:
                return None
            chunk = self._chunks.popleft()
            self.size -= len(chunk.data)
            self._changed.notify_all()
            return chunk

    async def drop_all(self) -> None:
        async with self._changed:
            self.discard = True
            self._chunks.clear()
            self.size = 0
            self._changed.notify_all()


class ProxyConnection:
    """One client connection and its connection to the target."""

    def __init__(self, proxy: FaultProxy, number: int, client: socket.socket) -> None:
        self.proxy = proxy
        self.number = number
        self.client_address: tuple[str, int] = client.getpeername()
        self.opened_at = time.monotonic()
        self.closed_at: float | None = None
        self.bytes_up = 0
        """Bytes forwarded client → target."""
        self.bytes_down = 0
        """Bytes forwarded target → client."""
        self.dropped_up = 0
        self.dropped_down = 0
        self.client_ended: str | None = None
        """How the client's side ended: ``"eof"``, ``"reset"`` or ``"error: ..."``."""
        self.target_ended: str | None = None
        """How the target's side ended (the server closed or reset it)."""
        self.target_ended_at: float | None = None
        self.reset_by_proxy = False
        """The proxy reset this connection (a ``reset_after`` mark, :meth:`reset`, closing)."""
        self.cut: tuple[int, int] | None = None
        """Where a reset mark cut the chunk in flight to the client: (bytes of it forwarded, its
        size). A chunk is what one read from the target returned, whole frames as a rule, so a
        cut strictly inside one is, as a rule, mid-frame."""
        self.errors: list[Exception] = []
        """Unexpected failures of the proxy's own tasks (a test can assert there are none)."""
        self._client = client
        self._target: socket.socket | None = None
        self._own_faults: Faults | None = None
        self._stalled_until = {Direction.UP: 0.0, Direction.DOWN: 0.0}  # monotonic; inf: resume()
        self._reset_at: int | None = None  # bytes_down at which to reset
        self._abort = asyncio.Event()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pace: dict[Direction, float] = {Direction.UP: 0.0, Direction.DOWN: 0.0}
        self._reset_sockets: set[socket.socket] = set()

    def __repr__(self) -> str:
        return (
            f"<ProxyConnection #{self.number} {self.client_address} up={self.bytes_up} "
            f"down={self.bytes_down} client={self.client_ended} target={self.target_ended}>"
        )

    # --- Faults ----------------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The faults in force: this connection's own, else the proxy's."""
        return self._own_faults if self._own_faults is not None else self.proxy.faults

    def set_faults(self, faults: Faults | None) -> None:
        """Give this connection its own faults (None: follow the proxy's again)."""
        self._own_faults = faults
        self.proxy._changed.notify()

    def stall(self, seconds: float | None = None, direction: Direction = Direction.BOTH) -> None:
        """Forward nothing (and read nothing) in ``direction`` for ``seconds``, or until
        :meth:`resume`."""
        _stall(self._stalled_until, seconds, direction)
        self.proxy._changed.notify()

    def resume(self) -> None:
        _stall(self._stalled_until, 0.0, Direction.BOTH)
        self.proxy._changed.notify()

    def reset(self, after: int = 0) -> None:
        """Reset both sides (RST) now, or once ``after`` more bytes went to the client (the chunk
        that crosses the mark is cut there and its first part forwarded)."""
        mark = self.bytes_down + after
        self._reset_at = mark if self._reset_at is None else min(self._reset_at, mark)
        if after <= 0:
            self._reset_both()
        self.proxy._changed.notify()

    @property
    def open(self) -> bool:
        return not self._closed.is_set()

    @property
    def upstream_address(self) -> tuple[str, int] | None:
        """The proxy's own address on its connection to the target (the target sees this
        connection coming from there), once connected."""
        if self._target is None or self._target.fileno() < 0:
            return None
        host, port = self._target.getsockname()[:2]
        return host, port

    async def wait_closed(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._closed.wait(), timeout)

    def _stalled(self, direction: Direction) -> float:
        """Seconds left of the stall in force in ``direction`` (0: none)."""
        until = max(self._stalled_until[direction], self.proxy._stalled_until[direction])
        return max(0.0, until - time.monotonic())

    def _reset_mark(self) -> int | None:
        marks = [m for m in (self._reset_at, self.faults.reset_after) if m is not None]
        return min(marks) if marks else None

    async def _unstalled(self, direction: Direction) -> None:
        while (left := self._stalled(direction)) > 0:
            await self.proxy._changed.wait(None if left == float("inf") else left)

    # --- Running ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"proxy-conn-{self.number}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            target = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if self.proxy.upstream_rcvbuf is not None:
                target.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.proxy.upstream_rcvbuf)
            if self.proxy.upstream_mss is not None:
                target.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, self.proxy.upstream_mss)
            target.setblocking(False)
            self._target = target
            try:
                await loop.sock_connect(target, self.proxy.target)
            except OSError as exc:
                self.target_ended = f"error: {exc}"
                self._reset_sockets.add(self._client)
                return
            up, down = _Pipe(self.proxy.buffer_limit), _Pipe(self.proxy.buffer_limit)
            readers = [
                asyncio.create_task(self._read(self._client, up, Direction.UP)),
                asyncio.create_task(self._read(target, down, Direction.DOWN)),
            ]
            writers = [
                asyncio.create_task(self._write(target, up, Direction.UP, self._client)),
                asyncio.create_task(self._write(self._client, down, Direction.DOWN, target)),
            ]
            aborted = asyncio.create_task(self._abort.wait())
            try:
                # Over when reset, or when nothing more can be forwarded either way.
                while not self._abort.is_set() and not all(w.done() for w in writers):
                    pending = [t for t in [*readers, *writers] if not t.done()]
                    await asyncio.wait([*pending, aborted], return_when=asyncio.FIRST_COMPLETED)
            finally:
                tasks = [*readers, *writers, aborted]
                for task in tasks:
                    task.cancel()
                for result in await asyncio.gather(*tasks, return_exceptions=True):
                    if isinstance(result, Exception):
                        self.errors.append(result)
        finally:
            for sock in (self._client, self._target):
                if sock is None:
                    continue
                if sock in self._reset_sockets:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                sock.close()
            self.closed_at = time.monotonic()
            self._closed.set()

    def _reset_both(self) -> None:
        self.reset_by_proxy = True
        self._reset_sockets.update(s for s in (self._client, self._target) if s is not None)
        self._abort.set()

    async def _read(self, source: socket.socket, pipe: _Pipe, direction: Direction) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._unstalled(direction)
            try:
                data = await loop.sock_recv(source, self.proxy.chunk_size)
            except OSError as exc:
                how = "reset" if isinstance(exc, ConnectionResetError) else f"error: {exc}"
                break
            if not data:
                how = "eof"
                break
            if self.faults.drops(direction):
                self._count_drop(direction, len(data))
                continue
            await pipe.put(_Chunk(time.monotonic() + self.faults.latency, data))
        self._note_end(direction, how)
        if self.faults.drops(direction):
            return  # a blackhole swallows the end of the stream too
        await pipe.finish("eof" if how == "eof" else "reset")

    def _note_end(self, direction: Direction, how: str) -> None:
        if direction is Direction.UP:
            self.client_ended = self.client_ended or how
        else:
            self.target_ended = self.target_ended or how
            self.target_ended_at = self.target_ended_at or time.monotonic()

    def _count_drop(self, direction: Direction, size: int) -> None:
        if direction is Direction.UP:
            self.dropped_up += size
        else:
            self.dropped_down += size

    async def _write(
        self, sink: socket.socket, pipe: _Pipe, direction: Direction, source: socket.socket
    ) -> None:
        while True:
            chunk = await pipe.get()
            if chunk is None:
                if pipe.end == "reset":
                    # Passed on as a reset, once what was read before it is delivered.
                    self._reset_sockets.add(sink)
                    self._abort.set()
                else:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)
                return
            if (wait := chunk.due - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # the latency itself
            await self._unstalled(direction)
            if self.faults.drops(direction):
                self._count_drop(direction, len(chunk.data))
                continue
            data = chunk.data
            cut = False
            if direction is Direction.DOWN and (mark := self._reset_mark()) is not None:
                room = max(0, mark - self.bytes_down)
                if room < len(data):
                    self.cut = (room, len(data))
                    data, cut = data[:room], True
            try:
                await self._send(sink, data, direction)
            except OSError:
                # The receiver is gone: what was on its way is lost, and the sender gets a
                # reset, as TCP would answer it, once the other direction has delivered.
                self._reset_sockets.add(source)
                await pipe.drop_all()
                return
            if cut:
                self._reset_both()
                return

    async def _send(self, sink: socket.socket, data: bytes, direction: Direction) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            await self._unstalled(direction)
            rate = self.faults.bandwidth
            if rate is None:
                await loop.sock_sendall(sink, view)
                self._count_sent(direction, len(view))
                return
            # A trickle: slices of a twentieth of a second's worth, each sent on time.
            now = time.monotonic()
            start = max(now, self._pace[direction])
            if start > now:
                await asyncio.sleep(start - now)
                continue  # the faults may have changed meanwhile
            piece = view[: max(1, int(rate / 20))]
            await loop.sock_sendall(sink, piece)
            self._count_sent(direction, len(piece))
            self._pace[direction] = start + len(piece) / rate
            view = view[len(piece) :]

    def _count_sent(self, direction: Direction, size: int) -> None:
        if direction is Direction.UP:
            self.bytes_up += size
        else:
            self.bytes_down += size

    async def close(self) -> None:
        """Reset both sides and wait until the sockets are closed."""
        if self._task is None:
            return
        if not self._closed.is_set():
            self._reset_both()
        await asyncio.gather(self._task, return_exceptions=True)


class FaultProxy:
    """A TCP proxy on loopback to ``target`` (host, port) that injects :class:`Faults`."""

    def __init__(
        self,
        target: tuple[str, int],
        *,
        faults: Faults = CLEAN,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_size: int = 16 * 1024,
        buffer_limit: int = 256 * 1024,
        upstream_rcvbuf: int | None = None,
        upstream_mss: int | None = None,
    ) -> None:
        self.target = target
        self.host = host
        self.port = port
        self.chunk_size = chunk_size
        self.buffer_limit = buffer_limit
        self.upstream_rcvbuf = upstream_rcvbuf
        self.upstream_mss = upstream_mss
        self.connections: list[ProxyConnection] = []
        """Every connection accepted, open or closed, in order."""
        self._faults = faults
        self._stalled_until = {Direction.UP: 0.0, Direction.DOWN: 0.0}
        self._changed = _Signal()
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._accepted = _Signal()

    @classmethod
    def to_url(cls, url: str, **options: object) -> FaultProxy:
        """A proxy to the server at ``http://host:port`` (the scheme is ignored)."""
        host, _, port = url.split("://", 1)[-1].split("/", 1)[0].rpartition(":")
        return cls((host, int(port)), **options)  # type: ignore[arg-type]

    # --- Life ------------------------------------------------------------------------------------

    async def start(self) -> FaultProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(1024)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._accepting = asyncio.create_task(self._accept(), name=f"proxy-{self.port}")
        return self

    async def close(self) -> None:
        """Stop listening and reset every open connection."""
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.gather(self._accepting, return_exceptions=True)
            self._accepting = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        await asyncio.gather(*(c.close() for c in self.connections))

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _accept(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        while True:
            client, _ = await loop.sock_accept(self._listener)
            client.setblocking(False)
            connection = ProxyConnection(self, len(self.connections) + 1, client)
            self.connections.append(connection)
            connection.start()
            self._accepted.notify()

    # --- Where -----------------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        """``http://host:port`` of the proxy: give it to clients instead of the server's."""
        return f"http://{self.host}:{self.port}"

    # --- Faults ----------------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Switch the faults of every connection that has none of its own, at once."""
        self._faults = faults
        self._changed.notify()

    def stall(self, seconds: float | None = None, direction: Direction = Direction.BOTH) -> None:
        """Stop forwarding in ``direction`` on every connection (those accepted later too) for
        ``seconds``, or until :meth:`resume`."""
        _stall(self._stalled_until, seconds, direction)
        self._changed.notify()

    def resume(self) -> None:
        _stall(self._stalled_until, 0.0, Direction.BOTH)
        self._changed.notify()

    def reset_all(self, after: int = 0) -> None:
        """:meth:`ProxyConnection.reset` on every open connection."""
        for connection in self.open_connections:
            connection.reset(after)

    # --- Looking -----------------------------------------------------------------------------

    @property
    def open_connections(self) -> list[ProxyConnection]:
        return [c for c in self.connections if c.open]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        """Wait until ``condition()`` holds, re-checked at every accepted connection and at least
        every 50 ms."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"proxy {self.port}: condition not met in {timeout}s")
            await self._accepted.wait(min(0.05, left))
