"""The ``socketio`` peer: bench/peers/socketio/app.py under uvicorn (its default WebSocket
implementation), ``--workers N``, its emits always through the run's Redis
(``AsyncRedisManager``, as a deployment that may grow past one process configures it). Its
clients speak Engine.IO over the WebSocket (``protocol = "engineio"``: the generator answers the
open packet and the pings, see ``bench/loadgen.py``)."""

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


class SocketIO(Target):
    name = "socketio"
    description = "python-socketio AsyncServer + AsyncRedisManager: a room per session"
    capabilities = frozenset({"processes"})
    path_live = "/socket.io/?EIO=4&transport=websocket&session={slug}"
    since_query = ""
    path_post = "/post/{slug}"
    ready_message = ""
    protocol = "engineio"

    def __init__(self, env: Any, workdir: Path) -> None:
        super().__init__(env, workdir)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.argv: list[str] = []
        self.ping = 25.0

    async def start(self, config: TargetConfig, label: str) -> None:
        self.config = config
        self.port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ping = config.ping_interval if config.ping_interval is not None else 25.0
        environment = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SOCKETIO_REDIS_URL": await self.env.redis_url(),
            "SOCKETIO_PING_INTERVAL": str(self.ping),
        }
        self.argv = [sys.executable, "-m", "uvicorn", "bench.peers.socketio.app:app",
                     "--host", "127.0.0.1", "--port", str(self.port),
                     "--workers", str(config.processes), "--log-level", "warning",
                     "--no-access-log", "--backlog", "4096"]  # fmt: skip
        log = self.workdir / f"socketio-{label}.log"
        self.process = await asyncio.to_thread(spawn, self.argv, environment, log)
        # Ready once every worker has answered (each connection may land on any of them).
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"socketio exited:\n{log.read_text()[-3000:]}")
            try:
                async with httpx.AsyncClient() as http:
                    answer = await http.get(f"http://127.0.0.1:{self.port}/healthz")
                seen.add(answer.json()["pid"])
                if len(seen) >= config.processes:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        raise TimeoutError(f"socketio not ready; see {log}")

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
            "redis": "always (AsyncRedisManager: every emit published for the other processes)",
            "engineio_ping_interval_s": self.ping,
        }


def spawn(argv: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, env=environment, cwd=ROOT, stdout=out, stderr=out)


TARGET = SocketIO
