"""The command line, as a newcomer runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import jwt

from server.demo import board
from server.embedded import free_port

from .servers import JWT_SECRETS, TEST_SECRETS


def backchannel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_token_prints_a_token_the_server_accepts() -> None:
    done = backchannel(
        "token",
        "--name",
        "Maya Lin",
        "--role",
        "moderator",
        "--event",
        "day-1",
        env={"JWT_SECRETS": JWT_SECRETS, "JWT_ISSUER": "iss", "JWT_AUDIENCE": "aud"},
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert jwt.get_unverified_header(token)["kid"] == "k2"  # the newest key signs
    claims = jwt.decode(
        token, TEST_SECRETS["k2"], algorithms=["HS256"], audience="aud", issuer="iss"
    )
    assert (claims["name"], claims["role"], claims["event"]) == ("Maya Lin", "moderator", "day-1")


def test_bad_settings_stop_start_up_naming_the_variable() -> None:
    done = backchannel("serve", env={"PORT": "eighty"})
    assert done.returncode == 2 and "PORT" in done.stderr
    done = backchannel("serve", "--workers", "2", env={"REDIS_URL": ""})
    assert done.returncode == 2 and "REDIS_URL" in done.stderr


async def test_serve_with_nothing_configured_starts_embedded_postgres_and_the_demo(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"DATA_DIR": str(tmp_path / "data"), "PORT": str(port)})
    slug = board()["session"]["slug"]
    for attempt in range(2):  # the second start finds its data kept
        with open(tmp_path / "serve.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "server", "serve", "--demo"], env=env, stdout=log, stderr=log
            )
        try:
            session = await wait_for_session(f"http://127.0.0.1:{port}/v1/sessions/{slug}", process)
            assert session["total"] == len(board()["comments"])
            assert session["head"] == len(board()["comments"]), f"start {attempt + 1}"
            async with httpx.AsyncClient() as http:  # the demo's sign-in form works
                signed = await http.post(
                    f"http://127.0.0.1:{port}/v1/dev/token", json={"sub": "demo", "name": "Maya"}
                )
            assert signed.status_code == 200 and signed.json()["token"].count(".") == 2
        finally:
            process.terminate()
            process.wait(30)


async def wait_for_session(url: str, process: subprocess.Popen[bytes]) -> dict[str, object]:
    async with httpx.AsyncClient() as http:
        for _ in range(1200):
            assert process.poll() is None, "serve exited"
            try:
                response = await http.get(url)
                if response.status_code == 200:
                    result: dict[str, object] = response.json()
                    return result
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(url)
