"""Targets: the servers a run measures. ``backchannel`` and ``floor`` are built in; a peer is a
module ``bench/peers/<name>/target.py`` defining ``TARGET``, a :class:`Target` subclass (see
bench/README.md, "Adding a peer").

A target starts its processes on free ports of 127.0.0.1, says where its feed and its post route
are, and which processes are its own (their CPU and memory are measured). The generator speaks
to every target the same way:

- watchers open ``ws://127.0.0.1:<port><path_live>`` (``{slug}`` filled in), adding
  ``since_query`` (``{since}`` filled in) when resuming; they read text frames and find in them
  each post's marker (``bench/marks.py``), and ``"seq":N`` if the target numbers events;
- posters send ``POST <path_post>`` with ``{"body": "..."}`` (``Authorization: Bearer <token>``
  when ``needs_token``) and count any 2xx as accepted.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

if TYPE_CHECKING:
    from ..environment import Environment


@dataclass
class TargetConfig:
    """What a scenario asks of a target."""

    processes: int = 1
    """Server processes (joined as the target joins them: Backchannel by Redis)."""
    authors: int = 100
    """Distinct authors (token ``sub``s) the generator posts as."""
    posts_per_minute: int = 0
    """Per author and session, what the scenario needs (with a margin); 0: the default."""
    ping_interval: float | None = None
    settings: dict[str, str] = field(default_factory=dict)
    """Extra environment for the server (Backchannel's settings by name)."""


class Target:
    """The interface every target implements. Override what differs."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    """What the target can do beyond broadcasting: ``since`` (resume a feed), ``history``
    (pages from a database), ``processes`` (more than one process), ``bound`` (sheds a slow
    watcher), ``seq`` (numbers events), ``counters`` (server-side frames and deliveries)."""
    host: ClassVar[str] = "127.0.0.1"
    path_live: ClassVar[str] = "/v1/sessions/{slug}/live"
    since_query: ClassVar[str] = "?since={since}"
    path_post: ClassVar[str] = "/v1/sessions/{slug}/comments"
    ready_message: ClassVar[str] = '"type":"watching"'
    """A substring of the message that ends a replay ('' if the target sends none)."""
    needs_token: ClassVar[bool] = False
    hello: ClassVar[bool] = True
    """The server's first message names its process (``"server":...``); connecting waits for it."""
    protocol: ClassVar[str] = "websocket"
    """How watchers speak to it: ``websocket``, or ``engineio`` (Socket.IO's clients)."""

    def __init__(self, env: Environment, workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.config = TargetConfig()

    async def start(self, config: TargetConfig, label: str) -> None:
        """Start the server processes; return once they answer."""
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def ports(self) -> list[int]:
        """Where watchers and posters go (one per independent process; processes sharing a
        port count once). Watchers are spread over these in turn."""
        raise NotImplementedError

    async def create_sessions(self, count: int, prefix: str) -> list[str]:
        """``count`` new sessions (boards) to watch and post to; their slugs."""
        return [f"{prefix}-{i}" for i in range(count)]

    async def head(self, slug: str) -> int | None:
        """The session's newest seq, if the target numbers events."""
        return None

    def tokens(self, count: int) -> list[str]:
        """Tokens for ``count`` distinct authors (empty if the target needs none)."""
        return []

    def process_groups(self) -> dict[str, Callable[[], list[int]]]:
        """Named groups of the target's processes, e.g. ``{"server": ..., "postgres": ...}``;
        the group named ``server`` is the one figures per delivery use."""
        raise NotImplementedError

    async def counters(self) -> dict[str, float]:
        """Server-side counters (``frames``, ``deliveries``, ``bytes``, ``shed``,
        ``catch_up_reads``, ...), read before and after a run; {} if it keeps none."""
        return {}

    def describe(self) -> dict[str, Any]:
        """What the report says about how the target ran (settings, versions)."""
        return {}

    async def sample(self, stop: Any) -> dict[str, Any]:
        """Optional: sample the target's internals until ``stop`` (an asyncio.Event) is set,
        and return what was seen (Backchannel: what PostgreSQL's sessions were waiting on)."""
        return {}

    async def load_history(self, comments: int) -> tuple[str, dict[str, Any]]:
        """A session holding ``comments`` comments with reply trees (``history`` only)."""
        raise NotImplementedError

    def history_paths(self, slug: str, info: dict[str, Any]) -> dict[str, list[str]]:
        """The GETs of the ``history`` scenario: name -> paths (``first``, ``deep``)."""
        raise NotImplementedError


def spawn(
    argv: list[str], log: Path, *, cwd: Path, environment: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a target's process, its output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, env=environment, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )


async def wait_ready(
    name: str,
    process: subprocess.Popen[bytes],
    log: Path,
    port: int,
    ready: Callable[[httpx.Response], bool],
    *,
    poll: float = 0.1,
    timeout: float = 60,
) -> None:
    """Ask ``/healthz`` on ``port`` until ``ready`` says so of an answer (each attempt on a new
    connection, so that several workers sharing the port are reached); an error naming the log
    if the process exits or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = await asyncio.to_thread(log.read_text)
            raise RuntimeError(f"{name} exited:\n{tail[-3000:]}")
        try:
            async with httpx.AsyncClient() as http:
                if ready(await http.get(f"http://127.0.0.1:{port}/healthz")):
                    return
        except httpx.TransportError:
            pass
        await asyncio.sleep(poll)
    raise TimeoutError(f"{name} not ready; see {log}")


async def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """Stop a target's process tree: SIGTERM (uvicorn's and our servers' graceful stop), then
    SIGKILL if it has not ended within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        await asyncio.to_thread(process.wait, timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


BUILTIN = {"backchannel": "bench.targets.backchannel", "floor": "bench.targets.floor"}
PEERS = Path(__file__).resolve().parent.parent / "peers"


def available() -> list[str]:
    names = list(BUILTIN)
    for module in pkgutil.iter_modules([str(PEERS)]):
        if module.ispkg and (PEERS / module.name / "target.py").exists():
            names.append(module.name)
    return names


def load(name: str) -> type[Target]:
    if name in BUILTIN:
        module = importlib.import_module(BUILTIN[name])
    elif (PEERS / name / "target.py").exists():
        module = importlib.import_module(f"bench.peers.{name}.target")
    else:
        raise SystemExit(f"bench: unknown target {name!r}; known: {', '.join(available())}")
    target: type[Target] = module.TARGET
    return target
