"""The bus between server processes: the interface, and what it promises.

A bus carries opaque payloads on named topics. It is **at-most-once**: a process that is
disconnected or slow may miss publications, silently. Nothing correct may depend on it; it is the
fast path. Anything missed on a session topic is read back from PostgreSQL by ``seq`` (see
``hub.py``), which is why every payload on a session topic carries its ``seq``.

Ordering: publications of one publisher on one topic arrive in order; publications of different
publishers may interleave in any order (the hub re-orders by ``seq``).

Failure: ``publish`` raises :class:`BusUnavailable` when the broker cannot be reached; the caller
has already committed and carries on. A bus reconnects by itself, resubscribes every topic, then
calls ``on_resync`` so the hub can look for what it missed meanwhile. ``healthy`` is False while
the bus is disconnected; the hub then polls PostgreSQL for new events instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

MessageHandler = Callable[[str, bytes], None]
ResyncHandler = Callable[[], None]


class BusUnavailable(Exception):
    """The broker cannot be reached now."""


class Bus(Protocol):
    @property
    def healthy(self) -> bool: ...

    async def start(self, on_message: MessageHandler, on_resync: ResyncHandler) -> None:
        """Connect; from now on every payload on a subscribed topic goes to ``on_message``."""

    async def publish(self, topic: str, payload: bytes) -> None: ...

    async def subscribe(self, topic: str) -> None:
        """Returns once the broker has confirmed the subscription (publications made after
        that are received), or once the bus has given up waiting because the broker is down
        (it subscribes again on reconnect; the hub polls meanwhile)."""

    async def unsubscribe(self, topic: str) -> None: ...

    async def share_counts(self, server: str, counts: dict[int, int], ttl: float) -> dict[int, int]:
        """Report this process's watchers per session (kept ``ttl`` seconds, so a dead process
        stops counting) and return the totals over every live process, for the sessions in
        ``counts``."""

    async def close(self) -> None: ...


def session_topic(session_id: int) -> str:
    return f"bc:session:{session_id}"


def user_topic(sub: str) -> str:
    return f"bc:user:{sub}"


def moderators_topic(event_slug: str) -> str:
    return f"bc:mod:{event_slug}"
