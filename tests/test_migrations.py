"""``schema.sql`` is exactly what the migrations leave: applied in order to an empty database,
they give the same schema (by ``pg_dump --schema-only``) and the same reference rows."""

from __future__ import annotations

import re
import subprocess
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from server.embedded import _bin
from server.migrations import available, migrate

SCHEMA = "schema.sql"
REFERENCE_TABLES = ("comment_states", "comment_transitions")


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def dump_schema(url: str) -> str:
    done = subprocess.run(
        [_bin("pg_dump"), "--schema-only", "--no-owner", "--no-privileges", url],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [
        line
        for line in done.stdout.splitlines()
        if line.strip() and not line.startswith("--") and not line.startswith("\\")
    ]
    return "\n".join(lines)


async def fresh_database(url: str) -> str:
    name = f"schema_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return with_database(url, name)


async def reference_rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    conn = await asyncpg.connect(url)
    try:
        return {
            t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")]
            for t in REFERENCE_TABLES
        }
    finally:
        await conn.close()


async def test_migrations_give_exactly_schema_sql(database_url: str) -> None:
    migrated, declared = await fresh_database(database_url), await fresh_database(database_url)
    conn = await asyncpg.connect(migrated)
    try:
        assert await migrate(conn) == [m.version for m in available()]
        assert await migrate(conn) == []  # applied once, recorded
    finally:
        await conn.close()
    conn = await asyncpg.connect(declared)
    try:
        with open(SCHEMA, encoding="utf-8") as schema:
            await conn.execute(schema.read())
    finally:
        await conn.close()
    assert dump_schema(migrated) == dump_schema(declared)
    assert await reference_rows(migrated) == await reference_rows(declared)


def test_migration_files_are_numbered_without_gaps() -> None:
    versions = [m.version for m in available()]
    assert versions == list(range(1, len(versions) + 1))
    assert all(re.match(r"^[a-z0-9_]+$", m.name) for m in available())


async def test_state_machine_is_enforced_by_the_database(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        allowed = {
            (r["from_status"], r["to_status"])
            for r in await conn.fetch("SELECT * FROM comment_transitions")
        }
        assert allowed == {
            ("published", "removed"),
            ("removed", "published"),
            ("published", "deleted"),
            ("held", "published"),
            ("held", "rejected"),
            ("held", "deleted"),
            ("published", "held"),
        }
        async with conn.transaction():
            event = await conn.fetchval(
                "INSERT INTO events (slug, title) VALUES ($1, 'x') RETURNING id",
                f"sm-{uuid.uuid4().hex[:8]}",
            )
            session = await conn.fetchval(
                "INSERT INTO sessions (event_id, slug, title) VALUES ($1, $2, 'x') RETURNING id",
                event,
                f"sm-{uuid.uuid4().hex[:8]}",
            )
            author = await conn.fetchval(
                "INSERT INTO authors (external_id) VALUES ($1) RETURNING id", uuid.uuid4().hex
            )
            try:
                await conn.execute(
                    "INSERT INTO comments (session_id, author_id, body, status) "
                    "VALUES ($1, $2, 'x', 'removed')",
                    session,
                    author,
                )
                raise AssertionError("a comment was created in a non-initial state")
            except asyncpg.CheckViolationError as exc:
                assert "cannot start as removed" in str(exc)
            raise _Rollback
    except _Rollback:
        pass
    finally:
        await conn.close()


class _Rollback(Exception):
    pass
