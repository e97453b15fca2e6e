"""Helpful marks, aggregated: a burst of clicks becomes a few count updates, not one event per
click. Each process notes which comments' counts moved and, at most once per ``INTERVAL`` per
session, logs one ``helpful.counts`` event with their current counts (read from PostgreSQL, so
marks taken by other processes meanwhile are included)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .periodic import Periodic

if TYPE_CHECKING:
    from .hub import Hub
    from .storage import SessionRecord, Store

log = logging.getLogger("backchannel.tally")

INTERVAL = 1.0
MAX_IDS = 500  # comments per event; more wait for the next one


class HelpfulTally:
    def __init__(self, store: Store, hub: Hub) -> None:
        self._store = store
        self._hub = hub
        self._moved: dict[int, tuple[SessionRecord, set[int]]] = {}
        self._task = Periodic("helpful-tally", INTERVAL, self.flush)

    def moved(self, session: SessionRecord, comment_id: int) -> None:
        self._moved.setdefault(session.id, (session, set()))[1].add(comment_id)

    def start(self) -> None:
        self._task.start()

    async def close(self) -> None:
        await self._task.close()
        await self.flush()

    async def flush(self) -> None:
        """One event per session with moved counts. A session whose event cannot be written
        keeps its comments for the next round: the marks are stored, only the event is late."""
        pending, self._moved = self._moved, {}
        for session_id, (session, ids) in pending.items():
            batch = sorted(ids)[:MAX_IDS]
            try:
                event = await self._store.helpful_event(session, batch)
            except Exception as exc:
                log.warning("helpful counts of session %s not logged yet: %s", session.slug, exc)
                batch = []
            for comment_id in ids.difference(batch):
                self.moved(session, comment_id)
            if batch:
                await self._hub.publish_session(session_id, event)
