"""Metrics in Prometheus format, served at ``/metrics`` on their own address (``METRICS_ADDRESS``),
never on the public one.

The hot path only counts in plain integers (``HubStats``); a supervised task copies what moved
into the Prometheus metrics once a second, and samples the gauges (connections, pools). No label
takes values that grow with the audience: there is no per-session or per-user label (the
busiest sessions are at the admin route ``GET /v1/admin/sessions``).

With several worker processes (``--workers N``) each worker writes its metrics to
``PROMETHEUS_MULTIPROC_DIR`` and the parent process serves their sum (``serve_multiprocess``).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import start_http_server

from .periodic import Periodic

if TYPE_CHECKING:
    import asyncpg

    from .bus import Bus
    from .hub import Hub
    from .pages import PageCache

log = logging.getLogger("backchannel.metrics")

SYNC_INTERVAL = 1.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """One process's metrics, on a registry of its own (two apps in one process do not mix)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "backchannel_connections",
            "Open live-feed connections",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.watched_sessions = Gauge(
            "backchannel_watched_sessions",
            "Sessions with at least one watcher on this process",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.events_published = Counter(
            "backchannel_events_published", "Events committed and published", registry=r
        )
        self.deliveries = Counter(
            "backchannel_deliveries", "Events delivered to watchers (events x watchers)", registry=r
        )
        self.frames_sent = Counter(
            "backchannel_frames_sent", "WebSocket frames written to watchers", registry=r
        )
        self.bytes_sent = Counter(
            "backchannel_bytes_sent", "Bytes of frames written to watchers", registry=r
        )
        self.clients_shed = Counter(
            "backchannel_clients_shed",
            "Watchers cut off (4008) because they read too slowly; their deliveries dropped",
            registry=r,
        )
        self.gap_fills = Counter(
            "backchannel_gap_fills", "Gaps in a session's seq filled from PostgreSQL", registry=r
        )
        self.catch_up_reads = Counter(
            "backchannel_catch_up_reads",
            "Catch-up replays read from PostgreSQL (the rest came from memory)",
            registry=r,
        )
        self.page_hits = Counter(
            "backchannel_page_hits",
            "Board pages served from memory (kept since their session's last event)",
            registry=r,
        )
        self.page_reads = Counter(
            "backchannel_page_reads",
            "Board pages read from PostgreSQL (concurrent misses share one read)",
            registry=r,
        )
        self.redis_reconnects = Counter(
            "backchannel_redis_reconnects", "Reconnections of the Redis bus", registry=r
        )
        self.post_seconds = Histogram(
            "backchannel_post_seconds",
            "Time to accept a post (HTTP request to response)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fanout_seconds = Histogram(
            "backchannel_fanout_seconds",
            "Time from an event's arrival at this process to its frame written to every watcher",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_pool = Gauge(
            "backchannel_db_pool_connections",
            "PostgreSQL pool connections, by state",
            ["state"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.db_pool_max = Gauge(
            "backchannel_db_pool_max",
            "The PostgreSQL pool's maximum size",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._seen: dict[str, int] = {}
        self._task: Periodic | None = None
        self._server: MetricsServer | None = None

    def start(self, hub: Hub, bus: Bus, pool: asyncpg.Pool, pages: PageCache, address: str) -> None:
        """Copy the hub's counts every second; serve ``/metrics`` at ``address`` (unless empty,
        or a parent process serves every worker's)."""
        self._task = Periodic("metrics", SYNC_INTERVAL, lambda: self._sync(hub, bus, pool, pages))
        self._task.start()
        if address and MULTIPROCESS not in os.environ:
            try:
                self._server = MetricsServer(address, self.registry)
            except OSError as exc:  # the service goes on; its metrics are missing, and say so
                log.error("metrics: cannot listen on %s: %s", address, exc)

    async def close(self) -> None:
        if self._task is not None:
            await self._task.close()
        if self._server is not None:
            self._server.close()

    @property
    def port(self) -> int | None:
        """Where ``/metrics`` is served (None: not by this process)."""
        return self._server.port if self._server is not None else None

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def _sync(self, hub: Hub, bus: Bus, pool: asyncpg.Pool, pages: PageCache) -> None:
        self.sync(hub, bus, pool, pages)

    def sync(self, hub: Hub, bus: Bus, pool: asyncpg.Pool, pages: PageCache) -> None:
        stats = hub.stats
        for name, value in (
            ("events_published", stats.published),
            ("deliveries", stats.deliveries),
            ("frames_sent", stats.frames),
            ("bytes_sent", stats.bytes),
            ("clients_shed", stats.shed),
            ("gap_fills", stats.gap_fills),
            ("catch_up_reads", stats.catch_up_reads),
            ("redis_reconnects", getattr(bus, "reconnects", 0)),
            ("page_hits", pages.stats.hits),
            ("page_reads", pages.stats.misses - pages.stats.shared),
        ):
            moved = value - self._seen.get(name, 0)
            if moved > 0:
                counter: Counter = getattr(self, name)
                counter.inc(moved)
            self._seen[name] = value
        samples, stats.fanout_seconds = stats.fanout_seconds, []
        for seconds in samples:
            self.fanout_seconds.observe(seconds)
        channels = hub.session_channels()
        self.connections.set(sum(len(c.watchers) for c in channels))
        self.watched_sessions.set(sum(1 for c in channels if c.watchers))
        size, idle = pool.get_size(), pool.get_idle_size()
        self.db_pool.labels("in_use").set(size - idle)
        self.db_pool.labels("idle").set(idle)
        self.db_pool_max.set(pool.get_max_size())


class MetricsServer:
    """``/metrics`` over HTTP at ``host:port``, in a thread of its own (the exposition server
    of ``prometheus_client``), so that a slow scrape never waits on the event loop."""

    def __init__(self, address: str, registry: CollectorRegistry) -> None:
        host, port = parse_address(address)
        self.server, self.thread = start_http_server(port, addr=host, registry=registry)
        log.info("metrics at http://%s:%d/metrics", host, self.server.server_port)

    @property
    def port(self) -> int:
        port: int = self.server.server_port
        return port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9100`` for IPv6); a ``ValueError`` names what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"{address!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve_multiprocess(address: str, directory: str) -> MetricsServer:
    """In the parent of several workers: serve the sum of their metrics files."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return MetricsServer(address, registry)
