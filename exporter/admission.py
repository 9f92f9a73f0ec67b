"""The vendor-wide request limit, served oldest cycle first.

Each vendor's accounts share `max_concurrency` request slots. A first-come queue serves
requests in the order they were asked for, so when many cycles start together (a
start-up, a reload, cycles bunched by backoff) every account's second request queues
behind every account's first: all of them finish at about the same late time, and past
their `cycle_timeout` all of them fail together. Served by the start of the cycle that
asks, the cycles that began first finish first, and a busy exporter degrades into some
accounts late, never all of them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Admission:
    """A semaphore of `slots` whose waiters are woken lowest `priority` first (then in
    the order they came); with no one waiting a slot is taken at once."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("an admission needs at least one slot")
        self._free = slots
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @asynccontextmanager
    async def slot(self, priority: float) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: float) -> None:
        if self._free > 0:  # never while someone waits: `_release` hands slots over
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            # Cancelled after `_release` handed us the slot: pass it on, or it is lost.
            if future.done() and not future.cancelled():
                self._release()
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():  # a cancelled waiter's future is done: skipped
                future.set_result(None)
                return
        self._free += 1
