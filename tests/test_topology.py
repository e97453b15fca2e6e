"""The deployment: docker-compose.yml, the Dockerfile and deploy/haproxy.cfg agree with the app,
and the same topology, built from real processes (tests/topology.py), carries a post made through
the load balancer on one replica to a watcher connected through it to the other."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import msgspec
import pytest
import yaml
from starlette.routing import Route

from client import Api, Feed
from server import endpoints
from server.app import routes
from server.cli import parser
from server.config import Settings, load_settings
from server.demo import board as demo_board
from server.embedded import EmbeddedPostgres

from .conftest import AUDIENCE, ISSUER, make_token, new_board
from .servers import JWT_SECRETS
from .topology import (
    COMPOSE_FILE,
    DOCKERFILE,
    HAPROXY_CFG,
    SETTING_NAMES,
    Dockerfile,
    LoadBalancer,
    Topology,
    bind_variable,
    duration,
    haproxy_binary,
    replica_variables,
)

needs_haproxy = pytest.mark.skipif(
    haproxy_binary() is None,
    reason="haproxy is not installed (apt-get install haproxy; .ci/run installs it)",
)


# --- The files agree with the app ------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=value list form
        return dict(item.split("=", 1) for item in env)
    return dict(env)


def replicas(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from the Dockerfile."""
    return {name: s for name, s in services.items() if "build" in s}


def readiness_path() -> str:
    found = [r.path for r in routes() if isinstance(r, Route) and r.endpoint is endpoints.ready]
    assert len(found) == 1, found
    return found[0]


def url_path(command: list[str] | str) -> str:
    """The path of the http://127.0.0.1:... URL a healthcheck command fetches."""
    text = command if isinstance(command, str) else " ".join(command)
    found = re.findall(r"https?://[^/\s'\"]+(/[^\s'\"?]*)", text)
    assert len(found) == 1, f"expected one URL in the healthcheck: {text}"
    return str(found[0])


def test_the_replicas_environment_is_settings_that_parse() -> None:
    services = compose()["services"]
    image = Dockerfile.read().env
    built = replicas(services)
    assert set(built) == set(replica_variables()), "one replica per server line of haproxy.cfg"
    parsed: dict[str, Settings] = {}
    for name, service in built.items():
        env = environment(service)
        for key, value in env.items():
            assert key in SETTING_NAMES, f"{name}: {key} is not a setting of server.config"
            assert isinstance(value, str), f"{name}: quote {key}'s value ({value!r})"
        # As the container sees them: the image's ENV, then compose's environment.
        settings = {k: v for k, v in image.items() if k in SETTING_NAMES}
        parsed[name] = load_settings({**settings, **env}, None)
        assert parsed[name].server_name == name, "X-Backchannel-Server names the service"
        assert parsed[name].demo and parsed[name].host == "0.0.0.0"
        assert parsed[name].jwt_secrets, "replicas must share secrets, not each its own"
        grace = getattr(parsed[name], "shutdown_grace", 0)
        assert duration(service.get("stop_grace_period", "10s")) > grace, "SIGKILL after drain"
    one, *others = parsed.values()
    for other in others:
        for setting in ("database_url", "redis_url", "jwt_secrets", "jwt_issuer", "jwt_audience"):
            assert getattr(other, setting) == getattr(one, setting), setting

    database = urlsplit(one.database_url)
    postgres = environment(services["postgres"])
    assert (database.hostname, database.port or 5432) == ("postgres", 5432)
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path.lstrip("/") == postgres["POSTGRES_DB"]
    redis = urlsplit(one.redis_url)
    assert (redis.scheme, redis.hostname, redis.port or 6379) == ("redis", "redis", 6379)
    assert services["postgres"]["image"].startswith("postgres:17")
    assert services["redis"]["image"].startswith("redis:7")


def test_the_healthchecks_exist_and_the_replicas_check_readiness() -> None:
    services = compose()["services"]
    for name in ("postgres", "redis", *replicas(services)):
        check = services[name].get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name}: healthcheck"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    ready = readiness_path()
    assert ready == "/readyz"
    for name, service in replicas(services).items():
        assert url_path(service["healthcheck"]["test"]) == ready, name
        depends = service["depends_on"]
        for needed in ("postgres", "redis"):
            assert depends[needed]["condition"] == "service_healthy", f"{name} on {needed}"
    assert url_path(Dockerfile.read().healthcheck) == ready
    cfg = HAPROXY_CFG.read_text(encoding="utf-8")
    assert re.search(rf"^\s*http-check send meth GET uri {ready}\b", cfg, re.M)


def test_the_ports_line_up() -> None:
    services = compose()["services"]
    image = Dockerfile.read().env
    lb = services["lb"]
    published = lb["ports"]
    assert len(published) == 1 and isinstance(published[0], str), published
    host_port, _, container_port = published[0].rpartition(":")
    assert host_port.rpartition(":")[2] == "8000", "the demo's address is localhost:8000"
    lb_env = environment(lb)
    assert lb_env[bind_variable()].rpartition(":")[2] == container_port
    assert any(
        v.split(":")[1].startswith("/usr/local/etc/haproxy/haproxy.cfg")
        and Path(v.split(":")[0]).resolve() == HAPROXY_CFG
        for v in lb["volumes"]
    ), "the lb runs deploy/haproxy.cfg"
    assert re.fullmatch(r"haproxy:2(\.\d+)*", lb["image"])
    for name, variable in replica_variables().items():
        settings = {k: v for k, v in image.items() if k in SETTING_NAMES}
        port = load_settings({**settings, **environment(services[name])}, None).port
        assert lb_env[variable] == f"{name}:{port}", f"haproxy's {variable} names {name}:{port}"
        assert "ports" not in services[name], f"{name} is reached through the lb only"
    assert [s for s, v in services.items() if v.get("ports")] == ["lb"]


def test_the_load_balancer_is_round_robin_without_stickiness() -> None:
    cfg = HAPROXY_CFG.read_text(encoding="utf-8")
    lines = [line.split("#")[0].strip() for line in cfg.splitlines()]
    assert "balance roundrobin" in lines
    assert not [
        line for line in lines if re.match(r"(cookie|stick|hash-type|balance source)", line)
    ]
    tunnel = [line for line in lines if line.startswith("timeout tunnel")]
    assert tunnel and tunnel[0].split()[-1] in ("1h", "3600s"), tunnel


def test_the_image_runs_backchannel_serve_as_a_non_root_user() -> None:
    dockerfile = Dockerfile.read()
    assert dockerfile.stages >= 2, "the wheel is built in a stage of its own"
    assert dockerfile.cmd == ["backchannel", "serve"]
    scripts = msgspec.toml.decode(Path("pyproject.toml").read_bytes())["project"]["scripts"]
    assert scripts[dockerfile.cmd[0]] == "server.cli:main"
    parser().parse_args(dockerfile.cmd[1:])
    settings = {k: v for k, v in dockerfile.env.items() if k in SETTING_NAMES}
    assert load_settings(settings, None).host == "0.0.0.0"
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert users and users[-1] not in ("root", "0"), "the image runs as an unprivileged user"


@needs_haproxy
def test_haproxy_accepts_the_config_with_composes_variables(tmp_path: Path) -> None:
    binary = haproxy_binary()
    assert binary is not None
    variables = {k: str(v) for k, v in environment(compose()["services"]["lb"]).items()}
    done = LoadBalancer(binary, tmp_path, variables).check()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ALERT" not in done.stdout + done.stderr


# --- The topology from real processes ---------------------------------------------------------


@pytest.fixture(scope="module")
async def fresh_database(postgres: EmbeddedPostgres | None, database_url: str) -> str:
    """A new, empty database (the replicas migrate it and load the demo, both at once), or the
    suite's database when it is an external one."""
    if postgres is None:
        return database_url
    name = f"topology_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres.admin_url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return postgres.admin_url(name)


@pytest.fixture(scope="module")
async def topology(fresh_database: str, workdir: Path) -> AsyncIterator[Topology]:
    if haproxy_binary() is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy; .ci/run installs it)")
    settings = {
        "JWT_SECRETS": JWT_SECRETS,
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "DEMO": "true",
        "LOG_LEVEL": "info",
    }
    async with Topology(workdir / "topology", fresh_database, settings=settings) as topology:
        yield topology


async def test_a_post_on_one_replica_reaches_a_watcher_on_the_other(topology: Topology) -> None:
    names = {r.name for r in topology.replicas}
    assert names == {"backchannel-1", "backchannel-2"}
    board = await new_board(topology.url)
    async with AsyncExitStack() as stack:
        # Watchers through the load balancer, until there is one on each replica.
        watchers: dict[str, Feed] = {}
        for _ in range(10):
            feed = await stack.enter_async_context(Feed(topology.url, board.session, since=0))
            assert feed.hello["server"] in names
            watchers.setdefault(feed.hello["server"], feed)
            if set(watchers) == names:
                break
        assert set(watchers) == names, "round robin never put a watcher on each replica"

        # Posts through the load balancer, each on a new connection, until each replica took one.
        token = make_token("attendee", board.event)
        posted: list[tuple[str, str]] = []  # (body, the replica that took it)
        for attempt in range(10):
            async with Api(topology.url, token) as poster:
                body = f"Posted through the load balancer, attempt {attempt}"
                response = await poster.http.post(
                    f"/v1/sessions/{board.session}/comments", json={"body": body}
                )
                assert response.status_code == 201, response.text
                posted.append((body, response.headers["x-backchannel-server"]))
            if {server for _, server in posted} == names:
                break
        assert {server for _, server in posted} == names, posted

        # Every watcher sees every post, those taken by the other replica included.
        for watcher_on, feed in watchers.items():
            events = await feed.events(len(posted))
            assert [e["comment"]["body"] for e in events] == [body for body, _ in posted]
            assert any(server != watcher_on for _, server in posted)


async def test_every_response_through_the_balancer_names_its_replica(topology: Topology) -> None:
    seen = set()
    async with Api(topology.url) as api:
        for path in ("/readyz", "/healthz", "/board.html", "/openapi.json", "/readyz"):
            response = await api.http.get(path)
            assert response.status_code == 200, path
            seen.add(response.headers["x-backchannel-server"])
    assert seen == {r.name for r in topology.replicas}  # round robin, no stickiness


async def test_the_demo_was_loaded_once_by_replicas_starting_together(topology: Topology) -> None:
    data = demo_board()
    slug = data["session"]["slug"]
    async with Api(topology.url) as api:
        for _ in topology.replicas:  # asked of each replica in turn
            session = await api.session(slug)
            assert session["head"] == len(data["comments"]), "each comment created exactly once"
        page = await api.http.get(f"/board.html?session={slug}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
