"""Cheap clients for the load generator: a WebSocket reader and an HTTP/1.1 keep-alive client,
both plain asyncio protocols (no framing library in the hot path), so that one generator
process holds thousands of watchers.

The reader does the client side of RFC 6455 that a watcher needs: the handshake, unmasked
server frames (text, ping, close; continuation frames joined), masked pongs and close
replies. What a frame *means* is left to its owner (``on_text``)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

_MASK = b"\x00\x00\x00\x00"  # a zero mask is a valid mask, and leaves the payload as it is


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A masked client frame (RFC 6455 §5.3: clients must mask)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + _MASK + payload


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


class WebSocketReader(asyncio.Protocol):
    """One watcher's connection. ``on_text(reader, payload, arrival)`` gets each text message;
    ``on_close(reader, code)`` once, whatever ends the connection (1006: no close frame)."""

    def __init__(
        self,
        host: str,
        path: str,
        on_text: Callable[[WebSocketReader, bytes, float], None],
        on_close: Callable[[WebSocketReader, int], None],
        *,
        read_rate: float = 0.0,
    ) -> None:
        self.host = host
        self.path = path
        self.on_text = on_text
        self.on_close = on_close
        self.read_rate = read_rate  # bytes/s; 0: read as fast as possible
        self.transport: asyncio.Transport | None = None
        self.open = asyncio.get_running_loop().create_future()
        self.handshaken = False
        self.closed = False
        self.close_code: int | None = None
        self.bytes_read = 0
        self.pings = 0
        self.state: Any = None  # the owner's per-connection record
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._key = base64.b64encode(os.urandom(16)).decode()

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        arrival = time.monotonic()
        self.bytes_read += len(data)
        if self.read_rate:
            assert self.transport is not None
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(len(data) / self.read_rate, self._resume)
        if not self.handshaken:
            self._buffer += data
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            status = head.split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                self._fail(status.decode(errors="replace"))
                return
            self.handshaken = True
            if not self.open.done():
                self.open.set_result(True)
            if not self._buffer:
                return
            data = b""
        buffer = self._buffer
        if not buffer:
            # The common case: the data holds whole frames; no copy into the buffer.
            self._frames(data, arrival)
        else:
            buffer += data
            self._buffer = bytearray()
            self._frames(bytes(buffer), arrival)

    def _frames(self, data: bytes, arrival: float) -> None:
        pos, size = 0, len(data)
        while size - pos >= 2:
            b0 = data[pos]
            length = data[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            if data[pos + 1] & 0x80:  # a masked server frame: not expected; skip the key
                start += 4
            end = start + length
            if end > size:
                break
            self._frame(b0, data[start:end], arrival)
            pos = end
            if self.closed:
                return
        if pos < size:
            self._buffer += data[pos:]

    def _frame(self, b0: int, payload: bytes, arrival: float) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode == 0x1 or opcode == 0x0:
            if not fin:
                self._fragments.append(payload)
                return
            if self._fragments:
                payload = b"".join([*self._fragments, payload])
                self._fragments.clear()
            self.on_text(self, payload, arrival)
        elif opcode == 0x9:
            self.pings += 1
            assert self.transport is not None
            self.transport.write(client_frame(0xA, payload))
        elif opcode == 0x8:
            code = close_code(payload)
            assert self.transport is not None
            if not self.transport.is_closing():
                self.transport.write(client_frame(0x8, payload[:2]))
                self.transport.close()
            self._closed(code)

    def _resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _fail(self, why: str) -> None:
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"handshake refused: {why}"))
        if self.transport is not None:
            self.transport.abort()

    def _closed(self, code: int) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"closed before the handshake ({code})"))
        self.on_close(self, code)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(1006)

    # --- the owner's side ----------------------------------------------------------------------

    def send_text(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(0x1, payload))

    def close(self, code: int = 1000) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(0x8, struct.pack("!H", code)))
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection without a close frame (as a network failure does)."""
        if self.transport is not None:
            self.transport.abort()


async def open_websocket(
    host: str,
    port: int,
    path: str,
    on_text: Callable[[WebSocketReader, bytes, float], None],
    on_close: Callable[[WebSocketReader, int], None],
    *,
    read_rate: float = 0.0,
    receive_buffer: int = 0,
    timeout: float = 30.0,
    state: Any = None,
) -> WebSocketReader:
    """Connect and complete the handshake. ``receive_buffer`` sets SO_RCVBUF before connecting
    (a slow reader's small window)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)

        def factory() -> WebSocketReader:
            reader = WebSocketReader(f"{host}:{port}", path, on_text, on_close, read_rate=read_rate)
            reader.state = state
            return reader

        _, reader = await loop.create_connection(factory, sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        await asyncio.wait_for(asyncio.shield(reader.open), timeout)
    except BaseException:
        reader.abort()
        raise
    return reader


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time (``request``)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = False
        self._buffer = bytearray()
        self._status = 0
        self._need = -1  # body bytes still expected; -1: reading headers; -2: chunked
        self._body_at = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self.waiter is None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(body)}")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._parse()

    def _parse(self) -> None:
        buffer = self._buffer
        if self._need == -1:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).split(b"\r\n")
            self._status = int(head[0].split(b" ", 2)[1])
            length = 0
            chunked = False
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            del buffer[: end + 4]
            self._need = -2 if chunked else length
        if self._need == -2:
            body = _dechunk(buffer)
            if body is None:
                return
            self._done(body)
            return
        if len(buffer) >= self._need:
            body = bytes(buffer[: self._need])
            del buffer[: self._need]
            self._done(body)

    def _done(self, body: bytes) -> None:
        self._need = -1
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))
        self.waiter = None


def _dechunk(buffer: bytearray) -> bytes | None:
    """The body of a complete chunked message at the start of ``buffer`` (removed from it), or
    None while incomplete."""
    pos, parts = 0, []
    while True:
        end = buffer.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(bytes(buffer[pos:end]).split(b";")[0], 16)
        start = end + 2
        if size == 0:
            trailer = buffer.find(b"\r\n\r\n", end)
            if buffer[start : start + 2] == b"\r\n":
                del buffer[: start + 2]
            elif trailer >= 0:
                del buffer[: trailer + 4]
            else:
                return None
            return b"".join(parts)
        if len(buffer) < start + size + 2:
            return None
        parts.append(bytes(buffer[start : start + size]))
        pos = start + size + 2


async def open_http(host: str, port: int, timeout: float = 30.0) -> HttpConnection:
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: HttpConnection(f"{host}:{port}"), host, port), timeout
    )
    sock = conn.transport.get_extra_info("socket") if conn.transport else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class HttpPool:
    """Keep-alive connections to one server, opened as needed up to ``limit``; a request
    waits for a free one beyond that (the wait counts in latency from schedule)."""

    def __init__(self, host: str, port: int, limit: int = 256) -> None:
        self.host = host
        self.port = port
        self.limit = limit
        self.idle: list[HttpConnection] = []
        self.size = 0
        self._free = asyncio.Condition()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, bytes]:
        conn = await self._take()
        try:
            result = await asyncio.wait_for(conn.request(method, path, body, headers), timeout)
        except BaseException:
            if conn.transport is not None:
                conn.transport.abort()
            self.size -= 1
            async with self._free:
                self._free.notify()
            raise
        await self._give(conn)
        return result

    async def _take(self) -> HttpConnection:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if not conn.lost:
                    return conn
                self.size -= 1
            if self.size < self.limit:
                self.size += 1
                try:
                    return await open_http(self.host, self.port)
                except BaseException:
                    self.size -= 1
                    raise
            async with self._free:
                await self._free.wait()

    async def _give(self, conn: HttpConnection) -> None:
        if conn.lost:
            self.size -= 1
        else:
            self.idle.append(conn)
        async with self._free:
            self._free.notify()

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()
