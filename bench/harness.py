"""The measuring machinery every scenario uses: start a target, connect watchers from generator
processes, post on a schedule, wait until every watcher has every accepted post, and read what it
cost (CPU and memory of each process group, the server's own counters)."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .environment import Environment
from .hist import Histogram, merged
from .loadgen import Worker, split, start_workers
from .machine import TreeMeter, self_cpu
from .targets import Target, TargetConfig


@dataclass
class Options:
    quick: bool = False
    smoke: bool = False
    watcher_procs: int = 0  # 0: by size and cores
    poster_procs: int = 0
    verbose: bool = True
    profile_dir: Path | None = None  # py-spy the server's processes during each measurement

    @property
    def profile(self) -> str:
        return "smoke" if self.smoke else "quick" if self.quick else "full"


def log(options: Options, text: str) -> None:
    if options.verbose:
        print(text, flush=True)


@dataclass
class Measurement:
    """One row of a scenario's table."""

    label: str
    params: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "params": self.params, **self.figures}


_BENCHES = itertools.count(1)


class Bench:
    """One target under one scenario: ``async with Bench(...) as bench: await bench.fanout()``."""

    def __init__(
        self,
        env: Environment,
        target_class: type[Target],
        scenario: str,
        options: Options,
        config: TargetConfig,
    ) -> None:
        self.env = env
        self.options = options
        self.scenario = scenario
        self.config = config
        self.target = target_class(env, env.workdir / target_class.name)
        self.serial = next(_BENCHES)
        self.label = f"{scenario}-{int(time.time())}-{self.serial}"
        self.meter: TreeMeter | None = None
        self.workers: list[Worker] = []

    async def __aenter__(self) -> Bench:
        await self.target.start(self.config, self.label)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()
        await self.target.stop()

    # --- pieces ----------------------------------------------------------------------------------

    def slug_prefix(self, label: str) -> str:
        self._slugs = getattr(self, "_slugs", 0) + 1
        tail = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:24]
        return f"{self.env.run}-{self.scenario[:12]}-{self.serial}-{self._slugs}-{tail}".strip("-")

    def worker_config(self) -> dict[str, Any]:
        t = self.target
        return {
            "run": self.env.run,
            "path_live": t.path_live,
            "since_query": t.since_query,
            "ready": t.ready_message,
            "protocol": t.protocol,
            "hello": t.hello,
        }

    def watcher_processes(self, connections: int) -> int:
        if self.options.watcher_procs:
            return self.options.watcher_procs
        cores = os.cpu_count() or 1
        # A generator process reads a few thousand watchers comfortably; never more processes
        # than half the machine (the server needs the rest).
        return max(1, min(max(1, cores // 2), math.ceil(connections / 2500)))

    def poster_processes(self, rate: float) -> int:
        if self.options.poster_procs:
            return self.options.poster_procs
        return 1 if rate <= 500 else 2

    def new_meter(self, generator_pids: list[int]) -> TreeMeter:
        groups = dict(self.target.process_groups())
        own = os.getpid()
        groups["generator"] = lambda: [*generator_pids, own]
        return TreeMeter(groups)

    async def connect(
        self,
        slugs: list[str],
        per_session: int,
        *,
        extra: list[dict[str, Any]] | None = None,
        processes: int = 0,
    ) -> tuple[list[Worker], dict[str, Any]]:
        """Watchers spread evenly over sessions and the target's ports, in worker processes."""
        ports = self.target.ports()
        since: dict[str, int | None] = {}
        if "since" in self.target.capabilities:
            heads = await asyncio.gather(*(self.target.head(s) for s in slugs[:50]))
            since = dict(zip(slugs[:50], heads, strict=False))
        specs: list[dict[str, Any]] = []
        total = len(slugs) * per_session
        for i in range(total):
            session = i % len(slugs)
            specs.append(
                {
                    "host": self.target.host,
                    "port": ports[i % len(ports)],
                    "slug": slugs[session],
                    "session": session,
                    "since": since.get(slugs[session], 0 if since else None),
                }
            )
        for spec in extra or []:
            specs.append(
                {
                    "host": self.target.host,
                    "port": ports[0],
                    "since": since.get(spec["slug"]),
                    **spec,
                }
            )
        count = processes or self.watcher_processes(len(specs))
        workers = await start_workers("watchers", count, self.worker_config())
        self.workers.extend(workers)
        parts = split(specs, count)
        # Each process opens its share; all together about 2,000 a second.
        rate = max(50.0, 2000.0 / count)
        replies = await asyncio.gather(
            *(
                w.call("connect", watchers=p, rate=rate)
                for w, p in zip(workers, parts, strict=False)
                if p
            )
        )
        servers: dict[str, int] = {}
        for reply in replies:
            for name, n in reply["servers"].items():
                servers[name] = servers.get(name, 0) + n
        info = {
            "connected": sum(r["connected"] for r in replies),
            "failed": sum(r["failed"] for r in replies),
            "seconds": max(r["seconds"] for r in replies),
            "errors": [r["error"] for r in replies if r["error"]],
            "servers": servers,
        }
        if info["failed"]:
            log(
                self.options, f"    ! {info['failed']} watchers failed to connect: {info['errors']}"
            )
        return workers, info

    async def posters(self, authors: int, rate: float, body_size: int = 0) -> list[Worker]:
        count = self.poster_processes(rate)
        tokens = self.target.tokens(authors)
        workers = []
        for part in split(tokens, count) if tokens else [[]] * count:
            config = {
                **self.worker_config(),
                "host": self.target.host,
                "port": self.target.ports()[0],
                "ports": self.target.ports(),
                "path_post": self.target.path_post,
                "tokens": part,
                "body_size": body_size,
            }
            workers.extend(await start_workers("posters", 1, config))
        self.workers.extend(workers)
        return workers

    async def drain(
        self, watchers: list[Worker], accepted: dict[str, list[int]], timeout: float
    ) -> bool:
        expect = {k: len(v) for k, v in accepted.items()}
        deadline = time.monotonic() + timeout
        while True:
            replies = await asyncio.gather(*(w.call("progress", expect=expect) for w in watchers))
            if sum(r["behind"] for r in replies) == 0:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)

    # --- the common measurement ------------------------------------------------------------------

    async def fanout(
        self,
        label: str,
        *,
        sessions: int,
        per_session: int,
        rate: float,
        duration: float,
        concurrency: int = 0,
        body_size: int = 0,
        extra: list[dict[str, Any]] | None = None,
        during: Any = None,
        warmup: float = 0.5,
        drain_timeout: float = 30.0,
    ) -> Measurement:
        """Watchers on ``sessions`` sessions, posts at ``rate`` a second for ``duration`` seconds
        spread over the sessions (or, with ``concurrency``, as fast as that many clients posting
        one after the other get answers), then every figure. ``during(bench, watchers, t0)``
        runs alongside the posts (faults). ``extra`` watchers name their session by index."""
        opts = self.options
        m = Measurement(
            label,
            {
                "sessions": sessions,
                "watchers_per_session": per_session,
                "posts_per_second": rate,
                "duration_s": duration,
                "processes": self.config.processes,
            },
        )
        slugs = await self.target.create_sessions(sessions, self.slug_prefix(label))
        meter = self.new_meter([])
        rss_base = meter.sample().get("server", 0)
        extra = [{**e, "slug": slugs[e.get("session", 0)]} for e in extra or []]
        log(opts, f"  {label}: connecting {sessions * per_session + len(extra)} watchers")
        (watchers, connected), posters = await asyncio.gather(
            self.connect(slugs, per_session, extra=extra),
            self.posters(self.config.authors, rate if not concurrency else 0, body_size),
        )
        await asyncio.sleep(0.2 if opts.smoke else 1.0)
        pids = [w.pid for w in watchers + posters]
        meter = self.new_meter(pids)
        rss_connected = meter.sample().get("server", 0)
        counters0 = await self.target.counters()
        await asyncio.gather(*(w.call("reset") for w in watchers))
        meter.start()
        cpu0 = self_cpu()
        t0 = time.monotonic() + warmup
        sampler = asyncio.create_task(self._sample(meter, t0))
        stop_probe = asyncio.Event()
        probe = asyncio.create_task(self.target.sample(stop_probe))
        spy = self.start_profile(label, duration + 1.0)
        session_pairs = list(enumerate(slugs))
        if concurrency:
            log(opts, f"  {label}: {concurrency} clients posting for {duration:g}s")
            jobs = [
                p.call(
                    "run",
                    mode="closed",
                    concurrency=max(1, concurrency // len(posters)),
                    duration=duration,
                    t0=t0,
                    sessions=session_pairs,
                    stride=len(posters),
                    offset=i,
                )
                for i, p in enumerate(posters)
            ]
        else:
            log(opts, f"  {label}: posting {rate:g}/s for {duration:g}s")
            jobs = [
                p.call(
                    "run",
                    mode="open",
                    rate=rate / len(posters),
                    duration=duration,
                    t0=t0 + i / rate,
                    sessions=session_pairs,
                    stride=len(posters),
                    offset=i,
                )
                for i, p in enumerate(posters)
            ]
        extra_result: Any = None
        if during is not None:
            results = await asyncio.gather(*jobs, during(self, watchers, t0))
            posted, extra_result = list(results[:-1]), results[-1]
        else:
            posted = list(await asyncio.gather(*jobs))
        accepted: dict[str, list[int]] = {}
        for reply in posted:
            for session, ks in reply["accepted"].items():
                accepted.setdefault(session, []).extend(ks)
        complete = await self.drain(watchers, accepted, drain_timeout)
        t_end = time.monotonic()
        sampler.cancel()
        stop_probe.set()
        probed = await probe
        profiled = await self.finish_profile(spy)
        cpu = meter.cpu()
        generator_cpu = self_cpu() - cpu0
        worker_cpu = await asyncio.gather(*(w.call("cpu") for w in watchers + posters))
        generator_cpu += sum(r["cpu"] for r in worker_cpu)
        if "counters" in self.target.capabilities:
            await asyncio.sleep(1.3)  # the server copies its counters to /metrics every second
        counters1 = await self.target.counters()
        rss_end = meter.sample().get("server", 0)
        results = await asyncio.gather(*(w.call("result", accepted=accepted) for w in watchers))
        await asyncio.gather(*(w.call("close") for w in watchers))
        for worker in watchers + posters:
            worker.stop()
            self.workers.remove(worker)
        window = max(1e-6, t_end - t0)
        m.figures = summarise(
            results,
            posted,
            counters0,
            counters1,
            cpu,
            window,
            connected,
            rss={
                "base": rss_base,
                "connected": rss_connected,
                "end": rss_end,
                "peak": meter.rss_peak.get("server", 0),
                "series": meter.rss_series.get("server", []),
            },
        )
        m.figures["generator_cpu_s"] = round(generator_cpu, 3)
        m.figures["complete"] = complete
        if extra_result is not None:
            m.figures["fault"] = extra_result
        if probed:
            m.figures["probe"] = probed
        if profiled:
            m.figures["profile"] = profiled
        log(opts, "    " + one_line(m.figures))
        if probed:
            log(
                opts,
                f"    postgres: {probed['postgres_sessions_busy_mean']} sessions busy on "
                f"average; {probed['postgres_waits']}",
            )
        return m

    def start_profile(self, label: str, seconds: float) -> Any:
        """``py-spy record`` of the server's process tree for ``seconds`` (``--profile DIR``),
        idle frames included (a server waiting on PostgreSQL shows it)."""
        folder = self.options.profile_dir
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        server = self.target.process_groups()["server"]()
        if folder is None or not server or not Path(spy).exists():
            return None
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^a-z0-9]+", "-", f"{self.target.name}-{self.scenario}-{label}".lower())
        out = folder / f"{name}.txt"
        process = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(server[0]),
                "--subprocesses",
                "--idle",
                "--nonblocking",
                "--rate",
                "250",
                "--duration",
                str(max(1, int(seconds))),
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return process, out

    async def finish_profile(self, spy: Any) -> dict[str, Any]:
        if spy is None:
            return {}
        process, out = spy
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait), 60)
        except TimeoutError:
            process.kill()
        return summarise_profile(out)

    async def _sample(self, meter: TreeMeter, t0: float) -> None:
        while True:
            meter.sample(time.monotonic() - t0)
            await asyncio.sleep(1.0)


def summarise(
    results: list[dict[str, Any]],
    posted: list[dict[str, Any]],
    counters0: dict[str, float],
    counters1: dict[str, float],
    cpu: dict[str, float],
    window: float,
    connected: dict[str, Any],
    rss: dict[str, Any],
) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    for result in results:
        for name, g in result["groups"].items():
            total = groups.setdefault(name, {})
            for key, value in g.items():
                if isinstance(value, dict):
                    bucket = total.setdefault(key, {})
                    for k, v in value.items():
                        bucket[k] = bucket.get(k, 0) + v
                elif isinstance(value, list):
                    total.setdefault(key, []).extend(value)
                else:
                    total[key] = total.get(key, 0) + value
    latency: dict[str, dict[str, Histogram]] = {}
    for result in results:
        for name, pair in result["latency"].items():
            for kind, wire in pair.items():
                latency.setdefault(name, {}).setdefault(kind, Histogram()).merge(
                    Histogram.from_wire(wire)
                )
    catch_up = merged(Histogram.from_wire(r["catch_up"]) for r in results)
    lag = merged(Histogram.from_wire(r["loop_lag"]) for r in results if "loop_lag" in r)
    normal = groups.get("normal", {})
    statuses: dict[str, int] = {}
    for reply in posted:
        for status, n in reply["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    post_send = merged(Histogram.from_wire(r["from_send"]) for r in posted)
    post_schedule = merged(Histogram.from_wire(r["from_schedule"]) for r in posted)
    accepted = sum(len(ks) for r in posted for ks in r["accepted"].values())
    deliveries = sum(g.get("deliveries", 0) for g in groups.values())
    delta = {k: round(counters1.get(k, 0) - counters0.get(k, 0), 3) for k in counters1}
    if "connections" in counters1:
        delta["connections"] = counters1["connections"]
    server_cpu = cpu.get("server", 0.0)
    watchers = sum(g.get("watchers", 0) for g in groups.values())
    per_conn = (rss["connected"] - rss["base"]) / watchers if watchers else None
    return {
        "connected": connected,
        "posts": {
            "accepted": accepted,
            "held": sum(r["held"] for r in posted),
            "statuses": statuses,
            "errors": [e for r in posted for e in r["errors"]][:5],
            "latency_ms": post_send.summary(),
            "latency_from_schedule_ms": post_schedule.summary(),
            "per_second": round(accepted / window, 1),
        },
        "delivery_ms": {
            "from_accept": latency.get("normal", {}).get("from_send", Histogram()).summary(),
            "from_schedule": latency.get("normal", {}).get("from_schedule", Histogram()).summary(),
        },
        "other_latency_ms": {
            name: {kind: h.summary() for kind, h in pair.items()}
            for name, pair in latency.items()
            if name != "normal"
        },
        "catch_up_ms": catch_up.summary(),
        "generator_loop_lag_ms": lag.summary(),
        "watchers": watchers,
        "groups": groups,
        "deliveries": deliveries,
        "deliveries_per_s": round(deliveries / window, 1),
        "frames_received_per_s": round(
            sum(g.get("frames", 0) for g in groups.values()) / window, 1
        ),
        "server_counters": delta,
        "frames_written_per_s": (round(delta["frames"] / window, 1) if "frames" in delta else None),
        "lost": normal.get("lost", 0),
        "duplicated": sum(g.get("duplicates", 0) for g in groups.values()),
        "seq_breaks": normal.get("seq_breaks", 0),
        "cpu_s": cpu,
        "server_cpu_per_1000_deliveries_ms": (
            round(server_cpu / deliveries * 1e6, 3) if deliveries else None
        ),
        "rss": {
            "base_mib": round(rss["base"] / 2**20, 1),
            "connected_mib": round(rss["connected"] / 2**20, 1),
            "end_mib": round(rss["end"] / 2**20, 1),
            "peak_mib": round(rss["peak"] / 2**20, 1),
            "per_connection_kib": round(per_conn / 1024, 2) if per_conn is not None else None,
            "series_mib": [(t, round(v / 2**20, 1)) for t, v in rss["series"]],
        },
        "window_s": round(window, 3),
    }


def one_line(f: dict[str, Any]) -> str:
    d = f["delivery_ms"]["from_accept"]
    s = f["delivery_ms"]["from_schedule"]
    cpu = f["cpu_s"]
    post = f["posts"]["latency_ms"]
    servers = f["connected"].get("servers", {})
    split = f"; watchers per process {sorted(servers.values())}" if len(servers) > 1 else ""
    return (
        f"posts {f['posts']['accepted']} ({f['posts']['per_second']}/s, p50 {post['p50']} "
        f"p99 {post['p99']} ms); "
        f"delivery p50 {d['p50']} p99 {d['p99']} max {d['max']} ms "
        f"(from schedule p99 {s['p99']}); {f['deliveries_per_s']:g} deliveries/s, "
        f"frames written {f['frames_written_per_s']}/s; lost {f['lost']}, dup {f['duplicated']}; "
        f"cpu server {cpu.get('server')} s, generator {f.get('generator_cpu_s')} s; "
        f"server cpu/1000 deliveries {f['server_cpu_per_1000_deliveries_ms']} ms; "
        f"rss/conn {f['rss']['per_connection_kib']} KiB{split}; "
        f"generator loop lag p99 {f['generator_loop_lag_ms']['p99']} ms"
    )


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def idle(bench: Bench, label: str, watchers: int, duration: float) -> Measurement:
    """``watchers`` connected to one session and nothing else for ``duration`` seconds: what
    each connection costs the server at rest (memory; CPU, keepalive pings included)."""
    opts = bench.options
    m = Measurement(
        label,
        {
            "watchers": watchers,
            "idle_s": duration,
            "ping_interval_s": bench.config.ping_interval or 20.0,
        },
    )
    slugs = await bench.target.create_sessions(1, bench.slug_prefix(label))
    meter = bench.new_meter([])
    await asyncio.sleep(0.2 if opts.smoke else 1.0)
    rss_base = meter.sample().get("server", 0)
    log(opts, f"  {label}: connecting {watchers} watchers")
    workers, connected = await bench.connect(slugs, watchers)
    await asyncio.sleep(0.2 if opts.smoke else 2.0)
    meter = bench.new_meter([w.pid for w in workers])
    rss_connected = meter.sample().get("server", 0)
    await asyncio.gather(*(w.call("reset") for w in workers))
    meter.start()
    t0 = time.monotonic()
    log(opts, f"  {label}: idle for {duration:g}s")
    while time.monotonic() - t0 < duration:
        meter.sample(time.monotonic() - t0)
        await asyncio.sleep(min(1.0, max(0.0, duration - (time.monotonic() - t0))))
    window = time.monotonic() - t0
    cpu = meter.cpu()
    rss_end = meter.sample().get("server", 0)
    counts = await asyncio.gather(*(w.call("count") for w in workers))
    results = await asyncio.gather(*(w.call("result", accepted={}) for w in workers))
    generator = sum(r["cpu"] for r in results)
    await asyncio.gather(*(w.call("close") for w in workers))
    for worker in workers:
        worker.stop()
        bench.workers.remove(worker)
    pings = sum(g.get("pings", 0) for r in results for g in r["groups"].values())
    still_open = sum(c["open"] for c in counts)
    server_cpu = cpu.get("server", 0.0)
    m.figures = {
        "connected": connected,
        "still_open": still_open,
        "pings_received": pings,
        "cpu_s": cpu,
        "server_cpu_per_1000_connections_per_minute_ms": round(
            server_cpu / max(1, still_open) * 1000 / window * 60 * 1000, 3
        ),
        "server_cpu_percent": round(server_cpu / window * 100, 2),
        "rss": {
            "base_mib": round(rss_base / 2**20, 1),
            "connected_mib": round(rss_connected / 2**20, 1),
            "end_mib": round(rss_end / 2**20, 1),
            "per_connection_kib": round((rss_connected - rss_base) / max(1, watchers) / 1024, 2),
            "series_mib": [(t, round(v / 2**20, 1)) for t, v in meter.rss_series["server"]],
        },
        "generator_cpu_s": round(generator, 3),
        "lost": 0,
        "duplicated": sum(g.get("duplicates", 0) for r in results for g in r["groups"].values()),
        "closes": {
            k: v
            for r in results
            for g in r["groups"].values()
            for k, v in g.get("closes", {}).items()
        },
        "window_s": round(window, 3),
        "complete": still_open == watchers,
    }
    log(
        opts,
        f"    {still_open} open, {pings} pings answered; server cpu {server_cpu} s "
        f"({m.figures['server_cpu_percent']} %), rss/conn "
        f"{m.figures['rss']['per_connection_kib']} KiB",
    )
    return m


async def history(
    bench: Bench, label: str, comments: int, concurrency: int, duration: float
) -> list[Measurement]:
    """Pages of a session of ``comments`` comments with reply trees (loaded with SQL), each
    asked by ``concurrency`` clients, one request after the other, for ``duration`` seconds."""
    opts = bench.options
    log(opts, f"  {label}: loading {comments} comments with SQL")
    slug, info = await bench.target.load_history(comments)
    log(
        opts,
        f"    loaded {info['comments']} ({info['threads']} threads) in {info['load_seconds']} s",
    )
    workers = await bench.posters(0, 0)
    measurements = []
    try:
        for name, paths in bench.target.history_paths(slug, info).items():
            meter = bench.new_meter([w.pid for w in workers])
            meter.start()
            reply = (
                await asyncio.gather(
                    *(
                        w.call("requests", paths=paths, concurrency=concurrency, duration=duration)
                        for w in workers
                    )
                )
            )[0]
            cpu = meter.cpu()
            hist = Histogram.from_wire(reply["latency"])
            ok = sum(n for s, n in reply["statuses"].items() if s.startswith("2"))
            m = Measurement(
                f"{label}: {name}",
                {
                    "comments": info["comments"],
                    "threads": info["threads"],
                    "concurrency": concurrency,
                    "duration_s": duration,
                    "path": paths[0],
                },
            )
            m.figures = {
                "latency_ms": hist.summary(),
                "requests_per_s": round(ok / reply["seconds"], 1),
                "statuses": reply["statuses"],
                "bytes_mean": reply["bytes_mean"],
                "cpu_s": cpu,
                "server_cpu_per_request_ms": round(cpu.get("server", 0) / max(1, ok) * 1000, 3),
                "generator_cpu_s": reply["cpu"],
                "lost": 0,
                "duplicated": 0,
                "errors": sum(n for s, n in reply["statuses"].items() if not s.startswith("2")),
                "complete": ok > 0 and all(s.startswith("2") for s in reply["statuses"]),
                "load": info,
                "window_s": reply["seconds"],
            }
            lat = m.figures["latency_ms"]
            log(
                opts,
                f"    {name}: p50 {lat['p50']} p99 {lat['p99']} ms, "
                f"{m.figures['requests_per_s']} req/s, {reply['bytes_mean']} B",
            )
            measurements.append(m)
    finally:
        for worker in workers:
            worker.stop()
            bench.workers.remove(worker)
    return measurements


def summarise_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """A py-spy raw (collapsed) profile of the server's event-loop threads (background threads,
    such as the metrics server's, left out): the share of samples each function was running
    (self, "(event loop idle)" when waiting for I/O) and was on the stack (total, frames on
    nearly every stack left out)."""
    if not path.exists():
        return {}
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames or any(f.startswith("Thread._bootstrap") for f in frames):
            continue
        count = int(count_text)
        samples += count
        names = [_frame_name(f) for f in frames[1:]]  # frames[0] names the process
        leaf = names[-1] if names else "?"
        if leaf.startswith(("Runner.run ", "run_until_complete ", "run_forever ")):
            leaf = "(event loop idle)"
        own[leaf] = own.get(leaf, 0) + count
        for name in set(names):
            total[name] = total.get(name, 0) + count

    def share(table: dict[str, int], skip_above: float = 1.0) -> dict[str, float]:
        rows = [(k, v / max(1, samples)) for k, v in table.items()]
        rows = [(k, v) for k, v in rows if v <= skip_above]
        best = sorted(rows, key=lambda kv: -kv[1])[:top]
        return {k: round(v, 3) for k, v in best}

    return {
        "file": str(path),
        "samples": samples,
        "self": share(own),
        "total": share(total, skip_above=0.9),
    }


def _frame_name(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({Path(where).name})" if where else name


def send_queues(port: int) -> list[int]:
    """Bytes waiting in the kernel's send buffers of the established connections served on
    ``port`` (``ss``), largest first: where a slow reader's backlog sits before the server's
    own buffer (``WS_SEND_BUFFER_LIMIT``) sees any of it."""
    try:
        done = subprocess.run(
            ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return []
    queues = []
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1].isdigit():
            queues.append(int(fields[1]))
    return sorted(queues, reverse=True)
