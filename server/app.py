"""The application factory: routes, the one error rendering, and the lifespan that owns every
resource (see ``services.py``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

from . import endpoints as api
from . import logs
from . import moderator_endpoints as mod
from .config import Settings, load_settings
from .errors import BackchannelError, NotFound
from .feed import live
from .openapi import openapi
from .services import Services
from .web import WEB_ROOT, security_headers

log = logging.getLogger("backchannel")


def routes() -> list[BaseRoute]:
    return [
        # The hot paths first: Starlette tries the routes in order, a regular expression each.
        # (No other route shares their path and method, so the order decides nothing else.)
        Route("/v1/sessions/{slug}/comments", api.post_comment, methods=["POST"]),
        WebSocketRoute("/v1/sessions/{slug}/live", live),
        Route("/v1/dev/token", api.dev_token, methods=["POST"]),
        Route("/v1/events", api.create_event, methods=["POST"]),
        Route("/v1/events/{event}", api.get_event, methods=["GET"]),
        Route("/v1/events/{event}/sessions", api.create_session, methods=["POST"]),
        Route("/v1/events/{event}/audit", mod.audit_log, methods=["GET"]),
        Route("/v1/events/{event}/rules", mod.get_event_rules, methods=["GET"]),
        Route("/v1/events/{event}/rules", mod.set_event_rules, methods=["PATCH"]),
        Route("/v1/events/{event}/queue", mod.review_queue, methods=["GET"]),
        Route("/v1/events/{event}/queue/approve", mod.review_many, methods=["POST"]),
        Route("/v1/events/{event}/queue/reject", mod.review_many, methods=["POST"]),
        Route("/v1/events/{event}/sanctions", mod.list_sanctions, methods=["GET"]),
        Route(
            "/v1/events/{event}/authors/{author_id}/sanctions",
            mod.sanction_author,
            methods=["POST"],
        ),
        Route(
            "/v1/events/{event}/authors/{author_id}/sanctions",
            mod.lift_sanctions,
            methods=["DELETE"],
        ),
        Route("/v1/sessions/{slug}", api.get_session, methods=["GET"]),
        Route("/v1/sessions/{slug}", api.update_session, methods=["PATCH"]),
        Route("/v1/sessions/{slug}/open", api.set_session_state, methods=["POST"]),
        Route("/v1/sessions/{slug}/close", api.set_session_state, methods=["POST"]),
        Route("/v1/sessions/{slug}/comments", api.list_comments, methods=["GET"]),
        Route("/v1/sessions/{slug}/export", mod.export_session, methods=["GET"]),
        Route("/v1/sessions/{slug}/mine", mod.my_pending, methods=["GET"]),
        Route("/v1/comments/{comment_id}", api.locate_comment, methods=["GET"]),
        Route("/v1/comments/{comment_id}", api.edit_comment, methods=["PATCH"]),
        Route("/v1/comments/{comment_id}", api.delete_comment, methods=["DELETE"]),
        Route("/v1/comments/{comment_id}/marks", api.mark_comment, methods=["POST"]),
        Route("/v1/comments/{comment_id}/helpful", api.mark_helpful, methods=["POST"]),
        Route("/v1/comments/{comment_id}/replies", api.list_replies, methods=["GET"]),
        Route("/v1/comments/{comment_id}/remove", mod.moderate_comment, methods=["POST"]),
        Route("/v1/comments/{comment_id}/restore", mod.moderate_comment, methods=["POST"]),
        Route("/v1/comments/{comment_id}/approve", mod.review_comment, methods=["POST"]),
        Route("/v1/comments/{comment_id}/reject", mod.review_comment, methods=["POST"]),
        Route("/v1/comments/{comment_id}/report", mod.report_comment, methods=["POST"]),
        Route("/v1/admin/sessions", api.busiest_sessions, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", api.live, methods=["GET"]),
        Route("/readyz", api.ready, methods=["GET"]),
        Pages("/", StaticFiles(directory=WEB_ROOT, html=True), name="web"),
    ]


class Pages(Mount):
    """The browser screens at ``/``, never shadowing the API: a path of the API that matches no
    route (or not with this method) still answers the API's 404 (or 405)."""

    API = ("/v1/", "/openapi.json", "/healthz", "/readyz")

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"].startswith(self.API):
            return Match.NONE, {}
        return super().matches(scope)


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


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    logs.configure(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.services = await Services.open(settings)
        try:
            yield
        finally:
            await app.state.services.close()

    app = Backchannel(
        settings,
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={
            BackchannelError: on_error,
            Exception: on_error,
            404: on_not_found,
            405: on_not_found,
        },
    )
    origins = settings.origins()
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=["*"] if "*" in origins else sorted(origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    return app


class Backchannel(Starlette):
    """The app, with the request id and the security headers outside everything else, so that
    even a 500 answered by Starlette's last-resort handler carries them (and is logged with the
    request's id)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        return logs.RequestIds(inner, security_headers(self.settings.name, self.settings.origins()))
