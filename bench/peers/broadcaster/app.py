"""The board as encode's ``broadcaster`` README builds its chat room: each WebSocket subscribes
to its session's channel (``broadcast.subscribe``) and forwards what arrives with ``await
websocket.send_text(...)``, while a second task reads the socket until it closes; a post calls
``broadcast.publish``. The channel lives in Redis, so ``uvicorn --workers N`` needs nothing
more: every process subscribes (once per channel it has watchers for) and gets every post.

No database, no tokens, no rules, no resume (``since``), no numbering; one JSON message per
comment. Each subscriber has its own unbounded queue, so the fan-out does not wait for a slow
reader; nothing bounds that queue (uvicorn's WebSocket keepalive is what closes a reader too
slow to answer its ping in time).

One workaround, for two races in broadcaster 0.3.1 (with redis-py 8) that lose every post to
some watchers: its Redis backend wakes its listener before SUBSCRIBE is recorded, so the
listener finds no channel, stops and waits for the next new channel (``RedisBackend`` below
sets the flag after subscribing); and two sockets subscribing at once to a channel new to the
process each replace the other's queue (``joining`` below lets one subscribe at a time; joining
a channel already subscribed does not wait on Redis, so the lock costs almost nothing).

    BROADCASTER_URL=redis://... uvicorn bench.peers.broadcaster.app:app --workers 2
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import anyio
from broadcaster import Broadcast
from broadcaster._backends import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


class RedisBackend(redis.RedisBackend):
    async def subscribe(self, channel: str) -> None:
        """Workaround (see above): wake the listener once the channel is subscribed."""
        await self._pubsub.subscribe(channel)
        self._ready.set()


broadcast = Broadcast(backend=RedisBackend(os.environ.get("BROADCASTER_URL", "redis://")))
joining = asyncio.Lock()  # workaround: one subscription at a time (see above)


async def live(websocket: WebSocket) -> None:
    slug = websocket.path_params["slug"]
    await websocket.accept()
    async with anyio.create_task_group() as task_group:

        async def receiver() -> None:
            async for _ in websocket.iter_text():
                pass
            task_group.cancel_scope.cancel()

        task_group.start_soon(receiver)
        async with contextlib.AsyncExitStack() as stack:
            async with joining:
                subscriber = await stack.enter_async_context(broadcast.subscribe(channel=slug))
            async for event in subscriber:
                await websocket.send_text(event.message)


async def post(request: Request) -> JSONResponse:
    slug = request.path_params["slug"]
    data = await request.json()
    message = {
        "type": "comment",
        "session": slug,
        "body": data["body"],
        "author": {"name": "Broadcaster"},
        "at": datetime.now(UTC).isoformat(),
    }
    await broadcast.publish(channel=slug, message=json.dumps(message))
    return JSONResponse({"ok": True}, status_code=201)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "pid": os.getpid()})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with broadcast:
        yield


app = Starlette(
    routes=[
        Route("/healthz", health),
        Route("/post/{slug}", post, methods=["POST"]),
        WebSocketRoute("/live/{slug}", live),
    ],
    lifespan=lifespan,
)
