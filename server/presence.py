"""Who is watching: "312 watching" on every screen of a session, across all processes.

No message goes out per join or leave. Every ``INTERVAL`` seconds each process reports its own
watcher counts to the bus (where they expire unless refreshed, so a process that dies stops
counting within ``TTL`` seconds), reads back the totals for the sessions it serves, and sends a
``watching`` message, built once per session, to that session's watchers when the total changed.
"""

from __future__ import annotations

import logging

from .bus import Bus, BusUnavailable
from .hub import Hub
from .periodic import Periodic
from .protocol import encode, text_frame

log = logging.getLogger("backchannel.presence")

INTERVAL = 3.0
TTL = 10.0


def watching_message(session: str, count: int) -> bytes:
    return encode({"type": "watching", "session": session, "count": count})


class Presence:
    def __init__(self, hub: Hub, bus: Bus, server: str) -> None:
        self._hub = hub
        self._bus = bus
        self._server = server
        self._task = Periodic("presence", INTERVAL, self.refresh, expected=(BusUnavailable,))

    def start(self) -> None:
        self._task.start()

    async def close(self) -> None:
        await self._task.close()

    async def refresh(self) -> None:
        channels = self._hub.session_channels()
        counts = {c.session.id: len(c.watchers) for c in channels}
        totals = await self._bus.share_counts(self._server, counts, TTL)
        for channel in channels:
            total = totals.get(channel.session.id, len(channel.watchers))
            if total != channel.watching:
                channel.watching = total
                frame = text_frame(watching_message(channel.session.slug, total))
                self._hub.write_all(channel.watchers, frame)
