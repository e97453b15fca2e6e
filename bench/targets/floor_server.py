"""The floor: the least a server can do for the same work, to show the machine's limit.

A bare asyncio server (uvloop when installed, as uvicorn uses it) that speaks just enough
HTTP/1.1 and WebSocket for the generator: the handshake, ``POST .../comments`` (no database, no
token check, no rules), and for each batch of posts in a loop iteration one pre-built ``events``
frame written with ``transport.write`` to every connection of the session; a connection whose
unsent bytes pass ``--limit`` is closed (4008), as Backchannel's are, and each socket's kernel
send buffer is bounded as Backchannel bounds it (``--sndbuf``, 64 KiB). Events are shaped like
Backchannel's ``comment.created`` (same fields, so frames have the same size), numbered by
``seq``, kept in memory for ``since`` replays, and followed after a replay by a ``watching``
message as Backchannel's feed does. Pings go out every ``--ping-interval`` seconds.

With ``--workers N`` (N > 1) the processes share the port (SO_REUSEPORT) and Redis carries
each post to all of them: one Lua script numbers the event and publishes it, so every process
receives a session's events in ``seq`` order.

    python -m bench.targets.floor_server --port 8100 [--workers 2 --redis redis://...]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B9C"
MAX_FRAME = 256 * 1024
KEEP = 200_000  # events kept per session for replays
PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
local event = string.gsub(ARGV[1], '@SEQ@', seq)
redis.call('PUBLISH', KEYS[2], event)
return seq
"""


def text_frame(payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


PING = b"\x89\x00"


def close_frame(code: int, reason: str = "") -> bytes:
    payload = struct.pack("!H", code) + reason.encode()[:120]
    return struct.pack("!BB", 0x88, len(payload)) + payload


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_template(slug: str, body: str) -> str:
    """A ``comment.created`` event as Backchannel writes one, ``@SEQ@`` in place of its number."""
    at = now_text()
    comment = (
        '{"id":@SEQ@,"session":' + json.dumps(slug) + ',"parent_id":null,"root_id":null,'
        '"depth":0,"number":@SEQ@,"status":"published","body":' + json.dumps(body) + ","
        '"author":{"id":1,"name":"Floor","profession":"Nursing","city":"Albany","region":"NY",'
        '"country":"US"},"reply_count":0,"created_at":"' + at + '","edited_at":null,'
        '"question":false,"highlighted_at":null,"answered_at":null,"helpful_count":0,'
        '"hold_reason":null}'
    )
    return (
        '{"seq":@SEQ@,"kind":"comment.created","at":"'
        + at
        + '","total":@SEQ@,"comment":'
        + comment
        + "}"
    )


class Stats:
    def __init__(self) -> None:
        self.posts = 0
        self.deliveries = 0
        self.frames = 0
        self.bytes = 0
        self.shed = 0
        self.connections = 0


class Session:
    def __init__(self, server: Server, slug: str) -> None:
        self.server = server
        self.slug = slug
        self.conns: set[Connection] = set()
        self.events: list[bytes] = []
        self.first = 1  # seq of events[0]
        self.seq = 0
        self._batch: list[bytes] = []
        self._scheduled = False

    def add(self, seq: int, event: bytes) -> None:
        if seq <= self.seq:  # Redis delivers in order; never deliver one twice anyway
            return
        self.seq = seq
        self.events.append(event)
        if len(self.events) > KEEP:
            drop = len(self.events) - KEEP
            del self.events[:drop]
            self.first += drop
        self._batch.append(event)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def message(self, events: list[bytes]) -> bytes:
        return (
            b'{"type":"events","session":'
            + json.dumps(self.slug).encode()
            + b',"events":['
            + b",".join(events)
            + b"]}"
        )

    def flush(self) -> None:
        self._scheduled = False
        batch, self._batch = self._batch, []
        if not batch:
            return
        stats = self.server.stats
        for run in chunks(batch):
            frame = text_frame(self.message(run))
            slow = []
            for conn in self.conns:
                if conn.write(frame) > self.server.limit:
                    slow.append(conn)
            stats.frames += len(self.conns)
            stats.bytes += len(frame) * len(self.conns)
            stats.deliveries += len(run) * len(self.conns)
            for conn in slow:
                stats.shed += 1
                conn.shed()

    def replay(self, conn: Connection, since: int) -> None:
        start = max(0, since + 1 - self.first)
        events = self.events[start:]
        for run in chunks(events):
            conn.write(text_frame(self.message(run)))


def chunks(events: list[bytes]) -> list[list[bytes]]:
    runs, run, size = [], [], 0
    for event in events:
        if run and size + len(event) > MAX_FRAME:
            runs.append(run)
            run, size = [], 0
        run.append(event)
        size += len(event) + 1
    if run:
        runs.append(run)
    return runs


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.session: Session | None = None
        self.websocket = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.server.sndbuf:  # as Backchannel bounds its feed sockets (server/transport.py)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.server.sndbuf)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None and self.websocket:
            self.session.conns.discard(self)
            self.server.stats.connections -= 1
            self.server.sockets.discard(self)

    def write(self, frame: bytes) -> int:
        transport = self.transport
        if transport is None or self.closing:
            return -1
        transport.write(frame)
        return transport.get_write_buffer_size()

    def shed(self) -> None:
        self.close(4008, "too slow: reconnect with since")

    def close(self, code: int, reason: str) -> None:
        if self.closing or self.transport is None:
            return
        self.closing = True
        if self.session is not None:
            self.session.conns.discard(self)
        self.transport.write(close_frame(code, reason))
        self.transport.close()
        asyncio.get_running_loop().call_later(5, self.transport.abort)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.websocket:
            self._client_frames()
            return
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            if headers.get("upgrade", "").lower() == "websocket":
                self._upgrade(target, headers)
                return
            task = asyncio.ensure_future(self._http(method, target, body))
            self.server.tasks.add(task)
            task.add_done_callback(self.server.tasks.discard)

    def _respond(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        reason = {200: "OK", 201: "Created", 404: "Not Found", 400: "Bad Request"}.get(status, "")
        assert self.transport is not None
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    async def _http(self, method: str, target: str, body: bytes) -> None:
        parts = urlsplit(target).path.strip("/").split("/")
        if method == "GET" and parts == ["healthz"]:
            self._respond(200, {"ok": True})
        elif method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "sessions"]:
            session = self.server.session(parts[2])
            self._respond(200, {"slug": session.slug, "head": session.seq})
        elif method == "POST" and len(parts) == 4 and parts[3] == "comments":
            try:
                text = json.loads(body)["body"]
            except (ValueError, KeyError, TypeError):
                self._respond(400, {"error": {"code": "invalid_json"}})
                return
            seq = await self.server.post(parts[2], text)
            self._respond(201, {"seq": seq, "created": True})
        else:
            self._respond(404, {"error": {"code": "not_found"}})

    def _upgrade(self, target: str, headers: dict[str, str]) -> None:
        assert self.transport is not None
        url = urlsplit(target)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[3] != "live":
            self._respond(404, {"error": {"code": "not_found"}})
            return
        key = headers.get("sec-websocket-key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        self.transport.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        self.websocket = True
        session = self.session = self.server.session(parts[2])
        since_values = parse_qs(url.query).get("since")
        since = int(since_values[0]) if since_values else None
        hello = {
            "type": "hello",
            "session": session.slug,
            "server": self.server.name,
            "since": since,
        }
        self.write(text_frame(json.dumps(hello, separators=(",", ":")).encode()))
        if since is not None:
            session.flush()
            session.replay(self, since)
        session.conns.add(self)
        self.server.stats.connections += 1
        self.server.sockets.add(self)
        watching = {"type": "watching", "session": session.slug, "count": len(session.conns)}
        self.write(text_frame(json.dumps(watching, separators=(",", ":")).encode()))
        if self.buffer:
            self._client_frames()

    def _client_frames(self) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            length = buf[1] & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                pos = 10
            masked = buf[1] & 0x80
            mask = bytes(buf[pos : pos + 4]) if masked else b"\0\0\0\0"
            pos += 4 if masked else 0
            if len(buf) < pos + length:
                return
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buf[pos : pos + length]))
            del buf[: pos + length]
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1000
                self.close(code if code < 5000 else 1000, "")
                return
            if opcode == 0x9 and self.transport is not None:
                self.transport.write(struct.pack("!BB", 0x8A, len(payload)) + payload)


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.limit = args.limit
        self.sndbuf = args.sndbuf
        self.name = f"floor-{os.getpid()}"
        self.sessions: dict[str, Session] = {}
        self.sockets: set[Connection] = set()
        self.tasks: set[asyncio.Future[None]] = set()
        self.stats = Stats()
        self.redis_url = args.redis
        self.stats_dir = Path(args.stats_dir) if args.stats_dir else None
        self.ping_interval = args.ping_interval
        self.redis: Any = None
        self.script: Any = None
        self.subscribed = asyncio.Event()  # the publish script is registered

    def session(self, slug: str) -> Session:
        session = self.sessions.get(slug)
        if session is None:
            session = self.sessions[slug] = Session(self, slug)
        return session

    async def post(self, slug: str, text: str) -> int:
        self.stats.posts += 1
        template = event_template(slug, text)
        if self.redis is None:
            session = self.session(slug)
            seq = session.seq + 1
            session.add(seq, template.replace("@SEQ@", str(seq)).encode())
            return seq
        seq: int = await self.script(keys=[f"floor-seq:{slug}", f"floor:{slug}"], args=[template])
        return seq

    async def listen_redis(self) -> None:
        import redis.asyncio as redis

        self.redis = redis.from_url(self.redis_url)
        self.script = self.redis.register_script(PUBLISH)
        self.subscribed.set()
        pubsub = self.redis.pubsub()
        await pubsub.psubscribe("floor:*")
        async for message in pubsub.listen():
            if message["type"] != "pmessage":
                continue
            slug = message["channel"].decode()[len("floor:") :]
            event: bytes = message["data"]
            seq = int(event[7 : event.index(b",")])  # {"seq":N,...
            self.session(slug).add(seq, event)

    async def ping(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            for conn in list(self.sockets):
                conn.write(PING)

    async def write_stats(self) -> None:
        assert self.stats_dir is not None
        path = self.stats_dir / f"{os.getpid()}.json"
        while True:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(vars(self.stats)))
            tmp.replace(path)
            await asyncio.sleep(0.25)

    async def serve(self, port: int, reuse_port: bool) -> None:
        loop = asyncio.get_running_loop()
        tasks = []
        if self.redis_url:
            tasks.append(asyncio.create_task(self.listen_redis()))
            await self.subscribed.wait()
        if self.stats_dir is not None:
            tasks.append(asyncio.create_task(self.write_stats()))
        if self.ping_interval > 0:
            tasks.append(asyncio.create_task(self.ping()))
        server = await loop.create_server(
            lambda: Connection(self), "127.0.0.1", port, reuse_port=reuse_port, backlog=4096
        )
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        server.close()
        for task in tasks:
            task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--redis", default="", help="Redis URL (needed with --workers > 1)")
    parser.add_argument("--limit", type=int, default=262_144, help="unsent bytes before 4008")
    parser.add_argument("--ping-interval", type=float, default=20.0)
    parser.add_argument(
        "--sndbuf",
        type=int,
        default=65536,
        help="SO_SNDBUF of each socket (0: the kernel's default)",
    )
    parser.add_argument("--stats-dir", default="")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workers > 1 and not args.worker:
        if not args.redis:
            parser.error("--workers > 1 needs --redis")
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.targets.floor_server", *sys.argv[1:], "--worker"]
            )
            for _ in range(args.workers)
        ]

        def stop(*_: Any) -> None:
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    child.terminate()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for child in children:
            child.wait()
        return
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(Server(args).serve(args.port, reuse_port=args.workers > 1))


if __name__ == "__main__":
    main()
