"""The board as python-socketio's documentation builds a server: an ``AsyncServer`` in ASGI
mode with an ``AsyncRedisManager`` (so that ``uvicorn --workers N`` processes share every
emit), a room per session that each client enters in its ``connect`` handler (the session comes
in the connection's query string, as a Socket.IO client's ``query`` option sends it), and an
HTTP route (Starlette, mounted beside Socket.IO) that emits each post to the session's room.

No database, no tokens, no rules, no resume (``since``), no numbering; one ``comment`` event per
comment. Socket.IO queues each client's packets and a task per client writes them, so the emit
does not wait for a slow reader; nothing bounds that queue (uvicorn's WebSocket keepalive is
what closes a reader too slow to answer its ping in time).

    SOCKETIO_REDIS_URL=redis://... uvicorn bench.peers.socketio.app:app --workers 2
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import socketio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sio = socketio.AsyncServer(
    async_mode="asgi",
    client_manager=socketio.AsyncRedisManager(os.environ.get("SOCKETIO_REDIS_URL", "redis://")),
    ping_interval=float(os.environ.get("SOCKETIO_PING_INTERVAL", "25")),
)


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    session = parse_qs(environ.get("QUERY_STRING", "")).get("session")
    if not session:
        raise socketio.exceptions.ConnectionRefusedError("which session?")
    await sio.enter_room(sid, session[0])


async def post(request: Request) -> JSONResponse:
    slug = request.path_params["slug"]
    data = await request.json()
    message = {
        "type": "comment",
        "session": slug,
        "body": data["body"],
        "author": {"name": "Socket.IO"},
        "at": datetime.now(UTC).isoformat(),
    }
    await sio.emit("comment", message, room=slug)
    return JSONResponse({"ok": True}, status_code=201)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "pid": os.getpid()})


api = Starlette(
    routes=[
        Route("/healthz", health),
        Route("/post/{slug}", post, methods=["POST"]),
    ]
)
app = socketio.ASGIApp(sio, other_asgi_app=api)
