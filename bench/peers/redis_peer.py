"""What the library peers share: an app under uvicorn (its default WebSocket implementation),
``--workers N``, always joined by the run's Redis (the libraries' point: the same app for one
process or many), ready once every worker has answered ``/healthz`` with its pid."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from server.embedded import free_port

from ..machine import tree
from ..targets import Target, TargetConfig, spawn, stop_process, wait_ready

ROOT = Path(__file__).resolve().parents[2]


class RedisPeer(Target):
    """A peer app (``app``: its uvicorn import string) started with the run's Redis."""

    capabilities = frozenset({"processes"})
    since_query = ""
    path_post = "/post/{slug}"
    ready_message = ""
    hello = False
    app = ""
    redis_note = ""  # how the app uses Redis, for the report

    def __init__(self, env: Any, workdir: Path) -> None:
        super().__init__(env, workdir)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.argv: list[str] = []

    def settings(self, config: TargetConfig, redis_url: str) -> dict[str, str]:
        """The app's environment variables."""
        raise NotImplementedError

    def uvicorn_options(self, config: TargetConfig) -> list[str]:
        """uvicorn options beyond the host, port, workers and logging."""
        return []

    async def start(self, config: TargetConfig, label: str) -> None:
        self.config = config
        self.port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        redis_url = await self.env.redis_url()
        environment = {**os.environ, "PYTHONPATH": str(ROOT), **self.settings(config, redis_url)}
        self.argv = [sys.executable, "-m", "uvicorn", self.app,
                     "--host", "127.0.0.1", "--port", str(self.port),
                     "--workers", str(config.processes), "--log-level", "warning",
                     "--no-access-log", "--backlog", "4096",
                     *self.uvicorn_options(config)]  # fmt: skip
        log = self.workdir / f"{self.name}-{label}.log"
        self.process = spawn(self.argv, log, cwd=ROOT, environment=environment)
        # Ready once every worker has answered (each connection may land on any of them).
        seen: set[int] = set()

        def every_worker(answer: httpx.Response) -> bool:
            seen.add(answer.json()["pid"])
            return len(seen) >= config.processes

        await wait_ready(self.name, self.process, log, self.port, every_worker, poll=0.05)

    async def stop(self) -> None:
        await stop_process(self.process)
        self.process = None

    def ports(self) -> list[int]:
        return [self.port]

    def process_groups(self) -> dict[str, Callable[[], list[int]]]:
        pid = self.process.pid if self.process is not None else 0
        return {"server": lambda: tree(pid) if pid else [], "redis": self.env.redis_pids}

    def describe(self) -> dict[str, Any]:
        return {
            "command": " ".join(Path(a).name if a.startswith("/") else a for a in self.argv),
            "redis": self.redis_note,
        }
