"""Automatic slow mode: while a session's posts per minute exceed its ``auto_slow_threshold``,
slow mode switches on by itself (at ``auto_slow_seconds``), and off again once the rate falls
below half the threshold. Every process checks every few seconds; the store's conditional
change means one ``session.updated`` event per switch, however many processes saw it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .periodic import Periodic

if TYPE_CHECKING:
    from .hub import Hub
    from .storage import Store

log = logging.getLogger("backchannel.slowmode")


class SlowModeGovernor:
    def __init__(self, store: Store, hub: Hub, window: float) -> None:
        self._store = store
        self._hub = hub
        self.window = window
        # Often enough to react within a fraction of the window, never busy.
        self.interval = max(0.25, min(5.0, window / 12))
        self._task = Periodic("auto-slow-mode", self.interval, self.check)

    def start(self) -> None:
        self._task.start()

    async def close(self) -> None:
        await self._task.close()

    async def check(self) -> None:
        for session, on, event in await self._store.set_auto_slow(self.window):
            log.info("session %s: automatic slow mode %s", session.slug, "on" if on else "off")
            await self._hub.publish_session(session.id, event)
