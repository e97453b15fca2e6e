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

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._step()
            except self._expected as exc:
                log.warning("%s: %s: %s", self.name, type(exc).__name__, exc)
            except Exception:
                log.exception("%s: step failed; retrying in %.1f s", self.name, self.interval)
