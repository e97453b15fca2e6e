"""What one ``python -m bench`` invocation shares between its scenarios: a working folder, the
embedded PostgreSQL (durable: fsync, synchronous_commit and full_page_writes on) and a Redis,
each started on first use and stopped at the end."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import asyncpg

from .machine import machine, tree

PG_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "shared_buffers",
    "max_connections",
    "server_version",
)


class Environment:
    def __init__(self, workdir: Path | None = None, keep: bool = False) -> None:
        self.own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="backchannel-bench-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self.run = secrets.token_hex(3)  # in every marker: frames of other runs are ignored
        self.machine = machine()
        self._postgres: Any = None
        self._redis: Any = None
        self.pg_settings: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def postgres_url(self) -> str:
        async with self._lock:
            if self._postgres is None:
                from server.embedded import EmbeddedPostgres
                from server.migrations import migrate

                pg = EmbeddedPostgres(self.workdir / "pgdata", durable=True)
                await asyncio.to_thread(pg.start)
                self._postgres = pg
                conn = await asyncpg.connect(pg.url)
                try:
                    await migrate(conn)
                    for name in PG_SETTINGS:
                        self.pg_settings[name] = await conn.fetchval(f"SHOW {name}")
                finally:
                    await conn.close()
            url: str = self._postgres.url
            return url

    def postgres_pids(self) -> list[int]:
        if self._postgres is None or self._postgres.process is None:
            return []
        return tree(self._postgres.process.pid)

    async def redis_url(self) -> str:
        async with self._lock:
            if self._redis is None:
                from tests.servers import RedisServer

                self._redis = await asyncio.to_thread(RedisServer(self.workdir / "redis").start)
            url: str = self._redis.url
            return url

    def redis_pids(self) -> list[int]:
        if self._redis is None or self._redis.process is None:
            return []
        return [self._redis.process.pid]

    def close(self) -> None:
        if self._redis is not None:
            self._redis.stop()
            self._redis = None
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None
        if self.own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
