"""The in-process bus: for a single server process, when no ``REDIS_URL`` is set."""

from __future__ import annotations

import asyncio

from .bus import MessageHandler, ResyncHandler


class MemoryBus:
    """Delivers each publication to this process's subscribers on the next loop iteration, in
    publication order. Never loses anything while the process runs."""

    def __init__(self) -> None:
        self._topics: set[str] = set()
        self._on_message: MessageHandler | None = None

    @property
    def healthy(self) -> bool:
        return True

    async def start(self, on_message: MessageHandler, on_resync: ResyncHandler) -> None:
        self._on_message = on_message

    async def publish(self, topic: str, payload: bytes) -> None:
        if topic in self._topics and self._on_message is not None:
            asyncio.get_running_loop().call_soon(self._on_message, topic, payload)

    async def subscribe(self, topic: str) -> None:
        self._topics.add(topic)

    async def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)

    async def share_counts(self, server: str, counts: dict[int, int], ttl: float) -> dict[int, int]:
        return dict(counts)

    async def close(self) -> None:
        self._topics.clear()
