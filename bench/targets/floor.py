"""The floor target: ``bench/targets/floor_server.py`` (a bare asyncio fan-out, no database),
with Redis between its processes when there are several."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from server.embedded import free_port

from ..machine import tree
from . import Target, TargetConfig, spawn, stop_process, wait_ready

ROOT = Path(__file__).resolve().parents[2]


class Floor(Target):
    name = "floor"
    description = "bare asyncio transport.write loop: the machine's limit for this fan-out"
    capabilities = frozenset({"since", "processes", "bound", "seq", "counters"})

    def __init__(self, env: Any, workdir: Path) -> None:
        super().__init__(env, workdir)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.args: list[str] = []
        self.stats_dir = workdir / "floor-stats"
        self.log_path = workdir / "floor.log"

    async def start(self, config: TargetConfig, label: str) -> None:
        self.config = config
        self.port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stats_dir = self.workdir / f"floor-stats-{label}"
        self.stats_dir.mkdir(parents=True, exist_ok=True)
        limit = config.settings.get("WS_SEND_BUFFER_LIMIT", "262144")
        ping = config.ping_interval if config.ping_interval is not None else 20.0
        self.args = [
            "--port",
            str(self.port),
            "--workers",
            str(config.processes),
            "--limit",
            limit,
            "--ping-interval",
            str(ping),
            "--stats-dir",
            str(self.stats_dir),
        ]
        if config.processes > 1:
            self.args += ["--redis", await self.env.redis_url()]
        self.log_path = self.workdir / f"floor-{label}.log"
        argv = [sys.executable, "-m", "bench.targets.floor_server", *self.args]
        self.process = spawn(argv, self.log_path, cwd=ROOT)

        def started(answer: httpx.Response) -> bool:
            # every worker up: each writes its stats file once started
            workers_up = len(list(self.stats_dir.glob("*.json"))) >= config.processes
            return answer.status_code == 200 and workers_up

        await wait_ready("floor", self.process, self.log_path, self.port, started)

    async def stop(self) -> None:
        await stop_process(self.process)
        self.process = None

    def ports(self) -> list[int]:
        return [self.port]

    async def head(self, slug: str) -> int | None:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{self.port}/v1/sessions/{slug}")
            return int(response.json()["head"])

    def process_groups(self) -> dict[str, Callable[[], list[int]]]:
        pid = self.process.pid if self.process is not None else 0
        groups: dict[str, Callable[[], list[int]]] = {"server": lambda: tree(pid) if pid else []}
        if self.config.processes > 1:
            groups["redis"] = self.env.redis_pids
        return groups

    async def counters(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for path in self.stats_dir.glob("*.json"):
            try:
                values = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for name, value in values.items():
                total[name] = total.get(name, 0.0) + float(value)
        return total

    def describe(self) -> dict[str, Any]:
        return {
            "command": "python -m bench.targets.floor_server "
            + " ".join(a for a in self.args if not a.startswith("/"))
        }


TARGET = Floor
