"""The ``broadcaster`` peer: bench/peers/broadcaster/app.py under uvicorn (its default
WebSocket implementation), ``--workers N``, its channels always in the run's Redis (the
library's point: the same app for one process or many)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from server.embedded import free_port

from ...machine import tree
from ...targets import Target, TargetConfig

ROOT = Path(__file__).resolve().parents[3]


class Broadcaster(Target):
    name = "broadcaster"
    description = "encode's broadcaster over Redis: a subscription per socket, send_text each"
    capabilities = frozenset({"processes"})
    path_live = "/live/{slug}"
    since_query = ""
    path_post = "/post/{slug}"
    ready_message = ""

    def __init__(self, env: Any, workdir: Path) -> None:
        super().__init__(env, workdir)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.argv: list[str] = []

    async def start(self, config: TargetConfig, label: str) -> None:
        self.config = config
        self.port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BROADCASTER_URL": await self.env.redis_url(),
        }
        ping = config.ping_interval if config.ping_interval is not None else 20.0
        self.argv = [sys.executable, "-m", "uvicorn", "bench.peers.broadcaster.app:app",
                     "--host", "127.0.0.1", "--port", str(self.port),
                     "--workers", str(config.processes), "--log-level", "warning",
                     "--no-access-log", "--ws-ping-interval", str(ping),
                     "--backlog", "4096"]  # fmt: skip
        log = self.workdir / f"broadcaster-{label}.log"
        self.process = await asyncio.to_thread(spawn, self.argv, environment, log)
        # Ready once every worker has answered (each connection may land on any of them).
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broadcaster exited:\n{log.read_text()[-3000:]}")
            try:
                async with httpx.AsyncClient() as http:
                    answer = await http.get(f"http://127.0.0.1:{self.port}/healthz")
                seen.add(answer.json()["pid"])
                if len(seen) >= config.processes:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        raise TimeoutError(f"broadcaster not ready; see {log}")

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def ports(self) -> list[int]:
        return [self.port]

    def process_groups(self) -> dict[str, Callable[[], list[int]]]:
        pid = self.process.pid if self.process is not None else 0
        return {"server": lambda: tree(pid) if pid else [], "redis": self.env.redis_pids}

    def describe(self) -> dict[str, Any]:
        return {
            "command": " ".join(Path(a).name if a.startswith("/") else a for a in self.argv),
            "redis": "always (broadcaster's Redis backend, one channel per session)",
        }


def spawn(argv: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, env=environment, cwd=ROOT, stdout=out, stderr=out)


TARGET = Broadcaster
