"""The suite starts its own PostgreSQL (embedded) and Redis (a real redis-server) once per run,
on free ports, unless ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` point elsewhere."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from client import Api
from server.auth import issue_token
from server.config import Settings
from server.embedded import EmbeddedPostgres
from server.migrations import migrate

from .servers import JWT_SECRETS, TEST_SECRETS, InProcessServer, RedisServer

ISSUER = "backchannel-test"
AUDIENCE = "backchannel-test-audience"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("backchannel")


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[EmbeddedPostgres | None]:
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    pg = EmbeddedPostgres(workdir / "pgdata", durable=False)
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
async def database_url(postgres: EmbeddedPostgres | None) -> str:
    """The suite's database, migrated."""
    url = os.environ.get("TEST_DATABASE_URL") or (postgres.url if postgres else "")
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


@pytest.fixture(scope="session")
def redis_url(workdir: Path) -> Iterator[str]:
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    server = RedisServer(workdir / "redis").start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def make_settings(database_url: str, workdir: Path) -> Callable[..., Settings]:
    names = itertools.count(1)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "jwt_secrets": JWT_SECRETS,
            "jwt_issuer": ISSUER,
            "jwt_audience": AUDIENCE,
            "jwt_leeway": 1,
            "data_dir": str(workdir / "data"),
            "server_name": f"test-{next(names)}",
            "port": 0,
            "metrics_address": "",  # a test that scrapes asks for one
            # Tests post fast from one address; the tests of the limits ask for them.
            "posts_per_minute": 0,
            "rate_limit_exempt": "127.0.0.0/8",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture(scope="session")
def env(database_url: str, redis_url: str, workdir: Path) -> dict[str, str]:
    """The environment for server child processes."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRETS": JWT_SECRETS,
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "DATA_DIR": str(workdir / "data"),
        "LOG_LEVEL": "info",
        "METRICS_ADDRESS": "",  # many servers run at once; a test that scrapes asks for one
        "POSTS_PER_MINUTE": "0",  # tests post fast from one address; limit tests ask for them
        "RATE_LIMIT_EXEMPT": "127.0.0.0/8",
    }


@pytest.fixture(scope="session")
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[InProcessServer]:
    """One single-process server (in-process bus) shared by the tests that need no other."""
    srv = await InProcessServer(make_settings()).start()
    yield srv
    await srv.stop()


def make_token(
    role: str = "attendee",
    event: str = "*",
    *,
    kid: str = "k1",
    ttl: float = 3600,
    sub: str | None = None,
    **claims: Any,
) -> str:
    keys = {kid: TEST_SECRETS.get(kid, "an-unknown-secret-of-thirty-two-bytes-or-more")}
    claims.setdefault("name", f"Test {role.title()}")
    return issue_token(
        keys,
        issuer=claims.pop("iss", ISSUER),
        audience=claims.pop("aud", AUDIENCE),
        ttl=ttl,
        sub=sub or f"user-{uuid.uuid4().hex[:12]}",
        role=role,
        event=event,
        **claims,
    )


@pytest.fixture
def token() -> Callable[..., str]:
    return make_token


def nonce() -> str:
    """A unique word of letters only: a run of digits in a comment reads as a phone number, and
    the community rules would hold it."""
    return uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))


class Board:
    """A fresh event and open session for one test, with API clients for each role."""

    def __init__(self, url: str, event: str, session: str) -> None:
        self.url = url
        self.event = event
        self.session = session

    def api(self, role: str = "attendee", **claims: Any) -> Api:
        return Api(self.url, make_token(role, self.event, **claims))

    def anonymous(self) -> Api:
        return Api(self.url)


async def new_board(url: str, **session_fields: Any) -> Board:
    suffix = uuid.uuid4().hex[:10]
    event, session = f"ev-{suffix}", f"se-{suffix}"
    async with Api(url, make_token("admin", "*")) as admin:
        await admin.create_event(event, f"Event {suffix}")
        await admin.create_session(
            event,
            session,
            f"Session {suffix}",
            speakers=["Dr. Test"],
            prompt="What insights did this session spark for you?",
            **session_fields,
        )
    return Board(url, event, session)


@pytest.fixture
async def board(server: InProcessServer) -> Board:
    return await new_board(server.url)
