"""Logging: one line per thing that happened, naming what it happened to.

Each line carries the request id and the session it concerns, where there is one (set by the
``RequestIds`` middleware and by the endpoints as they load a session), as text or, with
``LOG_FORMAT=json``, as one JSON object per line. Tokens and comment bodies are never logged:
no code here or elsewhere passes them to a logger."""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
import sys
from datetime import UTC, datetime

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
session: contextvars.ContextVar[str | None] = contextvars.ContextVar("session", default=None)

_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


class Context(logging.Filter):
    """Adds ``request_id`` and ``session`` to every record (``context`` for the text format)."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = {"request_id": request_id.get(), "session": session.get()}
        for key, value in values.items():
            setattr(record, key, value)
        shown = " ".join(f"{key}={value}" for key, value in values.items() if value is not None)
        record.context = f" [{shown}]" if shown else ""
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "session"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


class NoQueryStrings(logging.Filter):
    """uvicorn logs each feed's handshake with its URL: a query string may carry what must not
    be logged (a client that puts its token there), so only the path is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and a.startswith("/") and "?" in a for a in record.args
        ):
            record.args = tuple(
                a.split("?", 1)[0] if isinstance(a, str) and a.startswith("/") else a
                for a in record.args
            )
        return True


def configure(level: str, fmt: str = "text") -> None:
    """Log to stderr at ``level``, unless logging is already set up (tests, embedding apps)."""
    uvicorn = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, NoQueryStrings) for f in uvicorn.filters):
        uvicorn.addFilter(NoQueryStrings())
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(Context())
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())


class RequestIds:
    """Gives each HTTP request and WebSocket an id: the client's ``X-Request-ID`` when it is a
    plain token, else a new one; sent back in the response's ``X-Request-ID``, along with
    ``headers`` (the same for every response: the security headers, see ``web.py``), so that
    one wrapper of ``send`` serves both."""

    def __init__(self, app: ASGIApp, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.app = app
        self.headers = list(headers or [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value
        rid = given.decode("latin-1") if _ID.fullmatch(given) else secrets.token_hex(8)
        token = request_id.set(rid)
        session_token = session.set(None)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", rid.encode()),
                    *self.headers,
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
            session.reset(session_token)
