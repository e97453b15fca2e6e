"""The resources one server process holds, made in the app's lifespan and kept on its state:
the database pool, the bus, the hub and the token verifier. Nothing here is module-global, so
two apps can run in one process (tests do)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from .auth import TokenVerifier, development_secret, parse_secrets
from .bus import Bus
from .bus_memory import MemoryBus
from .config import Settings
from .errors import ConfigError
from .hub import Hub
from .migrations import migrate
from .storage import Store

log = logging.getLogger("backchannel")


def signing_keys(settings: Settings) -> dict[str, str]:
    return parse_secrets(settings.jwt_secrets) or development_secret(settings.data_path)


@dataclass
class Services:
    settings: Settings
    store: Store
    hub: Hub
    verifier: TokenVerifier

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        if not settings.database_url:
            raise ConfigError(
                "DATABASE_URL is not set (`backchannel serve` starts an embedded one)"
            )
        verifier = TokenVerifier(
            signing_keys(settings), settings.jwt_issuer, settings.jwt_audience, settings.jwt_leeway
        )
        conn = await asyncpg.connect(settings.database_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        store = await Store.connect(settings.database_url, settings.db_pool_size)
        bus: Bus
        if settings.redis_url:
            from .bus_redis import RedisBus

            bus = RedisBus(settings.redis_url)
        else:
            bus = MemoryBus()
        hub = Hub(bus, store, settings.ring_size, settings.ws_send_buffer_limit)
        await hub.start()
        log.info(
            "server %s ready (bus: %s)", settings.name, "redis" if settings.redis_url else "memory"
        )
        return cls(settings=settings, store=store, hub=hub, verifier=verifier)

    async def close(self) -> None:
        await self.hub.close()
        await self.store.close()
