"""Saved collector state (--storage.path) around a cycle: restore once, save on success.

The SQLite queries and the JSON of a large dedupe state run in the store's writer thread;
only the collector's own `state()` and `restore()` run on the loop, because collectors are
not thread-safe and a state must be the state of one complete cycle.
"""

from __future__ import annotations

from .clock import Clock
from .logs import get_logger
from .scheduler import AccountRunner
from .storage import StateStore

log = get_logger(component="loop")


class Persistence:
    def __init__(self, store: StateStore | None, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def restore(self, runner: AccountRunner) -> None:
        """Offer the saved state to the collector, once, before its first cycle."""
        if runner.restored:
            return
        runner.restored = True
        if self.store is None:
            return
        common = runner.common
        try:
            state = await self.store.load_async(common.vendor, common.name)
        except Exception:  # a damaged store must not stop the account from running
            log.error("saved state unreadable; starting afresh", vendor=common.vendor,
                      account=common.name, exc_info=True)
            return
        if state is None:
            return
        try:
            runner.collector.restore(state)
        except Exception:  # a state file from another version must not stop us
            log.error("saved state unusable; starting afresh", vendor=common.vendor,
                      account=common.name, exc_info=True)
        else:
            log.info("state restored", vendor=common.vendor, account=common.name)

    async def save(self, runner: AccountRunner) -> None:
        """After a successful cycle; the write runs in the writer thread."""
        if self.store is None:
            return
        state = runner.collector.state()  # on the loop: the state of a complete cycle
        if state is not None:
            common = runner.common
            await self.store.save_async(common.vendor, common.name, state, self.clock.time())

    async def save_all(self, runners: list[AccountRunner]) -> None:
        """At shutdown: every state is taken first, between two awaits, so that each is
        the state of a complete cycle; then written in order, off the loop."""
        if self.store is None:
            return
        now = self.clock.time()
        states = [(r.common, r.collector.state()) for r in runners]
        for common, state in states:
            if state is not None:
                await self.store.save_async(common.vendor, common.name, state, now)

    def forget(self, vendor: str, account: str) -> None:
        """A removed account: its state goes (queued in the writer thread)."""
        if self.store is not None:
            self.store.delete_soon(vendor, account)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
