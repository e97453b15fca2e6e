"""The ``broadcaster`` peer: bench/peers/broadcaster/app.py under uvicorn, ``--workers N``, its
channels always in the run's Redis (see ``bench/peers/redis_peer.py``)."""

from __future__ import annotations

from ...targets import TargetConfig
from ..redis_peer import RedisPeer


class Broadcaster(RedisPeer):
    name = "broadcaster"
    description = "encode's broadcaster over Redis: a subscription per socket, send_text each"
    path_live = "/live/{slug}"
    app = "bench.peers.broadcaster.app:app"
    redis_note = "always (broadcaster's Redis backend, one channel per session)"

    def settings(self, config: TargetConfig, redis_url: str) -> dict[str, str]:
        return {"BROADCASTER_URL": redis_url}

    def uvicorn_options(self, config: TargetConfig) -> list[str]:
        ping = config.ping_interval if config.ping_interval is not None else 20.0
        return ["--ws-ping-interval", str(ping)]


TARGET = Broadcaster
