"""Encoded pages of boards, kept until their session's next event.

Everything a page shows changes only with an event of its session: a post, an edit, a removal,
a helpful count, a forgotten name, the session's own settings each commit a new seq
(``sessions.last_seq``, see storage/__init__.py), because live screens must hear of them too. A
page read at head ``H`` is therefore exactly the page of any later request that finds the
session still at ``H``, in this process or any other, and checking that costs nothing: the
request reads its session anyway. So each process keeps the JSON bytes of the pages it served,
with the head they were read at, and serves them again while the head has not moved. A board
after its broadcast is read far more than it is written; during one, the newest page changes
with every post and is read again once per change.

Requests that miss together share one read (eight readers arriving after a post cause one
query, not eight), and the read runs in a task of its own, so a reader that goes away does not
cancel it for the others. The cache is bounded in bytes (least recently used pages go first).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any

MAX_BYTES = 64 * 1024 * 1024  # encoded pages kept per process, at most
MAX_PAGE = 4 * 1024 * 1024  # a page larger than this is served but not kept

Read = Callable[[], Coroutine[Any, Any, tuple[int, bytes]]]
"""Reads a page: the head it was read at, and its JSON."""


@dataclass
class PageStats:
    hits: int = 0
    misses: int = 0
    shared: int = 0
    """Misses that waited for another request's read instead of reading."""


class PageCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.stats = PageStats()
        self._pages: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self._reading: dict[tuple[Hashable, int], asyncio.Task[tuple[int, bytes]]] = {}

    async def get(self, key: Hashable, head: int, read: Read) -> bytes:
        """The page ``key`` of a session whose head is ``head`` now: kept bytes if they were
        read at ``head`` or later, else what ``read`` returns (shared with concurrent misses)."""
        kept = self._pages.get(key)
        if kept is not None and kept[0] >= head:
            self._pages.move_to_end(key)
            self.stats.hits += 1
            return kept[1]
        self.stats.misses += 1
        task = self._reading.get((key, head))
        if task is None:
            task = asyncio.create_task(read(), name=f"page-read-{key}")
            self._reading[(key, head)] = task
            task.add_done_callback(lambda done: self._read_done(key, head, done))
        else:
            self.stats.shared += 1
        _, body = await asyncio.shield(task)
        return body

    def _read_done(self, key: Hashable, head: int, task: asyncio.Task[tuple[int, bytes]]) -> None:
        del self._reading[(key, head)]
        if task.cancelled() or task.exception() is not None:
            return  # each waiter gets the error; nothing is kept
        read_at, body = task.result()
        kept = self._pages.get(key)
        if kept is not None and kept[0] > read_at:
            return  # a newer read of the same page finished first
        if len(body) > MAX_PAGE:
            return
        self._put(key, read_at, body)

    def _put(self, key: Hashable, head: int, body: bytes) -> None:
        old = self._pages.pop(key, None)
        if old is not None:
            self.bytes -= len(old[1])
        self._pages[key] = (head, body)
        self.bytes += len(body)
        while self.bytes > self.max_bytes and self._pages:
            _, (_, evicted) = self._pages.popitem(last=False)
            self.bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._pages)
