"""The browser screens (``client/web``, plain ES modules and CSS, no build step) and the headers
every response carries: a strict Content-Security-Policy (no inline script or style, no other
origin but the configured host sites, which may frame the board), CORS for those host sites on
the API, and the name of the answering process."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Found without importing the Python client (``client/__init__.py`` loads httpx).
_CLIENT = importlib.util.find_spec("client")
if _CLIENT is None or _CLIENT.origin is None:
    raise RuntimeError("the client package (client/, with the browser screens) is not installed")
WEB_ROOT = Path(_CLIENT.origin).parent / "web"


def content_security_policy(frame_ancestors: frozenset[str]) -> str:
    ancestors = (
        " ".join(["'self'", *sorted(frame_ancestors)]) if "*" not in frame_ancestors else "*"
    )
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {ancestors}",
        ]
    )


class SecurityHeaders:
    """Adds the security headers and ``X-Backchannel-Server`` to every HTTP response."""

    def __init__(self, app: ASGIApp, server_name: str, origins: frozenset[str]) -> None:
        self.app = app
        self.headers = [
            (b"x-backchannel-server", server_name.encode()),
            (b"content-security-policy", content_security_policy(origins).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)
