"""Settings, read once from the environment (and a ``.env`` file) at start-up.

Every field below is an environment variable of the same name in upper case; the README lists
them all with their defaults (a test keeps the two in step). A bad value stops start-up with a
:class:`~server.errors.ConfigError` naming the variable.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from .errors import ConfigError
from .limits import parse_networks

Positive = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = ""
    """PostgreSQL DSN. Empty: start an embedded PostgreSQL in ``DATA_DIR``."""
    redis_url: str = ""
    """Redis URL joining server processes. Empty: a single process with an in-process bus."""
    data_dir: str = ".backchannel"
    """Folder for the embedded PostgreSQL and the development signing secret."""
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    workers: Positive = 1
    """Server processes sharing the port; more than one needs ``REDIS_URL``."""
    server_name: str = ""
    """Names this process in responses (``X-Backchannel-Server``); default host-pid."""
    jwt_secrets: str = ""
    """HS256 secrets as ``kid=secret,kid2=secret2`` (or one bare secret). Empty: a development
    secret kept in ``DATA_DIR``."""
    jwt_issuer: str = "backchannel-dev"
    jwt_audience: str = "backchannel"
    jwt_leeway: Annotated[float, msgspec.Meta(ge=0, le=300)] = 30.0
    allowed_origins: str = ""
    """Comma-separated origins of host sites allowed to open the feed from a browser (besides
    the service's own origin); ``*`` allows any."""
    ws_send_buffer_limit: Annotated[int, msgspec.Meta(ge=4096)] = 262_144
    """Bytes that may wait unsent for one watcher before it is cut off with 4008."""
    ws_max_message: Annotated[int, msgspec.Meta(ge=256)] = 16_384
    """Largest message a client may send on the WebSocket; larger closes with 1009."""
    ws_ping_interval: Seconds = 20.0
    ws_ping_timeout: Seconds = 20.0
    ws_shed_grace: Seconds = 5.0
    """Seconds a cut-off client has to read its close frame before its socket is aborted."""
    metrics_address: str = "127.0.0.1:9100"
    """Where ``/metrics`` (Prometheus) is served, as ``host:port``; never the public address.
    Empty: not served."""
    shutdown_grace: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 10
    """Seconds a SIGTERM waits for requests in flight before the process exits."""
    posts_per_minute: Annotated[int, msgspec.Meta(ge=0)] = 10
    """Comments one person may post in one session per minute (0: no limit); presenters and
    moderators are exempt."""
    address_posts_per_minute: Annotated[int, msgspec.Meta(ge=0)] = 600
    """Posts, edits and reports per minute from one client address, per process (0: no
    limit). Generous: a whole hospital may share one address."""
    address_connects_per_minute: Annotated[int, msgspec.Meta(ge=0)] = 600
    """Live-feed connections per minute from one client address, per process (0: no limit)."""
    rate_limit_exempt: str = ""
    """Addresses or networks (``10.0.0.0/8``), comma-separated, exempt from the limits by
    address (e.g. a load generator)."""
    forwarded_allow_ips: str = "127.0.0.1"
    """Proxies (the load balancer) trusted for ``X-Forwarded-For``: the client's address is
    taken from it only when the connection comes from one of these (``*``: any)."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line, with the request and session ids."""
    ring_size: Positive = 1024
    """Recent events kept in memory per watched session, so catch-ups skip the database."""
    page_size: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    replies_per_thread: Annotated[int, msgspec.Meta(ge=1, le=500)] = 20
    db_pool_size: Annotated[int, msgspec.Meta(ge=1, le=200)] = 10
    demo: bool = False
    """Create the demo event and session with their comments at start-up (if absent)."""
    retention_days: Annotated[int, msgspec.Meta(ge=0)] = 0
    """``backchannel retention`` removes boards whose session closed more than this many days
    ago (0: keep every board forever)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def name(self) -> str:
        return self.server_name or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    def origins(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()
        )


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=value`` lines; blank lines and ``#`` comments skipped, surrounding quotes removed."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected KEY=value")
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def load_settings(
    environ: Mapping[str, str] | None = None,
    dotenv: Path | None = Path(".env"),
    **overrides: object,
) -> Settings:
    """Settings from ``.env``, then the environment (which wins), then explicit ``overrides``."""
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    source: dict[str, object] = {}
    if dotenv is not None:
        source.update(read_dotenv(dotenv))
    source.update(os.environ if environ is None else environ)
    raw: dict[str, object] = {
        name: source[name.upper()] for name in fields if name.upper() in source
    }
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_name_variable(str(exc))) from None
    if settings.workers > 1 and not settings.redis_url:
        raise ConfigError("WORKERS > 1 needs REDIS_URL: processes share sessions through Redis")
    try:
        parse_networks(settings.rate_limit_exempt)
    except ValueError as exc:
        raise ConfigError(f"RATE_LIMIT_EXEMPT: {exc}") from None
    if settings.metrics_address:
        _, sep, port = settings.metrics_address.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
            raise ConfigError(
                f"METRICS_ADDRESS: expected host:port, got {settings.metrics_address!r}"
            )
    return settings


def _name_variable(error: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.port`": name the variable instead.
    message, _, where = error.partition(" - at `$.")
    if where:
        return f"{where.rstrip('`').upper()}: {message}"
    return error
