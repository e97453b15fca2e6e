"""Backchannel as it runs in production: ``backchannel serve --workers N`` with ``REDIS_URL``, on
the run's durable embedded PostgreSQL, with the community rules on (the event has its own
banned and suspect words too) and posts from many authors (one token ``sub`` each). Only the
generator's address is exempt from the per-address limits (``RATE_LIMIT_EXEMPT=127.0.0.0/8``),
and ``POSTS_PER_MINUTE`` is raised just enough for the scenario's authors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from server.auth import issue_token
from server.embedded import free_port

from ..machine import tree
from . import Target, TargetConfig, spawn, stop_process

ISSUER = "backchannel-bench"
AUDIENCE = "backchannel-bench"
SECRET = "bench-secret-" + secrets.token_hex(16)
KEYS = {"bench": SECRET}
COUNTERS = {
    "backchannel_deliveries_total": "deliveries",
    "backchannel_frames_sent_total": "frames",
    "backchannel_bytes_sent_total": "bytes",
    "backchannel_clients_shed_total": "shed",
    "backchannel_catch_up_reads_total": "catch_up_reads",
    "backchannel_gap_fills_total": "gap_fills",
    "backchannel_events_published_total": "events_published",
    "backchannel_connections": "connections",
    "backchannel_post_seconds_count": "posts",
}
# The event's own lists, on top of the default rules: the rules judge every post against them.
BANNED = ["scamcoin", "spamword"]
SUSPECT = ["miracle cure", "guaranteed results", "dm me"]


def command() -> list[str]:
    script = Path(sys.executable).parent / "backchannel"
    if script.exists():
        return [str(script), "serve"]
    found = shutil.which("backchannel")
    return [found, "serve"] if found else [sys.executable, "-m", "server", "serve"]


class Backchannel(Target):
    name = "backchannel"
    description = "backchannel serve --workers N, Redis, durable PostgreSQL, rules on"
    capabilities = frozenset({"since", "history", "processes", "bound", "seq", "counters"})
    needs_token = True

    def __init__(self, env: Any, workdir: Path) -> None:
        super().__init__(env, workdir)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.metrics_port = 0
        self.environment: dict[str, str] = {}
        self.event = ""
        self.log_path = workdir / "backchannel.log"
        self._admin = issue_token(
            KEYS,
            issuer=ISSUER,
            audience=AUDIENCE,
            ttl=86400,
            sub="bench-admin",
            name="Bench Admin",
            role="admin",
            event="*",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, config: TargetConfig, label: str) -> None:
        self.config = config
        database = await self.env.postgres_url()
        redis = await self.env.redis_url()
        self.port = free_port()
        self.metrics_port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"backchannel-{label}.log"
        settings = {
            "DATABASE_URL": database,
            "REDIS_URL": redis,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WORKERS": str(config.processes),
            "JWT_SECRETS": f"bench={SECRET}",
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "DATA_DIR": str(self.workdir / "data"),
            "METRICS_ADDRESS": f"127.0.0.1:{self.metrics_port}",
            "RATE_LIMIT_EXEMPT": "127.0.0.0/8",
            "POSTS_PER_MINUTE": str(config.posts_per_minute or 10),
            "LOG_LEVEL": "warning",
            **(
                {"WS_PING_INTERVAL": str(config.ping_interval)}
                if config.ping_interval is not None
                else {}
            ),
            **config.settings,
        }
        self.environment = settings
        # Nothing of the caller's own Backchannel settings leaks in (a .env is not read either:
        # the server runs in its own folder).
        from tests.topology import SETTING_NAMES

        inherited = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
        self.process = spawn(
            command(), self.log_path, cwd=self.workdir, environment={**inherited, **settings}
        )
        await self._wait_ready()
        async with self._api() as api:
            self.event = f"bench-{self.env.run}-{label}"[:60]
            await _ok(api.post("/v1/events", json={"slug": self.event, "title": "Bench event"}))
            await _ok(
                api.patch(
                    f"/v1/events/{self.event}/rules",
                    json={"banned_words": BANNED, "suspect_words": SUSPECT},
                )
            )

    async def _wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"backchannel exited at start:\n{self.log_path.read_text()[-3000:]}"
                    )
                try:
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"backchannel not ready; see {self.log_path}")

    def _api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self._admin}"},
            timeout=60,
        )

    async def stop(self) -> None:
        await stop_process(self.process, 30)
        self.process = None

    def ports(self) -> list[int]:
        return [self.port]

    async def create_sessions(self, count: int, prefix: str) -> list[str]:
        slugs = [f"{prefix}-{i}"[:64] for i in range(count)]
        async with self._api() as api:
            limit = asyncio.Semaphore(16)

            async def one(slug: str) -> None:
                async with limit:
                    await _ok(
                        api.post(
                            f"/v1/events/{self.event}/sessions",
                            json={
                                "slug": slug,
                                "title": f"Bench {slug}",
                                "prompt": "What insights did this session spark for you?",
                            },
                        )
                    )

            await asyncio.gather(*(one(s) for s in slugs))
        return slugs

    async def head(self, slug: str) -> int | None:
        async with self._api() as api:
            response = await _ok(api.get(f"/v1/sessions/{slug}"))
            return int(response.json()["head"])

    def tokens(self, count: int) -> list[str]:
        return [
            issue_token(
                KEYS,
                issuer=ISSUER,
                audience=AUDIENCE,
                ttl=86400,
                sub=f"bench-{self.env.run}-author-{i}",
                name=f"Reader {i}",
                profession="Nursing",
                city="Albany",
                region="NY",
                country="US",
                role="attendee",
                event=self.event,
            )
            for i in range(count)
        ]

    def process_groups(self) -> dict[str, Callable[[], list[int]]]:
        pid = self.process.pid if self.process is not None else 0
        return {
            "server": lambda: tree(pid) if pid else [],
            "postgres": self.env.postgres_pids,
            "redis": self.env.redis_pids,
        }

    async def counters(self) -> dict[str, float]:
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(f"http://127.0.0.1:{self.metrics_port}/metrics")).text
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name_part, _, value = line.rpartition(" ")
            name = name_part.split("{", 1)[0]
            if name in COUNTERS:
                key = COUNTERS[name]
                found[key] = found.get(key, 0.0) + float(value)
        return found

    def describe(self) -> dict[str, Any]:
        shown = {
            k: v
            for k, v in self.environment.items()
            if k not in ("JWT_SECRETS", "DATABASE_URL", "DATA_DIR", "HOST", "PORT")
        }
        shown["REDIS_URL"] = "redis://127.0.0.1 (tests/servers.py RedisServer)"
        return {
            "command": " ".join(Path(c).name for c in command())
            + f" --workers {self.config.processes}",
            "settings": shown,
            "postgres": dict(self.env.pg_settings),
            "rules": {"default rules": "on", "banned_words": BANNED, "suspect_words": SUSPECT},
            "authors": self.config.authors,
        }

    async def sample(self, stop: Any) -> dict[str, Any]:
        """What the server's PostgreSQL sessions were doing, sampled every 20 ms while ``stop``
        is not set: the share of samples in each state and wait event (``Lock:tuple`` and
        ``Lock:transactionid`` are posts queueing for a session's row; ``IO:WalSync`` is the
        commit's fsync; ``Client:ClientRead`` is PostgreSQL waiting for the server)."""
        conn = await asyncpg.connect(await self.env.postgres_url())
        counts: dict[str, int] = {}
        samples = 0
        try:
            while not stop.is_set():
                rows = await conn.fetch(
                    """SELECT state, wait_event_type, wait_event FROM pg_stat_activity
                       WHERE datname = current_database() AND pid <> pg_backend_pid()
                         AND backend_type = 'client backend'"""
                )
                samples += 1
                for row in rows:
                    if row["state"] == "idle":
                        key = "idle"
                    else:
                        wait = f"{row['wait_event_type']}:{row['wait_event']}"
                        key = f"{row['state']} {wait if row['wait_event_type'] else 'on CPU'}"
                    counts[key] = counts.get(key, 0) + 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.02)
        finally:
            await conn.close()
        busy = {k: v for k, v in counts.items() if k != "idle"}
        top = sorted(busy.items(), key=lambda kv: -kv[1])[:8]
        return {
            "samples": samples,
            "postgres_sessions_busy_mean": round(sum(busy.values()) / max(1, samples), 2),
            "postgres_waits": {k: round(v / max(1, samples), 3) for k, v in top},
        }

    # --- history ---------------------------------------------------------------------------------

    async def load_history(self, comments: int) -> tuple[str, dict[str, Any]]:
        """A session of ``comments`` comments loaded with SQL (generate_series): 40 % threads,
        the rest replies two levels deep, the newest threads the busiest; counts, numbers and
        the event log (one ``comment.created`` each) as the triggers would have left them."""
        (slug,) = await self.create_sessions(1, f"hist-{self.env.run}")
        threads = max(60, comments * 2 // 5)
        first_level = (comments - threads) * 2 // 3
        second_level = comments - threads - first_level
        conn = await asyncpg.connect(await self.env.postgres_url())
        started = time.monotonic()
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                session_id = await conn.fetchval("SELECT id FROM sessions WHERE slug = $1", slug)
                prefix = f"hist-{self.env.run}-"
                await conn.execute(
                    """INSERT INTO authors (external_id, name, profession, city, region, country)
                       SELECT $1::text || g, 'Reader ' || g, 'Nursing', 'Albany', 'NY', 'US'
                       FROM generate_series(1, 500) g""",
                    prefix,
                )
                first_author = await conn.fetchval(
                    "SELECT min(id) FROM authors WHERE external_id LIKE $1::text || '%'", prefix
                )
                bodies = (
                    "ARRAY["
                    + ",".join("'" + s.replace("'", "''") + "'" for s in _history_bodies())
                    + "]"
                )
                await conn.execute(
                    f"""INSERT INTO comments (session_id, author_id, number, body, status,
                                              created_at)
                        SELECT $1::bigint, $2::bigint + g % 500, g, ({bodies})[1 + g % 12],
                               'published',
                               now() - make_interval(secs => ($3::int - g) * 5)
                        FROM generate_series(1, $3::int) g""",
                    session_id,
                    first_author,
                    threads,
                )
                first_thread = await conn.fetchval(
                    "SELECT min(id) FROM comments WHERE session_id = $1", session_id
                )
                # Replies: a quarter to the 50 newest threads (the first page is busy), the
                # rest spread over all threads.
                await conn.execute(
                    f"""INSERT INTO comments (session_id, author_id, parent_id, root_id, depth,
                                              body, status, created_at)
                        SELECT $1::bigint, $2::bigint + g % 500, t, t, 1, ({bodies})[1 + g % 12],
                               'published',
                               now() - make_interval(secs => ($4::int - g) * 2)
                        FROM (SELECT g, CASE WHEN g % 4 = 0
                                    THEN $3::bigint + $5::int - 1 - (g % 50)
                                    ELSE $3::bigint + (g::bigint * 7919) % $5::int END AS t
                              FROM generate_series(1, $4::int) g) x""",
                    session_id,
                    first_author,
                    first_thread,
                    first_level,
                    threads,
                )
                await conn.execute(
                    f"""INSERT INTO comments (session_id, author_id, parent_id, root_id, depth,
                                              body, status, created_at)
                        SELECT $1::bigint, $2::bigint + r.n % 500, r.id, r.root_id, 2,
                               ({bodies})[1 + r.n % 12], 'published', now()
                        FROM (SELECT id, root_id, row_number() OVER (ORDER BY id) AS n
                              FROM comments WHERE session_id = $1 AND depth = 1) r
                        JOIN generate_series(1, $3::int) g
                          ON r.n = 1 + (g::bigint * 104729) % $4::int""",
                    session_id,
                    first_author,
                    second_level,
                    first_level,
                )
                await conn.execute(
                    """UPDATE comments c SET reply_count = x.n
                       FROM (SELECT root_id, count(*) AS n FROM comments
                             WHERE session_id = $1 AND root_id IS NOT NULL GROUP BY root_id) x
                       WHERE c.id = x.root_id""",
                    session_id,
                )
                await conn.execute(
                    """UPDATE comments c SET reply_count = x.n
                       FROM (SELECT parent_id, count(*) AS n FROM comments
                             WHERE session_id = $1 AND depth = 2 GROUP BY parent_id) x
                       WHERE c.id = x.parent_id""",
                    session_id,
                )
                total = await conn.fetchval(
                    "SELECT count(*) FROM comments WHERE session_id = $1", session_id
                )
                await conn.execute(
                    """INSERT INTO session_events (session_id, seq, kind, comment_id, at)
                       SELECT $1::bigint, row_number() OVER (ORDER BY id), 'comment.created', id,
                              created_at
                       FROM comments WHERE session_id = $1""",
                    session_id,
                )
                await conn.execute(
                    """UPDATE sessions SET last_number = $2, comment_count = $3, last_seq = $4
                       WHERE id = $1""",
                    session_id,
                    threads,
                    int(total),
                    int(total),
                )
            await conn.execute("ANALYZE comments")
            await conn.execute("ANALYZE session_events")
            busiest = await conn.fetchval(
                """SELECT id FROM comments WHERE session_id = $1 AND depth = 0
                   ORDER BY reply_count DESC LIMIT 1""",
                session_id,
            )
        finally:
            await conn.close()
        return slug, {
            "comments": int(total),
            "threads": threads,
            "replies": int(total) - threads,
            "busiest_thread": int(busiest),
            "load_seconds": round(time.monotonic() - started, 2),
        }

    def history_paths(self, slug: str, info: dict[str, Any]) -> dict[str, list[str]]:
        threads = int(info["threads"])
        deep = min(threads - 1, 1001)  # the threads numbered 951..1000: near the oldest end
        return {
            "first page": [f"/v1/sessions/{slug}/comments"],
            f"deep page (before={deep})": [f"/v1/sessions/{slug}/comments?before={deep}"],
            "replies of the busiest thread": [f"/v1/comments/{info['busiest_thread']}/replies"],
        }


def _history_bodies() -> list[str]:
    from ..marks import SENTENCES

    return list(SENTENCES)


async def _ok(request: Any) -> httpx.Response:
    response: httpx.Response = await request
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text[:300]}"
        )
    return response


TARGET = Backchannel
