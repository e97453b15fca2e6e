"""The ``socketio`` peer: bench/peers/socketio/app.py under uvicorn, ``--workers N``, its emits
always through the run's Redis (``AsyncRedisManager``, as a deployment that may grow past one
process configures it; see ``bench/peers/redis_peer.py``). Its clients speak Engine.IO over the
WebSocket (``protocol = "engineio"``: the generator answers the open packet and the pings, see
``bench/loadgen.py``)."""

from __future__ import annotations

from typing import Any

from ...targets import TargetConfig
from ..redis_peer import RedisPeer


class SocketIO(RedisPeer):
    name = "socketio"
    description = "python-socketio AsyncServer + AsyncRedisManager: a room per session"
    path_live = "/socket.io/?EIO=4&transport=websocket&session={slug}"
    protocol = "engineio"
    app = "bench.peers.socketio.app:app"
    redis_note = "always (AsyncRedisManager: every emit published for the other processes)"
    ping = 25.0  # Engine.IO's own ping; uvicorn's WebSocket ping stays at its default

    def settings(self, config: TargetConfig, redis_url: str) -> dict[str, str]:
        self.ping = config.ping_interval if config.ping_interval is not None else 25.0
        return {"SOCKETIO_REDIS_URL": redis_url, "SOCKETIO_PING_INTERVAL": str(self.ping)}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "engineio_ping_interval_s": self.ping}


TARGET = SocketIO
