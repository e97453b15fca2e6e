"""``pip install backchannel`` then ``backchannel serve``: the wheel holds every module and data
file (migrations, rules, the demo board, the browser screens), and, installed into a fresh
virtual environment, serves the demo from a folder that is not the checkout."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from server.demo import board as demo_board
from server.embedded import free_port

from .topology import SETTING_NAMES

ROOT = Path(__file__).resolve().parent.parent
# What the wheel is built from: what the Dockerfile copies (see .dockerignore).
SOURCES = ("pyproject.toml", "README.md", "server", "client")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def undeclared_imports() -> list[str]:
    """Third-party modules that server/ or client/ import but no ``[project]`` dependency
    provides: ``pip install backchannel`` would not bring them."""
    project = msgspec.toml.decode((ROOT / "pyproject.toml").read_bytes())["project"]
    declared = {
        canonical(re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0]) for d in project["dependencies"]
    }
    providers = importlib.metadata.packages_distributions()
    imported: set[str] = set()
    for package in ("server", "client"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    imported.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"server", "client", "__future__"}
    return sorted(
        module
        for module in third_party
        if not {canonical(d) for d in providers.get(module, [module])} & declared
    )


UNDECLARED = undeclared_imports()
# Runs, and is expected to fail, while a module the package imports is not a dependency: then
# `pip install backchannel` gives a `backchannel serve` that cannot start. Once the dependency is
# declared in [project], the condition is false and the test must pass.
needs_every_dependency = pytest.mark.xfail(
    bool(UNDECLARED),
    reason=f"imported by server/ or client/ but not in [project] dependencies: {UNDECLARED}",
    strict=True,
)


def run(*argv: str | Path, timeout: float = 300, **kwargs: object) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return str(done.stdout)


def expected_files() -> set[str]:
    """Every file of the two packages in the checkout, as the wheel names them."""
    found = set()
    for package in ("server", "client"):
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.add(path.relative_to(ROOT).as_posix())
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build --wheel`` on a copy of the sources (the checkout stays untouched)."""
    where = tmp_path_factory.mktemp("wheel")
    source = where / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    started = time.monotonic()
    run(sys.executable, "-m", "build", "--wheel", "--outdir", where / "dist", source)
    print(f"wheel built in {time.monotonic() - started:.1f}s")
    (built,) = (where / "dist").glob("backchannel-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path) -> Iterator[Path]:
    """A new virtual environment (no system site-packages) with the wheel installed by pip,
    which fetches the dependencies as for any user."""
    # Not under pytest's private (0700) folders: run as root, the embedded PostgreSQL runs as a
    # user of its own, who must reach its binaries inside the environment.
    top = Path(tempfile.mkdtemp(prefix="backchannel-venv-"))
    top.chmod(0o755)
    where = top / "venv"
    started = time.monotonic()
    # Without its own pip (ensurepip takes seconds, and its pip is older): this pip installs into
    # it with --python.
    run(sys.executable, "-m", "venv", "--without-pip", where)
    run(sys.executable, "-m", "pip", "--python", where / "bin" / "python", "install", "-q", wheel)
    print(f"installed in a new virtual environment in {time.monotonic() - started:.1f}s")
    yield where
    shutil.rmtree(top, ignore_errors=True)


def test_the_wheel_holds_every_module_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = expected_files()
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"
    # The groups the server reads at run time, named so that a failure says which one is gone.
    for group in (
        "server/storage/__init__.py",
        "server/rules/__init__.py",
        "server/migrations/0001_initial.sql",
        "server/rules/en.toml",
        "server/demo/board.json",
        "server/py.typed",
        "client/web/board.html",
        "client/web/js/board.js",
        "client/web/css/board.css",
        "client/web/embed.js",
    ):
        assert group in names, group
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "backchannel = server.cli:main" in scripts


@needs_every_dependency
def test_the_installed_packages_are_the_wheels(venv: Path, tmp_path: Path) -> None:
    python = venv / "bin" / "python"
    out = run(
        python,
        "-c",
        "import sys, server, client, server.storage, server.rules; "
        "print(sys.prefix); print(server.__file__); print(client.__file__)",
        cwd=tmp_path,
    )
    prefix, server_file, client_file = out.split()
    assert Path(prefix) == venv
    for module in (server_file, client_file):
        assert Path(module).is_relative_to(venv / "lib"), module


@pytest.fixture
def served(venv: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``backchannel serve --demo`` from the virtual environment, in an empty folder, with an
    embedded PostgreSQL in DATA_DIR."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env.update(
        {
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}",
            "VIRTUAL_ENV": str(venv),
            "DATA_DIR": str(tmp_path / "data"),
            "HOST": "127.0.0.1",
            "PORT": str(port),
        }
    )
    env.pop("PYTHONPATH", None)
    if "METRICS_ADDRESS" in SETTING_NAMES:
        env["METRICS_ADDRESS"] = f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [venv / "bin" / "backchannel", "serve", "--demo"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", process, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@needs_every_dependency
def test_the_installed_command_serves_the_demo_and_stops_on_sigterm(
    served: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    url, process, log_path = served
    slug = demo_board()["session"]["slug"]
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=10) as http:
        while True:
            assert process.poll() is None, f"serve exited:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() - started < 120, f"not ready:\n{log_path.read_text()[-3000:]}"
            try:
                if http.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        print(f"ready in {time.monotonic() - started:.1f}s")

        page = http.get("/board.html", params={"session": slug})
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        for asset in ("/js/board.js", "/css/board.css", "/embed.js"):
            assert http.get(asset).status_code == 200, asset
        comments = http.get(f"/v1/sessions/{slug}/comments")
        assert comments.status_code == 200, comments.text
        data = comments.json()
        assert data["threads"] and data["head"] == len(demo_board()["comments"])

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0, log_path.read_text()[-3000:]
    # The embedded PostgreSQL went with it.
    assert not (log_path.parent / "data" / "pgdata" / "postmaster.pid").exists()
