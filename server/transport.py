"""The WebSocket transport: uvicorn's sans-I/O ``websockets`` protocol, plus a way for the hub
to write pre-built frames straight to the socket.

The standard ASGI path frames every message for every connection (``websocket.send`` goes
through the protocol's framing and a per-send await). A fan-out server writes the *same* frame to
thousands of connections, so this protocol puts a :class:`RawSink` in the connection's ASGI scope
(``scope["extensions"]["backchannel.sink"]``): ``write`` hands the bytes to the transport and
returns what is still unsent, which is the hub's measure of a slow client. uvicorn still does the
handshake, reads client frames (size limit → 1009, invalid UTF-8 → 1007), and pings with a
timeout. Serve with ``ws="server.transport:BackchannelWebSocketProtocol"``.

An idle watcher should cost little memory, so once the app has set a connection up it may
:meth:`RawSink.hand_over` it and return: the client's messages then go to a callback, one at a
time and in order, and the connection keeps no task, no coroutine frames of the middleware and
no ASGI scope. The protocol also keeps nothing of the handshake, and a small queue and gate in
place of uvicorn's :class:`asyncio.Queue` and :class:`asyncio.Event`. What this relies on in
uvicorn is checked by ``tests/test_connection_memory.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .protocol import text_frame

SINK_EXTENSION = "backchannel.sink"
DEFAULT_GRACE = 5.0
CLOSE_RESTART = 1012
KERNEL_SEND_BUFFER = 64 * 1024  # bytes; the kernel doubles it for its own bookkeeping
RESTART_REASON = "server restarting: reconnect with since"

Receiver = Callable[[dict[str, Any]], Awaitable[None]]
"""Takes one ASGI receive event (``websocket.receive`` or ``websocket.disconnect``)."""


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

    def hand_over(self, receiver: Receiver) -> None:
        """From now on give what the client sends to ``receiver`` instead of the app's
        ``receive``, and keep the connection open when the app returns. ``receiver`` is awaited
        for one event at a time, in order, in a copy of the caller's context; the disconnect is
        the last event it gets. If it raises, the error is logged and the connection closed, as
        uvicorn does when an app fails."""
        self._protocol.hand_over(receiver)


class Inbox:
    """The events for the app's ``receive``. uvicorn's protocol uses its ``queue`` through
    ``put_nowait``, ``get`` and ``empty`` only; an :class:`asyncio.Queue` holds four deques
    (3 KiB) for what is at most a few messages. ``wake``, when set, is called after each put."""

    __slots__ = ("_items", "_waiter", "wake")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None
        self.wake: Callable[[], None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.wake is not None:
            self.wake()

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            # Shielded: a cancelled getter must not cancel the wait of another.
            await asyncio.shield(self._waiter)
        return self._items.pop(0)


class Gate:
    """Open or shut, for uvicorn's ``writable`` (``set``, ``clear``, ``is_set``, ``wait`` of an
    :class:`asyncio.Event`), which is set nearly always: the event, with its deque (0.8 KiB), is
    made only when the transport first pauses writing."""

    __slots__ = ("_event", "_open")

    def __init__(self) -> None:
        self._open = True
        self._event: asyncio.Event | None = None

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        self._open = True
        if self._event is not None:
            self._event.set()

    def clear(self) -> None:
        self._open = False
        if self._event is None:
            self._event = asyncio.Event()
        else:
            self._event.clear()

    async def wait(self) -> Literal[True]:
        if self._open or self._event is None:
            return True
        return await self._event.wait()


class BackchannelWebSocketProtocol(WebSocketsSansIOProtocol):
    # CPython shares one key table among the ``__dict__`` of a class's instances only up to 30
    # keys; past that, each instance has its own dict (1.6 KiB, not 0.3). uvicorn sets about 35
    # attributes, so these live in slots: ours, and some of uvicorn's (one renamed upstream just
    # goes back to the dict).
    __slots__ = (
        "_context",
        "_delivering",
        "_receiver",
        "close_timeout",
        "curr_msg_data_type",
        "frames",
        "handed_over",
        "handshake_initiated",
        "initial_response",
        "last_ping_rtt",
        "pending_ping_payload",
        "ping_sent_at",
        "request",
        "response",
        "scope",
        "shed_grace",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.shed_grace = DEFAULT_GRACE
        self.handed_over = False
        self._receiver: Receiver | None = None
        self._context: contextvars.Context | None = None
        self._delivering: asyncio.Task[None] | None = None
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Gate()  # type: ignore[assignment]

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
        # The request is in the scope now, and answered: keep none of it. websockets' parser
        # holds the request for as long as the connection lives, so its headers are emptied.
        event.headers.clear()
        with contextlib.suppress(AttributeError):
            del self.request
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][SINK_EXTENSION] = RawSink(self)

    def hand_over(self, receiver: Receiver) -> None:
        """See :meth:`RawSink.hand_over`."""
        if not self.handshake_complete or self.handed_over:
            raise RuntimeError("a connection is handed over once, after the handshake")
        self.handed_over = True
        self._receiver = receiver
        self._context = contextvars.copy_context()
        # The app holds its scope while it returns; the handshake's response is sent.
        for name in ("scope", "response"):
            with contextlib.suppress(AttributeError):
                delattr(self, name)
        inbox: Inbox = self.queue  # type: ignore[assignment]
        inbox.wake = self._wake
        if not inbox.empty():
            self._wake()

    def _wake(self) -> None:
        if self._delivering is not None or self._receiver is None:
            return
        task = self.loop.create_task(self._deliver(self._receiver), context=self._context)
        self._delivering = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, receiver: Receiver) -> None:
        try:
            while self._receiver is not None and not self.queue.empty():
                message: dict[str, Any] = await self.receive()  # type: ignore[assignment]
                if message["type"] == "websocket.disconnect":
                    self._receiver = None
                await receiver(message)
        except Exception:
            self._receiver = None
            self.logger.exception("Exception in ASGI application\n")
            if self.close_timer is None:
                self.transport.close()
        finally:
            self._delivering = None

    async def run_asgi(self) -> None:
        """uvicorn's, except that a connection handed over stays open when the app returns."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.close_timer is None and not self.handed_over:
            self.transport.close()


def reset(transport: asyncio.BaseTransport) -> None:
    """Drop a connection whose peer does not read: with ``SO_LINGER`` 0 the kernel answers
    with a reset and frees the unsent bytes at once (after a plain abort it would go on trying
    to deliver them at the reader's pace), and the client learns that it must reconnect."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # ValueError: uvloop's socket object of a connection closed meanwhile (fd -1).
        with contextlib.suppress(OSError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]


def sink_of(scope: MutableMapping[str, Any]) -> RawSink | None:
    sink = scope.get("extensions", {}).get(SINK_EXTENSION)
    return sink if isinstance(sink, RawSink) else None
