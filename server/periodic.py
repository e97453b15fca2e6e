"""A supervised background task that runs one step every ``interval`` seconds until closed. A
step that fails is logged (one line naming the task) and the next one runs on time: the work
is retried, and the task never dies silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("backchannel.tasks")


class Periodic:
    def __init__(
        self,
        name: str,
        interval: float,
        step: Callable[[], Awaitable[None]],
        *,
        expected: tuple[type[Exception], ...] = (),
    ) -> None:
        """``expected``: failures worth one warning line without a traceback (e.g. the bus
        being down), as opposed to bugs."""
        self.name = name
        self.interval = interval
        self._step = step
        self._expected = expected
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the task. A step may swallow one cancellation (a library catching
        ``CancelledError``, or ``asyncio.wait_for`` in Python 3.11), so cancel until it ends."""
        self._closing = True
        task, self._task = self._task, None
        deadline = asyncio.get_running_loop().time() + timeout
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
            if asyncio.get_running_loop().time() > deadline:
                log.error("%s: still running %.0f s after being stopped", self.name, timeout)
                return

    async def _run(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.interval)
            try:
                await self._step()
            except self._expected as exc:
                log.warning("%s: %s: %s", self.name, type(exc).__name__, exc)
            except Exception:
                log.exception("%s: step failed; retrying in %.1f s", self.name, self.interval)
