"""The deployed topology (docker-compose.yml) built from real processes, with no container engine:
Redis, the Backchannel replicas and HAProxy, on free ports of 127.0.0.1, beside a PostgreSQL the
caller gives.

What runs is read from the deployment files themselves, so that the tests exercise them:

- each replica runs the ``CMD`` of the ``Dockerfile``, and is ready when the Dockerfile's
  ``HEALTHCHECK`` command succeeds (both in exec form, run with this interpreter's environment
  first on ``PATH``, so ``backchannel`` and ``python`` are the project's);
- HAProxy runs ``deploy/haproxy.cfg`` unchanged; its ``${...}`` variables (``LB_ADDR`` and one
  per ``server`` line) are set to the real ports here, as docker-compose.yml sets them for the
  containers. A second, test-only config file adds an admin socket, so that tests can read what
  HAProxy thinks of each replica (:meth:`LoadBalancer.states`).

Fault tests and benchmarks reuse :class:`Topology`: stop, kill, freeze or restart a replica
(:class:`Replica`), Redis (``topology.redis``) or the load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import msgspec

from server.config import Settings
from server.embedded import free_port

from .servers import RedisServer, wait_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
COMPOSE_FILE = ROOT / "docker-compose.yml"

# ``server <name> "${VARIABLE}"`` lines of deploy/haproxy.cfg.
# Backchannel's settings as environment variables: none leaks from the test's own environment.
SETTING_NAMES = frozenset(f.name.upper() for f in msgspec.structs.fields(Settings))

_SERVER_LINE = re.compile(r'^\s*server\s+(\S+)\s+"?\$\{([A-Z0-9_]+)\}"?', re.M)
_HEALTHCHECK = re.compile(r"((?:--\S+\s+)*)(.*)", re.S)  # --option=value ... CMD [...]
_BIND_LINE = re.compile(r'^\s*bind\s+"?\$\{([A-Z0-9_]+)\}"?', re.M)


def haproxy_binary() -> str | None:
    """Debian's ``haproxy`` (``apt-get install haproxy``; ``.ci/run`` installs it), or None."""
    path = os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/sbin:/usr/local/sbin"
    return shutil.which("haproxy", path=path)


# --- The Dockerfile --------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """``(KEYWORD, arguments)`` for each instruction, continuation lines joined, comments and
    blank lines dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    if pending:
        keyword, _, rest = pending.strip().partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def command_argv(arguments: str) -> list[str]:
    """A ``CMD``'s argv: the exec form (a JSON array) as is, the shell form through ``sh -c``."""
    if arguments.startswith("["):
        argv = json.loads(arguments)
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"not an exec-form command: {arguments}")
        return argv
    return ["/bin/sh", "-c", arguments]


@dataclass(frozen=True)
class Dockerfile:
    """What the final stage of the Dockerfile runs: its ``CMD``, ``HEALTHCHECK`` and ``ENV``."""

    cmd: list[str]
    healthcheck: list[str]
    healthcheck_options: dict[str, str]
    env: dict[str, str]
    stages: int

    @classmethod
    def read(cls, path: Path = DOCKERFILE) -> Dockerfile:
        cmd: list[str] = []
        healthcheck: list[str] = []
        options: dict[str, str] = {}
        env: dict[str, str] = {}
        stages = 0
        for keyword, arguments in instructions(path.read_text(encoding="utf-8")):
            if keyword == "FROM":  # a new stage: only the last one's settings count
                stages += 1
                cmd, healthcheck, options, env = [], [], {}, {}
            elif keyword == "CMD":
                cmd = command_argv(arguments)
            elif keyword == "HEALTHCHECK":
                split = _HEALTHCHECK.fullmatch(arguments)
                assert split is not None
                flags, rest = split.groups()
                options = dict(flag[2:].partition("=")[::2] for flag in flags.split())
                if rest.upper() == "NONE":
                    healthcheck = []
                elif rest.upper().startswith("CMD "):
                    healthcheck = command_argv(rest[4:].strip())
                else:
                    raise ValueError(f"HEALTHCHECK without CMD in {path}: {arguments}")
            elif keyword == "ENV":
                env.update(_env_pairs(arguments))
        if not cmd:
            raise ValueError(f"{path} has no CMD in its last stage")
        return cls(cmd, healthcheck, options, env, stages)

    def healthcheck_timeout(self) -> float:
        return duration(self.healthcheck_options.get("timeout", "30s"))


def _env_pairs(arguments: str) -> dict[str, str]:
    words = shlex.split(arguments)
    if words and "=" not in words[0]:  # the legacy form: ENV KEY value with spaces
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def duration(text: str) -> float:
    """A Docker/Compose duration (``1m30s``, ``500ms``, ``10s``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


# --- Processes -------------------------------------------------------------------------------


def project_path() -> str:
    """``PATH`` with this interpreter's scripts first: the Dockerfile's ``backchannel`` and
    ``python`` are then the project's."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])


def resolve(argv: list[str], path: str) -> list[str]:
    found = shutil.which(argv[0], path=path)
    if found is None:
        raise RuntimeError(f"{argv[0]!r} (from the Dockerfile) is not on PATH: pip install -e .")
    return [found, *argv[1:]]


@dataclass
class Replica:
    """One Backchannel server process, run as the Dockerfile runs it."""

    name: str
    dockerfile: Dockerfile
    settings: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_addr(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def environment(self) -> dict[str, str]:
        path = project_path()
        # The image's ENV (but PATH, which names the image's own folders), then the deployment's
        # settings, then what only this replica has.
        image = {k: v for k, v in self.dockerfile.env.items() if "$" not in v and k != "PATH"}
        inherited = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
        return {
            **inherited,
            **image,
            **self.settings,
            "PATH": path,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "SERVER_NAME": self.name,
            "DATA_DIR": str(self.workdir / f"{self.name}-data"),
            # Each container has its own loopback; processes on one host need a port each.
            **(
                {"METRICS_ADDRESS": self.metrics_addr} if "METRICS_ADDRESS" in SETTING_NAMES else {}
            ),
        }

    def start(self) -> Replica:
        """Start the process (see :meth:`wait_healthy`)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                resolve(self.dockerfile.cmd, env["PATH"]),
                env=env,
                cwd=self.workdir,  # like the image's WORKDIR: no .env of the checkout is read
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    async def healthy(self) -> bool:
        """Whether the Dockerfile's HEALTHCHECK command succeeds now."""
        if not self.dockerfile.healthcheck:
            raise RuntimeError("the Dockerfile has no HEALTHCHECK")
        env = self.environment()
        check = await asyncio.create_subprocess_exec(
            *resolve(self.dockerfile.healthcheck, env["PATH"]),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            return await asyncio.wait_for(check.wait(), self.dockerfile.healthcheck_timeout()) == 0
        except TimeoutError:
            check.kill()
            await check.wait()
            return False

    async def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"replica {self.name} exited with {self.process.returncode}; "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            if await self.healthy():
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"replica {self.name} not healthy after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (as ``docker stop``), then SIGKILL after ``timeout``."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the process hangs with its sockets open (``docker pause``)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class LoadBalancer:
    """HAProxy running deploy/haproxy.cfg, its variables set to the replicas' real addresses."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        addresses: Mapping[str, str],
        config: Path = HAPROXY_CFG,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config = config
        self.port = free_port()
        self.variables = {bind_variable(config): f"127.0.0.1:{self.port}", **addresses}
        self.admin_socket = workdir / "haproxy.sock"
        if len(str(self.admin_socket)) > 100:  # a UNIX socket's path has room for 107 bytes
            self.admin_socket = Path(tempfile.mkdtemp(prefix="backchannel-lb-")) / "haproxy.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "haproxy.log"

    def command(self) -> list[str]:
        # A second file adds what only tests need: an admin socket to read the servers' states.
        extra = self.workdir / "haproxy-test.cfg"
        extra.write_text(f'global\n    stats socket "{self.admin_socket}" mode 600 level admin\n')
        return [self.binary, "-db", "-f", str(self.config), "-f", str(extra)]

    def check(self) -> subprocess.CompletedProcess[str]:
        """``haproxy -c``: whether the configuration is valid with these variables."""
        return subprocess.run(
            [*self.command(), "-c"],
            env={**os.environ, **self.variables},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def start(self) -> LoadBalancer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                env={**os.environ, **self.variables},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_port(self.port, timeout=15)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"haproxy did not start:\n{self.log_tail()}") from None
        return self

    def states(self) -> dict[str, str]:
        """Each replica's status as HAProxy sees it (``UP``, ``DOWN``, ``MAINT``, ...)."""
        import socket

        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin_socket))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        rows = csv.DictReader(io.StringIO(b"".join(chunks).decode().lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["svname"] not in ("FRONTEND", "BACKEND") and row.get("pxname") == "backchannel"
        }

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """SIGTERM: HAProxy's hard stop (open tunnels are closed at once)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def replica_variables(config: Path = HAPROXY_CFG) -> dict[str, str]:
    """``{replica name: the variable holding its address}`` from the cfg's ``server`` lines."""
    return dict(_SERVER_LINE.findall(config.read_text(encoding="utf-8")))


def bind_variable(config: Path = HAPROXY_CFG) -> str:
    found = _BIND_LINE.findall(config.read_text(encoding="utf-8"))
    if len(found) != 1:
        raise ValueError(f'{config}: expected one bind "${{VARIABLE}}" line, found {found}')
    return str(found[0])


class Topology:
    """Redis, one replica per ``server`` line of deploy/haproxy.cfg, and HAProxy in front.

    ``settings`` are the replicas' environment (as docker-compose.yml's ``environment``; the
    database is ``database_url``). Without ``redis_url`` the topology starts its own Redis, which
    tests may kill (``topology.redis``).

        async with Topology(tmp, database_url, settings={...}) as topology:
            httpx.get(topology.url + "/readyz")
    """

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        *,
        settings: Mapping[str, str] | None = None,
        redis_url: str | None = None,
        dockerfile: Path = DOCKERFILE,
        config: Path = HAPROXY_CFG,
    ) -> None:
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed: apt-get install haproxy")
        self.workdir = workdir
        self.dockerfile = Dockerfile.read(dockerfile)
        self.redis: RedisServer | None = None if redis_url else RedisServer(workdir / "redis")
        self.redis_url = redis_url or (self.redis.url if self.redis else "")
        environment = {
            **(settings or {}),
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis_url,
        }
        variables = replica_variables(config)
        self.replicas = [Replica(name, self.dockerfile, environment, workdir) for name in variables]
        addresses = {variables[r.name]: r.addr for r in self.replicas}
        self.lb = LoadBalancer(binary, workdir, addresses, config)

    @property
    def url(self) -> str:
        """The load balancer: the one address clients use."""
        return self.lb.url

    def replica(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name == name)

    async def start(self, timeout: float = 90) -> Topology:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if self.redis is not None:
                self.redis.start()
            for replica in self.replicas:  # all at once, as `docker compose up` starts them
                replica.start()
            await asyncio.gather(*(r.wait_healthy(timeout) for r in self.replicas))
            self.lb.start()
            await self.wait_balanced(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    async def wait_balanced(self, timeout: float = 30) -> None:
        """Until HAProxy has every replica UP and has sent a request to each."""
        names = {r.name for r in self.replicas}
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as http:
            while time.monotonic() < deadline:
                states = self.lb.states()
                if all(states.get(n) == "UP" for n in names):
                    with contextlib.suppress(httpx.TransportError):
                        response = await http.get("/readyz")
                        if response.status_code == 200:
                            seen.add(response.headers["x-backchannel-server"])
                    if seen == names:
                        return
                await asyncio.sleep(0.1)
        raise TimeoutError(
            f"haproxy did not balance over {sorted(names)} (states {self.lb.states()}, "
            f"answered {sorted(seen)}):\n{self.lb.log_tail()}"
        )

    def stop(self) -> None:
        self.lb.stop()
        for replica in self.replicas:  # all at once, then wait for each
            if replica.process is not None and replica.process.poll() is None:
                replica.process.terminate()
        for replica in self.replicas:
            replica.stop()
        if self.redis is not None:
            self.redis.stop()

    async def __aenter__(self) -> Topology:
        return await self.start()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
