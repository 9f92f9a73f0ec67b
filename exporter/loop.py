"""The collector loop: every account on its own schedule, and the snapshot they feed.

Each account gets one asyncio task that runs a cycle, then sleeps for its interval (with
jitter) or for its backoff after a failure. A cycle's failures never reach another
account: each runner catches everything its collector raises.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client.core import Metric

from .clock import Clock, SystemClock
from .config import AccountCommon, Config, GlobalConfig
from .errors import UpstreamError
from .hints import for_cycle, for_failure
from .history import AccountHistory, Failure, safe_text
from .http import Upstream, new_client_session
from .logs import get_logger
from .selfmetrics import SelfMetrics
from .snapshot import EMPTY, EMPTY_CHUNKS, Chunks, Snapshot, assemble, render_chunks
from .storage import StateStore
from .vendors.base import AccountCollector, AccountConfig, CollectorContext, Vendor

log = get_logger(component="loop")

FIRST_CYCLE_SPREAD = 5.0  # seconds
RENDER_SPACING = 1.0  # seconds between two renders at most


def next_delay(
    common: AccountCommon,
    global_: GlobalConfig,
    failures: int,
    retry_after: float | None,
    rng: random.Random,
) -> float:
    """Seconds until the next cycle: the interval with jitter, or a capped backoff."""
    if failures == 0:
        spread = common.interval * global_.jitter
        return max(1.0, common.interval + rng.uniform(-spread, spread))  # never a busy loop
    backoff: float = min(global_.max_backoff, common.interval * 2.0 ** (failures - 1))
    if retry_after is not None:
        backoff = max(backoff, min(retry_after, global_.max_backoff))
    return backoff


@dataclass
class AccountRunner:
    account: AccountConfig
    collector: AccountCollector
    upstream: Upstream
    failures: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    # This account's families, encoded; None after each cycle until the next render.
    chunks: Chunks | None = field(default=None, repr=False)
    # Bumped at the end of every cycle: a render that encoded older families off the
    # loop must not store them over newer ones.
    generation: int = 0
    # The last cycles, for the status page and the probe.
    history: AccountHistory = field(default_factory=AccountHistory, repr=False)

    @property
    def common(self) -> AccountCommon:
        return self.account.common


class Daemon:
    def __init__(
        self,
        config: Config,
        vendors: Mapping[str, Vendor],
        *,
        clock: Clock | None = None,
        metrics: SelfMetrics | None = None,
        seed: int | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.config = config
        self.vendors = vendors
        self.clock: Clock = clock or SystemClock()
        self.metrics = metrics or SelfMetrics()
        self.started_at = self.clock.time()
        self.snapshot: Snapshot = EMPTY
        self.runners: dict[tuple[str, str], AccountRunner] = {}
        self._rng = random.Random(seed)
        self._session: aiohttp.ClientSession | None = None
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._dirty = asyncio.Event()
        self._renderer: asyncio.Task[None] | None = None
        self._scheduling = False
        self._snapshot_ready = False
        self.store = store

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, schedule: bool = True) -> None:
        """Open the shared HTTP session and create a runner per account.

        With ``schedule=False`` no background tasks start: tests then drive cycles with
        `collect_once` and time with a fake clock.
        """
        self._session = new_client_session()
        self._scheduling = schedule
        self.metrics.reload_success_time = self.clock.time()
        for account in self.config.accounts:
            self._add(account)
        self.snapshot = self.render_now()
        if schedule:
            self._renderer = asyncio.create_task(self._render_loop(), name="renderer")

    async def stop(self) -> None:
        tasks = [r.task for r in self.runners.values() if r.task is not None]
        if self._renderer is not None:
            tasks.append(self._renderer)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for runner in self.runners.values():
            self._save(runner)  # between awaits, so every collector is consistent
        if self._session is not None:
            await self._session.close()
        if self.store is not None:
            self.store.close()

    def apply_config(self, config: Config) -> None:
        """Swap in a new config: unchanged accounts keep their state and schedule."""
        old, new = self.runners, {a.common.key: a for a in config.accounts}
        for key in [k for k in old if k not in new or old[k].account != new[k]]:
            runner = self.runners.pop(key)
            if runner.task is not None:
                runner.task.cancel()
            if key not in new:
                self.metrics.forget(key)
                if self.store is not None:
                    self.store.delete(*key)
        self.config = config
        for key, account in new.items():
            if key not in self.runners:
                self._add(account)
        self.metrics.reload_ok = True
        self.metrics.reload_success_time = self.clock.time()
        self.snapshot = self.render_now()  # removed accounts vanish from the next scrape

    def config_rejected(self) -> None:
        """A new config was refused: the old one stays, and the self-metric says so."""
        self.metrics.reload_ok = False
        self.snapshot = self.render_now()  # the next scrape must already say so

    def _add(self, account: AccountConfig) -> None:
        common = account.common
        vendor = self.vendors[common.vendor]
        global_ = self.config.global_
        assert self._session is not None, "start() first"
        key = common.key
        history = AccountHistory()

        def reject(reason: str, count: int = 1) -> None:
            self.metrics.record_rejected(common.vendor, common.name, reason, count)
            history.rejected(reason, count)

        ctx = CollectorContext(
            clock=self.clock,
            log=get_logger(vendor=common.vendor, account=common.name),
            label_value_limit=global_.label_value_limit,
            reject=reject,
            started_at=self.started_at,
            label_value_max_length=global_.label_value_max_length,
            max_records_per_reply=global_.max_records_per_reply,
            max_pages_per_cycle=global_.max_pages_per_cycle,
            max_remembered_ids=global_.max_remembered_ids,
        )
        semaphore = self._semaphores.setdefault(
            common.vendor, asyncio.Semaphore(global_.max_concurrency)
        )
        upstream = Upstream(
            self._session,
            vendor=common.vendor,
            account=common.name,
            timeout=common.timeout,
            semaphore=semaphore,
            metrics=self.metrics,
            max_body_bytes=global_.max_body_bytes,
            wall_time=self.clock.time,
            history=history,
        )
        runner = AccountRunner(account, vendor.new_collector(account, ctx), upstream,
                               history=history)
        self._restore(runner)
        self.metrics.account(key)
        self.runners[key] = runner
        if self._scheduling:
            runner.task = asyncio.create_task(self._run(runner), name=f"{key[0]}/{key[1]}")

    # -- cycles ----------------------------------------------------------------------

    async def _run(self, runner: AccountRunner) -> None:
        # Spread first cycles so accounts sharing an interval do not fire together, but
        # never keep a freshly started exporter without data for long.
        spread = min(runner.common.interval * self.config.global_.jitter, FIRST_CYCLE_SPREAD)
        first = self._rng.uniform(0, spread)
        runner.history.next_poll = self.clock.time() + first
        await asyncio.sleep(first)
        while True:
            delay = await self.cycle(runner)
            await asyncio.sleep(delay)

    async def collect_once(self, vendor: str, name: str) -> bool:
        """Run one cycle of one account now; True if it succeeded. For tests and tools."""
        runner = self.runners[(vendor, name)]
        await self.cycle(runner)
        self.snapshot = self.render_now()
        return runner.failures == 0

    async def collect_all_once(self) -> None:
        await asyncio.gather(*(self.cycle(r) for r in list(self.runners.values())))
        self.snapshot = self.render_now()

    async def cycle(self, runner: AccountRunner) -> float:
        common = runner.common
        health = self.metrics.account(common.key)
        started = self.clock.monotonic()
        retry_after: float | None = None
        health.last_attempt = self.clock.time()
        runner.history.begin(health.last_attempt)
        failure: Failure | None = None
        deadline = common.cycle_deadline
        try:
            try:
                async with asyncio.timeout(deadline):
                    await runner.collector.collect(runner.upstream)
            except TimeoutError:
                # What the cycle applied before the deadline stays (feeds keep their
                # progress); the rest waits for the next cycle.
                raise self._cycle_timeout(common, deadline) from None
        except UpstreamError as exc:
            runner.failures += 1
            retry_after = exc.retry_after
            hint = for_failure(common.vendor, exc.operation, exc.reason, exc.message)
            failure = Failure(exc.operation, exc.reason, safe_text(exc.message), hint,
                              self.clock.time())
            log.warning(
                "collection failed",
                vendor=common.vendor,
                account=common.name,
                operation=exc.operation,
                reason=exc.reason,
                error=exc.message,
                consecutive_failures=runner.failures,
                hint=hint,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours must not take the loop down
            runner.failures += 1
            self.metrics.upstream_failure(common.vendor, common.name, "collect", "internal")
            failure = Failure("collect", "internal", type(exc).__name__,
                              for_failure(common.vendor, "collect", "internal", ""),
                              self.clock.time())
            log.error(
                "collection crashed",
                vendor=common.vendor,
                account=common.name,
                error=type(exc).__name__,
                exc_info=True,
            )
        else:
            if runner.failures:
                log.info("collection recovered", vendor=common.vendor, account=common.name)
            runner.failures = 0
            health.last_success = self.clock.time()
            # Saved before the render that shows these values: saved counters may be
            # ahead of the last scrape, never behind it. The write runs off the loop.
            await self._save_off_loop(runner)
        health.up = runner.failures == 0
        health.collect_duration = self.clock.monotonic() - started
        health.first_cycle_done = True
        runner.chunks = None
        runner.generation += 1
        self.request_render()
        runner.history.end(self.clock.time(), health.collect_duration, failure,
                           for_cycle(common.vendor, runner.history.current, failure))
        delay = next_delay(common, self.config.global_, runner.failures, retry_after, self._rng)
        runner.history.next_poll = self.clock.time() + delay
        return delay

    def _cycle_timeout(self, common: AccountCommon, deadline: float) -> UpstreamError:
        self.metrics.upstream_failure(common.vendor, common.name, "cycle", "timeout")
        return UpstreamError("cycle", "timeout",
                             f"cycle did not finish within its {deadline:g}s deadline "
                             "(cycle_timeout)")

    # -- durable state -----------------------------------------------------------------

    def _restore(self, runner: AccountRunner) -> None:
        if self.store is None:
            return
        common = runner.common
        state = self.store.load(common.vendor, common.name)
        if state is None:
            return
        try:
            runner.collector.restore(state)
        except Exception:  # a state file from another version must not stop us
            log.error("saved state unusable; starting afresh", vendor=common.vendor,
                      account=common.name, exc_info=True)
        else:
            log.info("state restored", vendor=common.vendor, account=common.name)

    async def _save_off_loop(self, runner: AccountRunner) -> None:
        if self.store is None:
            return
        state = runner.collector.state()  # on the loop: the state of a complete cycle
        if state is not None:
            common = runner.common
            await self.store.save_async(common.vendor, common.name, state, self.clock.time())

    def _save(self, runner: AccountRunner) -> None:
        if self.store is None:
            return
        state = runner.collector.state()
        if state is not None:
            common = runner.common
            self.store.save(common.vendor, common.name, state, self.clock.time())

    # -- rendering -------------------------------------------------------------------

    def ready(self) -> bool:
        """Every account has finished its first cycle, and the served snapshot shows it."""
        return self._snapshot_ready

    def _all_first_cycles_done(self) -> bool:
        return all(self.metrics.account(key).first_cycle_done for key in self.runners)

    def is_fresh(self, runner: AccountRunner) -> bool:
        last = self.metrics.account(runner.common.key).last_success
        return last is not None and self.clock.time() - last <= runner.common.stale_after

    def families(self) -> Iterable[Metric]:
        for runner in self.runners.values():
            if self.is_fresh(runner):
                yield from runner.collector.families()
        yield from self.metrics.families()

    def render_now(self) -> Snapshot:
        """Encode only the accounts whose data changed since the last render.

        One account can never stop the others from rendering: an account whose families
        fail to encode, or hold more series than `max_series_per_account`, is left out
        (and counted) until its next cycle; so are the largest accounts while the whole
        exposition is over `max_exposition_bytes`."""
        self._snapshot_ready = self._all_first_cycles_done()
        for runner in self.runners.values():
            if self.is_fresh(runner) and runner.chunks is None:
                runner.chunks = self._checked(runner, _encode(self._families_or_none(runner)))
        parts = [(key, r.chunks) for key, r in self.runners.items()
                 if self.is_fresh(r) and r.chunks is not None and r.chunks is not EMPTY_CHUNKS]
        kept = self._within_budget(parts)
        return assemble([*kept, render_chunks(self.metrics.families())])

    def _within_budget(self, parts: list[tuple[tuple[str, str], Chunks]]) -> list[Chunks]:
        """Leave out the largest accounts while the exposition is over its budget."""
        budget = self.config.global_.max_exposition_bytes
        total = sum(c.size for _, c in parts)
        for key, chunks in sorted(parts, key=lambda p: p[1].size, reverse=True):
            if total <= budget:
                break
            parts.remove((key, chunks))
            total -= chunks.size
            self.metrics.render_dropped(*key, "exposition_too_large")
            log.error("account left out of /metrics", vendor=key[0], account=key[1],
                      reason="exposition_too_large", bytes=chunks.size,
                      hint="raise global.max_exposition_bytes or reduce this account's "
                           "labels")
        return [chunks for _, chunks in parts]

    def _families_or_none(self, runner: AccountRunner) -> list[Metric] | None:
        """The account's families, or None (counted, logged) when it cannot give them
        or gives more series than `max_series_per_account`."""
        common = runner.common
        limit = self.config.global_.max_series_per_account
        try:
            families = list(runner.collector.families())
        except Exception as exc:  # one broken account must not freeze every other one
            self._left_out(common, "render_failed", error=type(exc).__name__)
            return None
        series = sum(len(f.samples) for f in families)
        if series > limit:
            self._left_out(common, "too_many_series", series=series,
                           hint=f"over global.max_series_per_account ({limit})")
            return None
        return families

    def _checked(self, runner: AccountRunner, result: Chunks | Exception) -> Chunks:
        if isinstance(result, Exception):
            self._left_out(runner.common, "render_failed", error=type(result).__name__)
            return EMPTY_CHUNKS
        return result

    def _left_out(self, common: AccountCommon, reason: str, **details: object) -> None:
        self.metrics.render_dropped(common.vendor, common.name, reason)
        log.error("account left out of /metrics", vendor=common.vendor, account=common.name,
                  reason=reason, **details)

    async def render_off_loop(self) -> Snapshot:
        """`render_now`, with the encoding and gzip in a worker thread so that scrapes
        are served meanwhile. Families are taken on the loop (collectors are not
        thread-safe); only the pure encoding of those copies runs in the thread."""
        self._snapshot_ready = self._all_first_cycles_done()
        pending: list[tuple[AccountRunner, int, list[Metric] | None]] = []
        for runner in self.runners.values():
            if self.is_fresh(runner) and runner.chunks is None:
                pending.append((runner, runner.generation, self._families_or_none(runner)))
        encoded = await asyncio.to_thread(lambda: [_encode(f) for _, _, f in pending])
        for (runner, generation, _), result in zip(pending, encoded, strict=True):
            if runner.generation == generation:
                runner.chunks = self._checked(runner, result)
        parts = [(key, r.chunks) for key, r in self.runners.items()
                 if self.is_fresh(r) and r.chunks is not None and r.chunks is not EMPTY_CHUNKS]
        kept = self._within_budget(parts)
        own = list(self.metrics.families())  # after the budget: its drops show at once
        return await asyncio.to_thread(lambda: assemble([*kept, render_chunks(own)]))

    def request_render(self) -> None:
        self._dirty.set()

    def _seconds_until_next_stale(self) -> float | None:
        now, deadlines = self.clock.time(), []
        for key, runner in self.runners.items():
            last = self.metrics.account(key).last_success
            if last is not None and now - last <= runner.common.stale_after:
                deadlines.append(last + runner.common.stale_after - now)
        return min(deadlines) + 0.01 if deadlines else None

    async def _render_loop(self) -> None:
        """Coalesce render requests: many accounts finishing together cost one render."""
        while True:
            # Waking on the timeout means an account just went stale: drop its series.
            with suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self._seconds_until_next_stale())
            self._dirty.clear()
            try:
                self.snapshot = await self.render_off_loop()
            except Exception:
                log.error("rendering failed; serving the previous snapshot", exc_info=True)
            # Cycles ending in the meantime share the next render: at most one a second.
            await asyncio.sleep(RENDER_SPACING)


def _encode(families: list[Metric] | None) -> Chunks | Exception:
    """Pure, so it may run in a worker thread; failures are returned, counted by the
    caller on the loop."""
    if families is None:
        return EMPTY_CHUNKS
    try:
        return render_chunks(families)
    except Exception as exc:  # a value that cannot be encoded, whatever let it in
        return exc


def describe(config: Config) -> dict[str, Any]:
    """What the landing page shows of the config: names only, never credentials."""
    accounts: dict[str, list[str]] = {}
    for account in config.accounts:
        accounts.setdefault(account.common.vendor, []).append(account.common.name)
    return accounts
