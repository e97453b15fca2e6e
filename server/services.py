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
from .heap import tune as tune_collector
from .hub import Hub
from .limits import RateLimiter
from .metrics import Metrics
from .migrations import migrate
from .notices import Notices
from .pages import PageCache
from .presence import Presence
from .slowmode import SlowModeGovernor
from .storage import Store
from .tally import HelpfulTally

log = logging.getLogger("backchannel")


def dev_tokens(settings: Settings) -> bool:
    """Whether the demo hands out tokens (``POST /v1/dev/token``): only for a demo signing with
    the development secret, never where a host site's secrets are configured."""
    return settings.demo and not settings.jwt_secrets


def signing_keys(settings: Settings) -> dict[str, str]:
    return parse_secrets(settings.jwt_secrets) or development_secret(settings.data_path)


@dataclass
class Services:
    settings: Settings
    store: Store
    hub: Hub
    verifier: TokenVerifier
    tally: HelpfulTally
    presence: Presence
    notices: Notices
    slow_mode: SlowModeGovernor
    metrics: Metrics
    address_posts: RateLimiter
    address_connects: RateLimiter
    pages: PageCache

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        tune_collector()
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
        tally = HelpfulTally(store, hub)
        tally.start()
        presence = Presence(hub, bus, settings.name)
        presence.start()
        slow_mode = SlowModeGovernor(store, hub)
        slow_mode.start()
        metrics = Metrics()
        pages = PageCache()
        metrics.start(hub, bus, store.pool, pages, settings.metrics_address)
        log.info(
            "server %s ready (bus: %s)", settings.name, "redis" if settings.redis_url else "memory"
        )
        return cls(
            settings=settings,
            store=store,
            hub=hub,
            verifier=verifier,
            tally=tally,
            presence=presence,
            notices=Notices(hub),
            slow_mode=slow_mode,
            metrics=metrics,
            address_posts=RateLimiter(
                settings.address_posts_per_minute, settings.rate_limit_exempt
            ),
            address_connects=RateLimiter(
                settings.address_connects_per_minute, settings.rate_limit_exempt
            ),
            pages=pages,
        )

    async def close(self) -> None:
        await self.metrics.close()
        await self.slow_mode.close()
        await self.presence.close()
        await self.tally.close()
        await self.hub.close()
        await self.store.close()
