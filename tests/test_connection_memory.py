"""The transport's hand-over (``RawSink.hand_over``) and the small pieces that keep an idle
connection light: the connection outlives the app's task, messages reach the receiver one at a
time and in order, the disconnect comes last, a failing receiver is logged and closes the
connection, and what this relies on in uvicorn is still there. A tiny ASGI app inline, on a
real uvicorn; then the feed itself.

How much memory a connection takes is measured by the bench (``python -m bench idle``), not here.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import logging
import re
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from client import Feed
from server.embedded import free_port
from server.transport import BackchannelWebSocketProtocol, Gate, Inbox, RawSink, sink_of

from .conftest import Board
from .servers import InProcessServer


async def until(condition: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


class Handed:
    """What the app saw of one connection, and what its receiver got."""

    def __init__(self) -> None:
        self.protocol: BackchannelWebSocketProtocol | None = None
        self.before: dict[str, bool] = {}
        self.received: list[dict[str, Any]] = []
        self.busy = 0
        self.overlapped = False
        self.app_done = asyncio.Event()
        self.ended = asyncio.Event()


class TinyServer:
    """uvicorn with the Backchannel protocol and an app that hands every connection over: its
    receiver echoes ``echo``, holds ``slow`` for a moment, and raises on ``boom``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections: list[Handed] = []
        self.hold: asyncio.Event | None = None  # set: the app waits for it before the hand-over
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            ws=BackchannelWebSocketProtocol,
            ws_per_message_deflate=False,
            interface="asgi3",
            lifespan="off",
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        handed = Handed()
        self.connections.append(handed)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        sink = sink_of(scope)
        assert isinstance(sink, RawSink)
        protocol = handed.protocol = sink._protocol
        handed.before = {name: hasattr(protocol, name) for name in ("scope", "response")}

        async def receiver(message: dict[str, Any]) -> None:
            handed.overlapped |= handed.busy > 0
            handed.busy += 1
            try:
                handed.received.append(message)
                if message["type"] == "websocket.disconnect":
                    handed.ended.set()
                elif message.get("text") == "echo":
                    sink.send(b'"echo"')
                elif message.get("text") == "slow":
                    await asyncio.sleep(0.05)
                elif message.get("text") == "boom":
                    raise RuntimeError("the receiver failed")
            finally:
                handed.busy -= 1

        sink.send(b'"hello"')
        if self.hold is not None:
            await self.hold.wait()
        sink.hand_over(receiver)
        handed.app_done.set()

    async def start(self) -> TinyServer:
        self.task = asyncio.create_task(self.server.serve())
        await until(lambda: self.server.started)
        return self

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task

    async def open(self, path: str = "/") -> tuple[ClientConnection, Handed]:
        ws = await connect(f"ws://127.0.0.1:{self.port}{path}", ping_interval=None)
        assert await ws.recv() == '"hello"'
        handed = self.connections[-1]
        if self.hold is None:
            await handed.app_done.wait()
        return ws, handed


@pytest.fixture
async def tiny() -> AsyncIterator[TinyServer]:
    srv = await TinyServer().start()
    yield srv
    await srv.stop()


async def test_a_connection_handed_over_outlives_the_app_and_keeps_nothing_of_the_handshake(
    tiny: TinyServer,
) -> None:
    path = f"/{uuid.uuid4().hex}"
    ws, handed = await tiny.open(path)
    protocol = handed.protocol
    assert protocol is not None
    await until(lambda: not tiny.server.server_state.tasks)  # the app's task is over
    assert handed.before == {"scope": True, "response": True}
    assert not any(hasattr(protocol, name) for name in ("scope", "response", "request"))
    assert isinstance(protocol.queue, Inbox) and isinstance(protocol.writable, Gate)
    # websockets' parser keeps the request it parsed: nothing of its headers is left.
    requests = [o for o in gc.get_objects() if type(o) is Request and o.path == path]
    assert all(not r.headers for r in requests if r is not ws.request)

    await ws.send("echo")
    assert await ws.recv() == '"echo"'
    await ws.ping()  # uvicorn still reads, and answers pings
    await ws.send("echo")
    assert await ws.recv() == '"echo"'
    await ws.close()
    await handed.ended.wait()
    assert [m.get("text") for m in handed.received[:2]] == ["echo", "echo"]
    assert handed.received[-1]["type"] == "websocket.disconnect"
    assert len(handed.received) == 3


async def test_messages_reach_the_receiver_one_at_a_time_in_order(tiny: TinyServer) -> None:
    ws, handed = await tiny.open()
    sent = ["slow", "a", "slow", "b", "c", "echo"]
    for text in sent:
        await ws.send(text)
    assert await ws.recv() == '"echo"'
    assert [m["text"] for m in handed.received] == sent
    assert not handed.overlapped
    await ws.close()
    await handed.ended.wait()


async def test_a_failing_receiver_is_logged_and_its_connection_closed(
    tiny: TinyServer, caplog: pytest.LogCaptureFixture
) -> None:
    ws, handed = await tiny.open()
    await ws.send("boom")
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert [str(r.exc_info[1]) for r in failures if r.exc_info] == ["the receiver failed"]
    assert [m.get("text") for m in handed.received] == ["boom"]  # and nothing after


async def test_a_server_shutdown_closes_a_connection_handed_over_with_1012(
    tiny: TinyServer,
) -> None:
    ws, handed = await tiny.open()
    await tiny.stop()
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    await handed.ended.wait()
    assert handed.received[-1] == {"type": "websocket.disconnect", "code": 1012}


async def test_a_client_gone_before_the_hand_over_is_one_disconnect_for_the_receiver(
    tiny: TinyServer,
) -> None:
    tiny.hold = asyncio.Event()
    ws, handed = await tiny.open()
    await ws.close()
    await until(lambda: handed.protocol is not None and handed.protocol.disconnected)
    tiny.hold.set()
    await handed.ended.wait()
    assert [m["type"] for m in handed.received] == ["websocket.disconnect"]
    await until(lambda: not tiny.server.server_state.tasks)
    assert len(handed.received) == 1


# --- Inbox and Gate, in place of uvicorn's asyncio.Queue and asyncio.Event ----------------------


async def test_the_inbox_is_first_in_first_out_and_get_waits_for_a_put() -> None:
    inbox = Inbox()
    assert inbox.empty()
    getter = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not getter.done()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert await getter == 1
    assert not inbox.empty()
    assert await inbox.get() == 2
    assert inbox.empty()


async def test_a_cancelled_get_leaves_the_other_getters_waiting() -> None:
    inbox = Inbox()
    first = asyncio.create_task(inbox.get())
    second = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    inbox.put_nowait("x")
    assert await asyncio.wait_for(second, 1) == "x"


async def test_the_gate_waits_while_shut_and_opens_every_waiter() -> None:
    gate = Gate()
    assert gate.is_set() and await gate.wait()
    gate.clear()
    waiters = [asyncio.create_task(gate.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not gate.is_set() and not any(w.done() for w in waiters)
    gate.set()
    assert await asyncio.gather(*waiters) == [True, True]
    gate.clear()
    assert not gate.is_set()
    gate.set()
    assert await gate.wait()


# --- What the transport relies on in uvicorn: an upgrade that changes it fails here -------------


def test_uvicorn_uses_its_queue_and_writable_only_as_inbox_and_gate_allow() -> None:
    source = inspect.getsource(WebSocketsSansIOProtocol)
    assert set(re.findall(r"self\.queue\.(\w+)", source)) <= {"put_nowait", "get", "empty"}
    assert set(re.findall(r"self\.writable\.(\w+)", source)) <= {"set", "clear", "is_set", "wait"}
    made = re.findall(r"self\.(queue|writable)(?::[^=\n]*)? = ", source)
    assert sorted(made) == ["queue", "writable"]  # each made once, in __init__


def test_run_asgi_is_uvicorns_but_for_the_hand_over() -> None:
    """``BackchannelWebSocketProtocol.run_asgi`` is a copy of uvicorn's that does not close a
    connection handed over. If this fails, uvicorn changed its ``run_asgi``: bring the change
    into ours."""

    def body(method: Any) -> str:
        tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
        function = tree.body[0]
        assert isinstance(function, ast.AsyncFunctionDef)
        statements = function.body
        if isinstance(statements[0], ast.Expr) and isinstance(statements[0].value, ast.Constant):
            statements = statements[1:]  # the docstring
        return "\n".join(ast.unparse(s) for s in statements)

    ours = body(BackchannelWebSocketProtocol.run_asgi)
    assert ours.count(" and (not self.handed_over)") == 1
    assert ours.replace(" and (not self.handed_over)", "") == body(
        WebSocketsSansIOProtocol.run_asgi
    )


def test_uvicorn_keeps_the_handshake_where_the_transport_drops_it() -> None:
    source = inspect.getsource(WebSocketsSansIOProtocol)
    for assignment in ("self.request = event", "self.response = ", "self.scope: WebSocketScope"):
        assert assignment in source


# --- The feed ------------------------------------------------------------------------------------


async def test_a_feed_is_handed_over_and_its_watcher_leaves_when_the_client_goes(
    server: InProcessServer, board: Board
) -> None:
    hub = server.app.state.services.hub

    def watchers() -> int:
        channels = [c for c in hub.session_channels() if c.session.slug == board.session]
        return sum(len(c.watchers) for c in channels)

    before = {id(p) for p in server.server.server_state.connections}
    async with Feed(board.url, board.session) as feed:
        assert feed.hello["type"] == "hello"
        await until(lambda: watchers() == 1)
        mine = [p for p in server.server.server_state.connections if id(p) not in before]
        assert [getattr(p, "handed_over", None) for p in mine] == [True]
    await until(lambda: watchers() == 0)
