"""The browser screens (``client/web``, plain ES modules and CSS, no build step) and the headers
every response carries: a strict Content-Security-Policy (no inline script or style, no other
origin but the configured host sites, which may frame the board), CORS for those host sites on
the API, and the name of the answering process."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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


def security_headers(server_name: str, origins: frozenset[str]) -> list[tuple[bytes, bytes]]:
    """The headers every HTTP response carries (added by ``logs.RequestIds``)."""
    return [
        (b"x-backchannel-server", server_name.encode()),
        (b"content-security-policy", content_security_policy(origins).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
    ]
