"""The WebSocket transport: uvicorn's sans-I/O ``websockets`` protocol, plus a way for the hub
to write pre-built frames straight to the socket.

The standard ASGI path frames every message for every connection (``websocket.send`` goes
through the protocol's framing and a per-send await). A fan-out server writes the *same* frame to
thousands of connections, so this protocol puts a :class:`RawSink` in the connection's ASGI scope
(``scope["extensions"]["backchannel.sink"]``): ``write`` hands the bytes to the transport and
returns what is still unsent, which is the hub's measure of a slow client. uvicorn still does the
handshake, reads client frames (size limit → 1009, invalid UTF-8 → 1007), and pings with a
timeout. Serve with ``ws="server.transport:BackchannelWebSocketProtocol"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import MutableMapping
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .protocol import text_frame

SINK_EXTENSION = "backchannel.sink"
DEFAULT_GRACE = 5.0
CLOSE_RESTART = 1012
KERNEL_SEND_BUFFER = 64 * 1024  # bytes; the kernel doubles it for its own bookkeeping
RESTART_REASON = "server restarting: reconnect with since"


class RawSink:
    """Writes complete frames to one client connection. See :class:`server.hub.Sink`."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: BackchannelWebSocketProtocol) -> None:
        self._protocol = protocol

    @property
    def grace(self) -> float:
        """Seconds a closed client has to read its close frame before its socket is aborted."""
        return self._protocol.shed_grace

    @grace.setter
    def grace(self, seconds: float) -> None:
        self._protocol.shed_grace = seconds

    @property
    def open(self) -> bool:
        p = self._protocol
        return not (p.close_sent or p.disconnected or p.transport.is_closing())

    def write(self, frame: bytes) -> int:
        if not self.open:
            return -1
        transport = self._protocol.transport
        transport.write(frame)
        size: int = transport.get_write_buffer_size()
        return size

    def send(self, payload: bytes) -> int:
        """Frame one JSON message and write it."""
        return self.write(text_frame(payload))

    def close(self, code: int, reason: str) -> None:
        """Queue a close frame after what is buffered, and end the app's receive loop. A client
        that does not read it within ``grace`` seconds has its socket aborted, so a stuck client
        holds at most its buffer for that long."""
        p = self._protocol
        if not self.open:
            return
        p.conn.send_close(code, reason[:120])
        p.transport.write(b"".join(p.conn.data_to_send()))
        p.close_sent = True
        p.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if p.read_paused:
            p.read_paused = False
            p.transport.resume_reading()
        # Keep reading until the client answers with its close frame (then uvicorn closes the
        # socket cleanly, cancelling this timer): closing now, with the client's unread frames
        # in our receive buffer, would make the kernel send a reset, which can overtake the close
        # frame. A client that never answers is cut off after the grace.
        p.close_timer = p.loop.call_later(self.grace, reset, p.transport)


class BackchannelWebSocketProtocol(WebSocketsSansIOProtocol):
    shed_grace: float = DEFAULT_GRACE

    def keepalive_timeout(self) -> None:
        """No pong within the ping timeout: the peer is gone or stuck. uvicorn sends 1011 and
        closes the transport, which waits for unsent bytes to flush (a dead peer never reads
        them) and does not tell the app. Tell the app, so the hub lets the watcher go, and abort
        the socket after the grace, so its buffer is freed."""
        already = self.close_sent or self.transport.is_closing()
        super().keepalive_timeout()
        if already:
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1011})
        self.loop.call_later(self.shed_grace, reset, self.transport)

    def shutdown(self) -> None:
        """The server is draining (SIGTERM): close with 1012 and say how to come back, after
        what is already buffered for this client."""
        if self.handshake_complete and not self.close_sent and not self.transport.is_closing():
            self.stop_keepalive()
            self.queue.put_nowait({"type": "websocket.disconnect", "code": CLOSE_RESTART})
            self.conn.send_close(CLOSE_RESTART, RESTART_REASON)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.transport.close()
            return
        super().shutdown()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Bound what the kernel holds for a client that reads slowly: Linux sizes a socket's
        # send buffer from its segment size, about 3 MB over loopback (a load balancer on the
        # same host), so WS_SEND_BUFFER_LIMIT would count only a small part of what waits.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)
        super().connection_made(transport)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][SINK_EXTENSION] = RawSink(self)


def reset(transport: asyncio.BaseTransport) -> None:
    """Drop a connection whose peer does not read: with ``SO_LINGER`` 0 the kernel answers
    with a reset and frees the unsent bytes at once (after a plain abort it would go on trying
    to deliver them at the reader's pace), and the client learns that it must reconnect."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]


def sink_of(scope: MutableMapping[str, Any]) -> RawSink | None:
    sink = scope.get("extensions", {}).get(SINK_EXTENSION)
    return sink if isinstance(sink, RawSink) else None
