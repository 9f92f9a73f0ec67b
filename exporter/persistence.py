"""Saved collector state (--storage.path) around a cycle: restore once, save on success.

The SQLite queries and the JSON run in the store's writer thread. Only the collector's
own `saved_state()` and `restore()` run on the loop, because collectors are not
thread-safe and a state must be the state of one complete cycle; `saved_state()` gives
the dedupe memory as its changes since the last save, so the loop's share of a save costs
what changed in the cycle. A save that fails or is cancelled makes the next one whole, as
is the first after a restore from an older, whole-state row.

Each failure is logged, counted (`session_exporter_state_failures_total`) and shown on
the account's status page until a save succeeds (a failed restore for an hour at least).
"""

from __future__ import annotations

import asyncio
import sqlite3

from .clock import Clock
from .history import safe_text
from .http import ERROR_EXCERPT
from .logs import get_logger
from .scheduler import AccountRunner
from .selfmetrics import SelfMetrics, StateFailure
from .storage import StateFileReplaced, StateGap, StateStore

log = get_logger(component="loop")

# What a disk, SQLite or the file's fate raises: said in one line, no traceback (a
# read-only file wrote one a cycle for every account). Anything else may be our bug.
EXPECTED_FAILURES = (sqlite3.Error, OSError, StateGap, StateFileReplaced)
# The same failure of one account is logged again at most this often; it is counted and
# shown on the account's page every time.
SAME_FAILURE_LOGGED_EVERY = 3600.0


class Persistence:
    def __init__(self, store: StateStore | None, clock: Clock, metrics: SelfMetrics) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        # (vendor, account) -> (message, monotonic time) of the save failure last logged.
        self._logged: dict[tuple[str, str], tuple[str, float]] = {}

    def _failed(self, runner: AccountRunner, operation: str, exc: BaseException) -> str:
        common = runner.common
        # What SQLite or the OS said (a path, "disk I/O error"): no vendor text, but
        # scrubbed and capped as any text shown is.
        message = safe_text(f"{type(exc).__name__}: {exc}", ERROR_EXCERPT)
        failure = StateFailure(operation, self.clock.time(), message)
        self.metrics.state_failed(common.vendor, common.name, failure)
        return message

    def _log_save_failure(self, runner: AccountRunner, exc: BaseException, message: str) -> None:
        key = (runner.common.vendor, runner.common.name)
        now, last = self.clock.monotonic(), self._logged.get(key)
        if last is not None and last[0] == message and now - last[1] < SAME_FAILURE_LOGGED_EVERY:
            return
        self._logged[key] = (message, now)
        log.error(
            "state not saved; the next save writes it whole",
            vendor=key[0],
            account=key[1],
            error=message,
            exc_info=not isinstance(exc, EXPECTED_FAILURES),
        )

    async def restore(self, runner: AccountRunner) -> None:
        """Offer the saved state to the collector, once, before its first cycle."""
        if runner.restored:
            return
        runner.restored = True
        if self.store is None:
            return
        common = runner.common
        self.metrics.state_stored(common.vendor, common.name)
        try:
            state, keyed = await self.store.load_saved_async(common.vendor, common.name)
        except Exception as exc:  # a damaged store must not stop the account from running
            self._failed(runner, "restore", exc)
            log.error(
                "saved state unreadable; starting afresh",
                vendor=common.vendor,
                account=common.name,
                exc_info=True,
            )
            return
        if state is None:
            return
        try:
            runner.collector.restore(state)
        except Exception as exc:  # a state file from another version must not stop us
            self._failed(runner, "restore", exc)
            log.error(
                "saved state unusable; starting afresh",
                vendor=common.vendor,
                account=common.name,
                exc_info=True,
            )
        else:
            if keyed:  # the store holds what was restored, key for key
                runner.collector.restored_from_store()
            log.info("state restored", vendor=common.vendor, account=common.name)

    async def save(self, runner: AccountRunner) -> None:
        """After a successful cycle; the write runs in the writer thread."""
        if self.store is None:
            return
        collector = runner.collector
        saved = collector.saved_state()  # on the loop: the state of a complete cycle
        if saved is None:
            return
        common = runner.common
        try:
            await self.store.save_async(common.vendor, common.name, saved, self.clock.time())
        except asyncio.CancelledError:
            collector.state_unsaved()  # it may or may not have been written: rewrite all
            raise
        except Exception as exc:  # a full disk must not stop the account; the next save retries
            collector.state_unsaved()
            self._log_save_failure(runner, exc, self._failed(runner, "save", exc))
        else:
            self.metrics.state_saved(common.vendor, common.name, self.clock.time())
            if self._logged.pop((common.vendor, common.name), None) is not None:
                log.info("state saved again", vendor=common.vendor, account=common.name)

    async def save_all(self, runners: list[AccountRunner]) -> None:
        """At shutdown: every state is taken first, between two awaits, so that each is
        the state of a complete cycle; then written in order, off the loop."""
        if self.store is None:
            return
        now = self.clock.time()
        states = [(r, r.collector.saved_state()) for r in runners]
        for runner, saved in states:
            if saved is None:
                continue
            common = runner.common
            try:
                await self.store.save_async(common.vendor, common.name, saved, now)
            except asyncio.CancelledError:
                runner.collector.state_unsaved()
                raise
            except Exception as exc:  # the other accounts are still saved
                runner.collector.state_unsaved()
                self._failed(runner, "save", exc)
                log.error(
                    "state not saved at shutdown",
                    vendor=common.vendor,
                    account=common.name,
                    exc_info=True,
                )

    def forget(self, vendor: str, account: str) -> None:
        """A removed account: its state goes (queued in the writer thread)."""
        if self.store is not None:
            self.store.delete_soon(vendor, account)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
