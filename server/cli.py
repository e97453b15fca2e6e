"""``backchannel``: serve, migrate, token, watch, and the data commands export, import, forget and
retention (``server/transfer.py``). Each subcommand has ``--help``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence

import asyncpg

from . import logs
from .auth import issue_token
from .config import Settings, load_settings
from .embedded import EmbeddedPostgres
from .errors import ConfigError
from .metrics import MULTIPROCESS, serve_multiprocess
from .migrations import migrate
from .protocol import ROLES
from .services import signing_keys
from .transfer import DATA_COMMANDS, add_commands, run

log = logging.getLogger("backchannel")

WS_PROTOCOL = "server.transport:BackchannelWebSocketProtocol"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="backchannel", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the server (an embedded PostgreSQL if DATABASE_URL is unset)"
    )
    serve.add_argument("--host", help="address to listen on (HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (PORT)")
    serve.add_argument("--workers", type=int, help="processes sharing the port; needs REDIS_URL")
    serve.add_argument(
        "--demo",
        action="store_true",
        default=None,
        help="create the demo event and session with comments (DEMO)",
    )

    commands.add_parser("migrate", help="apply pending schema migrations, then exit")

    watch = commands.add_parser("watch", help="print a session's live stream in a terminal")
    watch.add_argument("url", help="the server, e.g. http://127.0.0.1:8000")
    watch.add_argument("session", help="the session's slug")
    watch.add_argument("--since", type=int, help="replay events after this seq first")

    token = commands.add_parser("token", help="print a signed token (for local use and tests)")
    token.add_argument("--name", default="", help="display name")
    token.add_argument("--role", default="attendee", choices=ROLES)
    token.add_argument("--event", default="*", help="event slug the role applies to, or *")
    token.add_argument("--sub", help="the host site's user id (default: derived from the name)")
    token.add_argument("--profession", default="")
    token.add_argument("--city", default="")
    token.add_argument("--region", default="")
    token.add_argument("--country", default="")
    token.add_argument("--ttl", type=float, default=3 * 3600, help="seconds until expiry")
    add_commands(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        overrides = {k: getattr(args, k, None) for k in ("host", "port", "workers", "demo")}
        settings = load_settings(**overrides)
        # The server's processes read their settings anew from the environment: pass the
        # command line's choices on to them there.
        for name, value in overrides.items():
            if value is not None:
                os.environ[name.upper()] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
    except ConfigError as exc:
        print(f"backchannel: bad configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "token":
        print(make_token(settings, args))
        return 0
    if args.command == "watch":
        return asyncio.run(print_stream(args.url, args.session, args.since))
    # uvicorn re-raises SIGTERM once it has shut down: make it an exit, so that the embedded
    # PostgreSQL below is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    embedded = None
    if not settings.database_url:
        embedded = EmbeddedPostgres(settings.data_path / "pgdata")
        url = embedded.start()
        os.environ["DATABASE_URL"] = url  # worker processes read their settings anew
        settings = load_settings(database_url=url, **overrides)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings.database_url))
            return 0
        if args.command in DATA_COMMANDS:
            return asyncio.run(_data_command(settings, args))
        return serve(settings)
    finally:
        if embedded is not None:
            embedded.stop()


def make_token(settings: Settings, args: argparse.Namespace) -> str:
    claims = {
        "sub": args.sub or (args.name.lower().replace(" ", "-") or "local-user"),
        "name": args.name,
        "profession": args.profession,
        "city": args.city,
        "region": args.region,
        "country": args.country,
        "role": args.role,
        "event": args.event,
    }
    return issue_token(
        signing_keys(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=args.ttl,
        **claims,
    )


async def print_stream(url: str, session: str, since: int | None) -> int:
    from client import FeedClosed, describe, watch

    try:
        async for event in watch(url, session, since=since):
            print(describe(event), flush=True)
    except FeedClosed as closed:
        print(f"backchannel: the server closed the feed: {closed.code} {closed.reason}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


async def _migrate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        applied = await migrate(conn)
        log.info("migrations: %s", f"applied {applied}" if applied else "up to date")
    finally:
        await conn.close()


async def _data_command(settings: Settings, args: argparse.Namespace) -> int:
    await _migrate(settings.database_url)
    return await run(settings, args)


async def _prepare(settings: Settings) -> str | None:
    await _migrate(settings.database_url)
    if not settings.demo:
        return None
    from .demo import load_demo
    from .storage import Store

    store = await Store.connect(settings.database_url, 2)
    try:
        return await load_demo(store)
    finally:
        await store.close()


def serve(settings: Settings) -> int:
    demo = asyncio.run(_prepare(settings))
    base = f"http://{settings.host}:{settings.port}"
    if demo:
        log.info("demo board: %s/board.html?session=%s", base, demo)
    metrics = None
    if settings.workers > 1 and settings.metrics_address:
        # Each worker writes its metrics to files here; this process serves their sum.
        directory = tempfile.mkdtemp(prefix="backchannel-metrics-")
        os.environ[MULTIPROCESS] = directory
        metrics = serve_multiprocess(settings.metrics_address, directory)
    try:
        run_uvicorn(settings)
    finally:
        if metrics is not None:
            metrics.close()
            shutil.rmtree(os.environ.pop(MULTIPROCESS), ignore_errors=True)
    return 0


# Connections the kernel queues for a process while its event loop is busy (capped by the
# kernel's net.core.somaxconn). A storm of reconnections (every watcher of a session at once)
# overflows uvicorn's default of 2,048, and a connection dropped there is retried by its client's
# kernel only 1 s later, then 3 s, then 7 s.
LISTEN_BACKLOG = 8192


def run_uvicorn(settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers if settings.workers > 1 else None,
        backlog=LISTEN_BACKLOG,
        ws=WS_PROTOCOL,
        ws_max_size=settings.ws_max_message,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        ws_per_message_deflate=False,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=settings.shutdown_grace,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,  # logging is ours (server/logs.py)
    )


if __name__ == "__main__":
    raise SystemExit(main())
