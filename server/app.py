"""The application factory: routes, the one error rendering, and the lifespan that owns every
resource (see ``services.py``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import endpoints as api
from . import logs
from .config import Settings, load_settings
from .errors import BackchannelError, NotFound
from .feed import live
from .openapi import openapi
from .services import Services

log = logging.getLogger("backchannel")


def routes() -> list[Route | WebSocketRoute]:
    return [
        Route("/v1/events", api.create_event, methods=["POST"]),
        Route("/v1/events/{event}", api.get_event, methods=["GET"]),
        Route("/v1/events/{event}/sessions", api.create_session, methods=["POST"]),
        Route("/v1/sessions/{slug}", api.get_session, methods=["GET"]),
        Route("/v1/sessions/{slug}", api.update_session, methods=["PATCH"]),
        Route("/v1/sessions/{slug}/open", api.set_session_state, methods=["POST"]),
        Route("/v1/sessions/{slug}/close", api.set_session_state, methods=["POST"]),
        Route("/v1/sessions/{slug}/comments", api.list_comments, methods=["GET"]),
        Route("/v1/sessions/{slug}/comments", api.post_comment, methods=["POST"]),
        Route("/v1/comments/{comment_id}", api.edit_comment, methods=["PATCH"]),
        Route("/v1/comments/{comment_id}/replies", api.list_replies, methods=["GET"]),
        Route("/v1/comments/{comment_id}/remove", api.moderate_comment, methods=["POST"]),
        Route("/v1/comments/{comment_id}/restore", api.moderate_comment, methods=["POST"]),
        WebSocketRoute("/v1/sessions/{slug}/live", live),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", api.live, methods=["GET"]),
        Route("/readyz", api.ready, methods=["GET"]),
    ]


async def on_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, BackchannelError):
        return api.error_response(exc)
    log.exception("%s %s failed", request.method, request.url.path)
    return api.JSONResponse(
        {"error": {"code": "internal", "message": "internal error; it has been logged"}}, 500
    )


async def on_not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    if status == 405:
        return api.JSONResponse(
            {
                "error": {
                    "code": "method_not_allowed",
                    "message": f"{request.method} is not allowed here",
                }
            },
            405,
        )
    return api.error_response(NotFound("not_found", f"no route for {request.url.path}"))


class ServerName:
    """Names the answering process on every HTTP response (``X-Backchannel-Server``), so that
    clients and tests behind a load balancer can tell replicas apart."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.header = (b"x-backchannel-server", name.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, named)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    logs.configure(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.services = await Services.open(settings)
        try:
            yield
        finally:
            await app.state.services.close()

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={
            BackchannelError: on_error,
            Exception: on_error,
            404: on_not_found,
            405: on_not_found,
        },
    )
    app.add_middleware(ServerName, name=settings.name)
    return app
