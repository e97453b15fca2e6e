"""The one error hierarchy of Backchannel.

Every failure a client can cause is a :class:`BackchannelError`. Each class fixes the HTTP status
and the WebSocket close code; each instance names the problem with a stable ``code`` and says it
in a human ``message``. ``endpoints.py`` renders them all one way::

    {"error": {"code": "body_too_long", "message": "the comment has 5214 characters; at most 5000"}}

    BackchannelError
    ├── BadRequest           400  4400
    ├── Unauthorized         401  4401
    ├── Forbidden            403  4403
    ├── NotFound             404  4404
    ├── Conflict             409  4409   (e.g. session_closed)
    ├── PayloadTooLarge      413  1009
    ├── TooManyRequests      429  4429   (e.g. slow_mode; answered with Retry-After)
    └── Unavailable          503  1013   (answered with Retry-After)

An error may carry details for the client beside code and message (``retry_after`` in seconds,
``until`` for a timeout): they go into the body's ``error`` object.
"""

from __future__ import annotations

from typing import ClassVar


class BackchannelError(Exception):
    status: ClassVar[int] = 400
    close_code: ClassVar[int] = 4400

    def __init__(self, code: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    @property
    def retry_after(self) -> int | None:
        """Seconds after which the same request may succeed (sent as ``Retry-After``)."""
        value = self.details.get("retry_after")
        return value if isinstance(value, int) else None

    def body(self) -> dict[str, dict[str, object]]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class BadRequest(BackchannelError):
    status = 400
    close_code = 4400


class Unauthorized(BackchannelError):
    status = 401
    close_code = 4401


class Forbidden(BackchannelError):
    status = 403
    close_code = 4403


class NotFound(BackchannelError):
    status = 404
    close_code = 4404


class Conflict(BackchannelError):
    status = 409
    close_code = 4409


class PayloadTooLarge(BackchannelError):
    status = 413
    close_code = 1009


class TooManyRequests(BackchannelError):
    status = 429
    close_code = 4429


class Unavailable(BackchannelError):
    status = 503
    close_code = 1013

    def __init__(self, code: str, message: str, **details: object) -> None:
        super().__init__(code, message, **{"retry_after": 2, **details})


class SessionChanged(Unavailable):
    """A post was judged by a session record older than the session's settings (another process
    changed them meanwhile): the poster reads the session again and judges the post anew, so a
    client sees this only if the session keeps changing while it retries."""

    def __init__(self, slug: str) -> None:
        super().__init__(
            "session_changed", f"session {slug!r} changed while the comment was posted; retry"
        )


class ConfigError(Exception):
    """A setting has a bad value; raised at start-up, naming the variable."""
