"""Automatic slow mode: while a session's posts per minute exceed its ``auto_slow_threshold``,
slow mode switches on by itself (at ``auto_slow_seconds``), and off again once the rate falls
below half the threshold (rates over each session's ``auto_slow_window``, so every process
agrees). Every process checks every second; the store's conditional
change means one ``session.updated`` event per switch, however many processes saw it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .periodic import Periodic

if TYPE_CHECKING:
    from .hub import Hub
    from .storage import Store

log = logging.getLogger("backchannel.slowmode")

CHECK_INTERVAL = 1.0  # seconds; one indexed query over the open sessions that have a threshold


class SlowModeGovernor:
    def __init__(self, store: Store, hub: Hub) -> None:
        self._store = store
        self._hub = hub
        self._task = Periodic("auto-slow-mode", CHECK_INTERVAL, self.check)

    def start(self) -> None:
        self._task.start()

    async def close(self) -> None:
        await self._task.close()

    async def check(self) -> None:
        for session, on, event in await self._store.set_auto_slow():
            log.info("session %s: automatic slow mode %s", session.slug, "on" if on else "off")
            await self._hub.publish_session(session.id, event)
