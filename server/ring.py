"""The ring: each watched session's most recent events, kept in memory so that most catch-ups
(a reconnect after a few seconds) never reach the database."""

from __future__ import annotations

from collections import deque

from .protocol import replace_comment


class Ring:
    """The most recent events of a session, for catch-ups that need not reach the database."""

    def __init__(self, size: int) -> None:
        self._events: deque[tuple[int, int | None, bytes]] = deque(maxlen=size)

    def append(self, seq: int, comment_id: int | None, payload: bytes) -> None:
        self._events.append((seq, comment_id, payload))

    def covers(self, seq: int) -> bool:
        """Whether every event from ``seq`` to the newest is here."""
        return bool(self._events) and self._events[0][0] <= seq

    def after(self, seq: int, upto: int | None = None) -> list[bytes]:
        """The events after ``seq`` (up to ``upto``, if given), oldest first."""
        last = upto if upto is not None else float("inf")
        return [payload for s, _, payload in self._events if seq < s <= last]

    def refresh(self, comment_id: int, current: bytes) -> None:
        """Make earlier events of a comment show its current state (redacted once removed)."""
        for index, (seq, cid, payload) in enumerate(self._events):
            if cid == comment_id:
                self._events[index] = (seq, cid, replace_comment(payload, current))
