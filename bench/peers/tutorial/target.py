"""The ``tutorial`` peer: bench/peers/tutorial/app.py under uvicorn (its default WebSocket
implementation), ``--workers N`` joined by the run's Redis."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from server.embedded import free_port

from ...machine import tree
from ...targets import Target, TargetConfig, spawn, stop_process, wait_ready

ROOT = Path(__file__).resolve().parents[3]


class Tutorial(Target):
    name = "tutorial"
    description = "Starlette tutorial: a set of sockets, await ws.send_json(...) in a loop"
    capabilities = frozenset({"processes"})
    path_live = "/live/{slug}"
    since_query = ""
    path_post = "/post/{slug}"
    ready_message = ""
    hello = False

    def __init__(self, env: Any, workdir: Path) -> None:
        super().__init__(env, workdir)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.argv: list[str] = []

    async def start(self, config: TargetConfig, label: str) -> None:
        self.config = config
        self.port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        if config.processes > 1:
            environment["TUTORIAL_REDIS_URL"] = await self.env.redis_url()
        ping = config.ping_interval if config.ping_interval is not None else 20.0
        self.argv = [sys.executable, "-m", "uvicorn", "bench.peers.tutorial.app:app",
                     "--host", "127.0.0.1", "--port", str(self.port),
                     "--workers", str(config.processes), "--log-level", "warning",
                     "--no-access-log", "--ws-ping-interval", str(ping),
                     "--backlog", "4096"]  # fmt: skip
        log = self.workdir / f"tutorial-{label}.log"
        self.process = spawn(self.argv, log, cwd=ROOT, environment=environment)
        pid = self.process.pid

        def started(answer: httpx.Response) -> bool:
            # every worker forked (the tree holds the parent and one process per worker)
            workers_up = config.processes == 1 or len(tree(pid)) > config.processes
            return answer.status_code == 200 and workers_up

        await wait_ready("tutorial", self.process, log, self.port, started)
        if config.processes > 1:
            await asyncio.sleep(0.5)  # give each worker a moment to start its Redis relay

    async def stop(self) -> None:
        await stop_process(self.process)
        self.process = None

    def ports(self) -> list[int]:
        return [self.port]

    def process_groups(self) -> dict[str, Callable[[], list[int]]]:
        pid = self.process.pid if self.process is not None else 0
        groups: dict[str, Callable[[], list[int]]] = {"server": lambda: tree(pid) if pid else []}
        if self.config.processes > 1:
            groups["redis"] = self.env.redis_pids
        return groups

    def describe(self) -> dict[str, Any]:
        return {"command": " ".join(Path(a).name if a.startswith("/") else a for a in self.argv)}


TARGET = Tutorial
