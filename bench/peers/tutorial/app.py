"""The peer everyone writes first: the Starlette documentation's WebSocket example grown into a
comment board. A set of sockets per session, and for each post ``await ws.send_json(...)`` to
each of them in turn; with several processes, Redis pub/sub carries posts between them (each
process subscribes to every session's channel and sends what arrives to its own sockets).

No database, no tokens, no rules, no resume (``since``), no numbering; one JSON message per
comment. A slow reader makes ``send_json`` wait, and every watcher after it in the loop waits
too: the scenario ``slow-watcher`` shows what that costs.

    TUTORIAL_REDIS_URL=redis://... uvicorn bench.peers.tutorial.app:app --workers 2
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

REDIS_URL = os.environ.get("TUTORIAL_REDIS_URL", "")
CHANNEL = "tutorial:"

sessions: dict[str, set[WebSocket]] = {}
redis: Any = None


async def broadcast(slug: str, message: dict[str, Any]) -> None:
    for websocket in list(sessions.get(slug, ())):
        try:
            await websocket.send_json(message)
        except Exception:
            sessions.get(slug, set()).discard(websocket)


async def live(websocket: WebSocket) -> None:
    slug = websocket.path_params["slug"]
    await websocket.accept()
    sessions.setdefault(slug, set()).add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        sessions.get(slug, set()).discard(websocket)


async def post(request: Request) -> JSONResponse:
    slug = request.path_params["slug"]
    data = await request.json()
    message = {
        "type": "comment",
        "session": slug,
        "body": data["body"],
        "author": {"name": "Tutorial"},
        "at": datetime.now(UTC).isoformat(),
    }
    if redis is not None:
        await redis.publish(CHANNEL + slug, json.dumps(message))
    else:
        await broadcast(slug, message)
    return JSONResponse({"ok": True}, status_code=201)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def relay() -> None:
    assert redis is not None
    pubsub = redis.pubsub()
    await pubsub.psubscribe(CHANNEL + "*")
    async for item in pubsub.listen():
        if item["type"] == "pmessage":
            slug = item["channel"].decode()[len(CHANNEL) :]
            await broadcast(slug, json.loads(item["data"]))


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global redis
    task = None
    if REDIS_URL:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(REDIS_URL)
        task = asyncio.create_task(relay())
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


app = Starlette(
    routes=[
        Route("/healthz", health),
        Route("/post/{slug}", post, methods=["POST"]),
        WebSocketRoute("/live/{slug}", live),
    ],
    lifespan=lifespan,
)
