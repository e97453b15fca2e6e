"""The Redis bus on its own, against a real redis-server: publications and subscriptions over
the bus's own RESP connections, with a password, and through a restart of Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from server.bus import BusUnavailable
from server.bus_redis import RedisBus

from .servers import RedisServer, free_port

WAIT = 20.0


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.resyncs = 0
        self.arrived = asyncio.Event()

    def on_message(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self.arrived.set()

    def on_resync(self) -> None:
        self.resyncs += 1

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async def until() -> None:
            while not condition():
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), WAIT)


async def publish_until_received(bus: RedisBus, inbox: Inbox, topic: str, payload: bytes) -> None:
    """Publish ``payload`` until it arrives (a restarted Redis takes a moment to be back)."""

    async def attempt() -> None:
        while (topic, payload) not in inbox.messages:
            with contextlib.suppress(BusUnavailable):
                await bus.publish(topic, payload)
            inbox.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(inbox.arrived.wait(), 0.2)

    await asyncio.wait_for(attempt(), WAIT)


async def test_a_bus_with_a_password_publishes_in_order_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path / "redis", password="s3cret pass").start()
    bus = RedisBus(redis.url.replace("s3cret pass", "s3cret%20pass"))
    inbox = Inbox()
    try:
        await bus.start(inbox.on_message, inbox.on_resync)
        await bus.subscribe("bc:test")
        payloads = [f"event {n} ✓".encode() for n in range(300)]
        # Published concurrently: they go out in pipelines, and arrive in the order published.
        await asyncio.gather(*(bus.publish("bc:test", payload) for payload in payloads))
        await inbox.wait_for(lambda: len(inbox.messages) >= len(payloads))
        assert inbox.messages == [("bc:test", payload) for payload in payloads]

        redis.kill()
        with pytest.raises(BusUnavailable, match="bc:test"):
            await bus.publish("bc:test", b"while down")
        redis = RedisServer(tmp_path / "redis", port=redis.port, password="s3cret pass").start()
        # Both connections come back by themselves: the subscriber resubscribes (and asks for
        # a resync), the publisher reconnects on its next publication.
        await publish_until_received(bus, inbox, "bc:test", b"after the restart")
        assert inbox.resyncs >= 2
        assert b"while down" not in [payload for _, payload in inbox.messages]
    finally:
        await bus.close()
        redis.kill()


async def test_a_wrong_password_is_reported_by_the_publication(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", password="right").start()
    bus = RedisBus(f"redis://:wrong@127.0.0.1:{redis.port}/0")
    inbox = Inbox()
    try:
        await bus.start(inbox.on_message, inbox.on_resync)
        assert not bus.healthy
        with pytest.raises(BusUnavailable, match=r"bc:test.*(WRONGPASS|invalid)"):
            await bus.publish("bc:test", b"refused")
    finally:
        await bus.close()
        redis.kill()


async def test_nothing_listening_is_reported_by_the_publication() -> None:
    bus = RedisBus(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(BusUnavailable, match="bc:test"):
            await bus.publish("bc:test", b"nowhere")
    finally:
        await bus.close()
