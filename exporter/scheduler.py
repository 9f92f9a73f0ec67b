"""One runner per account, and when it runs: cycles, deadlines, backoff and jitter.

Each account gets one asyncio task that runs a cycle, then sleeps for its interval (with
jitter) or for its backoff after a failure. A cycle's failures never reach another
account: each cycle catches everything its collector raises. What happens around a
cycle (restoring state first, saving it after a success, asking for a render) is the
caller's, through `CycleHooks`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import structlog

from .accounts import AccountCommon, AccountConfig
from .admission import Admission
from .clock import Clock
from .config import GlobalConfig
from .errors import UpstreamError
from .hints import for_cycle, for_failure
from .history import AccountHistory, Failure, safe_text
from .http import Upstream
from .logs import get_logger
from .parseworker import ParseWorker
from .selfmetrics import SelfMetrics
from .snapshot import Chunks
from .vendors.base import AccountCollector, CollectorContext, Vendor

log = get_logger(component="loop")

FIRST_CYCLE_SPREAD = 5.0  # seconds


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
    # False until saved state (--storage.path) was offered to the collector.
    restored: bool = False
    # This account's families as last encoded (None until its first render), and the
    # generation they were encoded at: shown until a render encodes a newer one.
    chunks: Chunks | None = field(default=None, repr=False)
    encoded_generation: int = -1
    # Bumped at the end of every cycle: the account needs encoding again, and a render
    # that encoded older families off the loop must not store them over newer ones.
    generation: int = 0
    # The last cycles, for the status page and the probe.
    history: AccountHistory = field(default_factory=AccountHistory, repr=False)
    # Whether a cycle of this runner succeeded: the account's last success may be the
    # runner's a reload replaced, whose counters this one has not taken over yet.
    succeeded: bool = False

    @property
    def common(self) -> AccountCommon:
        return self.account.common

    @property
    def needs_encoding(self) -> bool:
        """A cycle ended since its families were last encoded (or they never were)."""
        return self.encoded_generation != self.generation

    def encoded(self, chunks: Chunks, generation: int) -> None:
        """Keep an encoding of the families this account had at `generation`."""
        self.chunks, self.encoded_generation = chunks, generation


# The global settings `build_runner` (and the vendor's admission) build into a runner: a
# reload that changes one rebuilds every runner, or it would wait for a restart.
RUNNER_SETTINGS = (
    "label_value_limit",
    "label_value_max_length",
    "max_records_per_reply",
    "max_pages_per_cycle",
    "max_remembered_ids",
    "max_backoff",
    "max_concurrency",
    "max_concurrency_per_account",
    "max_body_bytes",
)


# Rejected records are logged when a reason first comes for an account, then at most
# this often, with how many since: the counter alone told nobody (probe 9), and a line
# per reply would flood the log.
REJECTIONS_LOGGED_EVERY = 3600.0


class RejectionLog:
    """The log lines of one account's rejected records (`CollectorContext.reject`)."""

    def __init__(self, log: structlog.stdlib.BoundLogger, clock: Clock) -> None:
        self._log, self._clock = log, clock
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def rejected(self, reason: str, count: int) -> None:
        self._since[reason] = self._since.get(reason, 0) + count
        now, last = self._clock.monotonic(), self._last.get(reason)
        if last is not None and now - last < REJECTIONS_LOGGED_EVERY:
            return
        self._last[reason] = now
        self._log.warning(
            "records_rejected",
            reason=reason,
            count=self._since.pop(reason),
            hint="session_exporter_records_rejected_total counts them; the account's page "
            "lists them by reason for each of its last cycles (logged again at most hourly)",
        )


def runner_settings(global_: GlobalConfig) -> tuple[object, ...]:
    return tuple(getattr(global_, name) for name in RUNNER_SETTINGS)


def build_runner(
    account: AccountConfig,
    vendor: Vendor,
    global_: GlobalConfig,
    *,
    session: aiohttp.ClientSession,
    admission: Admission,
    clock: Clock,
    metrics: SelfMetrics,
    started_at: float,
    parse_worker: ParseWorker | None = None,
) -> AccountRunner:
    """The collector of one account, with its context and its own `Upstream`."""
    common = account.common
    history = AccountHistory()
    log = get_logger(vendor=common.vendor, account=common.name)
    logged = RejectionLog(log, clock)

    def reject(reason: str, count: int = 1) -> None:
        metrics.record_rejected(common.vendor, common.name, reason, count)
        history.rejected(reason, count)
        logged.rejected(reason, count)

    ctx = CollectorContext(
        clock=clock,
        log=log,
        label_value_limit=global_.label_value_limit,
        reject=reject,
        started_at=started_at,
        label_value_max_length=global_.label_value_max_length,
        max_records_per_reply=global_.max_records_per_reply,
        max_pages_per_cycle=global_.max_pages_per_cycle,
        max_remembered_ids=global_.max_remembered_ids,
        max_backoff=global_.max_backoff,
        max_series_per_account=global_.max_series_per_account,
    )
    upstream = Upstream(
        session,
        vendor=common.vendor,
        account=common.name,
        timeout=common.timeout,
        admission=admission,
        metrics=metrics,
        account_semaphore=asyncio.Semaphore(global_.max_concurrency_per_account),
        max_body_bytes=global_.max_body_bytes,
        wall_time=clock.time,
        history=history,
        parse_worker=parse_worker,
    )
    return AccountRunner(account, vendor.new_collector(account, ctx), upstream, history=history)


async def _nothing(runner: AccountRunner) -> None:
    return None


@dataclass
class CycleHooks:
    """What runs around a cycle, owned by other layers."""

    # Before the cycle's collection (restoring saved state, once).
    before: Callable[[AccountRunner], Awaitable[None]] = _nothing
    # After a successful cycle, before the render that shows it (saving state).
    after_success: Callable[[AccountRunner], Awaitable[None]] = _nothing
    # After every cycle (asking for a render).
    after: Callable[[], None] = lambda: None


class Scheduler:
    """Runs cycles and keeps each account's timing; knows nothing of rendering or storage."""

    def __init__(
        self,
        global_: GlobalConfig,
        *,
        clock: Clock,
        metrics: SelfMetrics,
        rng: random.Random,
        hooks: CycleHooks,
    ) -> None:
        self.global_ = global_  # replaced on a config reload
        self.clock = clock
        self.metrics = metrics
        self.rng = rng
        self.hooks = hooks

    def start(self, runner: AccountRunner) -> None:
        key = runner.common.key
        runner.task = asyncio.create_task(self._run(runner), name=f"{key[0]}/{key[1]}")

    async def _run(self, runner: AccountRunner) -> None:
        # Spread first cycles so accounts sharing an interval do not fire together, but
        # never keep a freshly started exporter without data for long.
        spread = min(runner.common.interval * self.global_.jitter, FIRST_CYCLE_SPREAD)
        first = self.rng.uniform(0, spread)
        runner.history.next_poll = self.clock.time() + first
        await asyncio.sleep(first)
        while True:
            delay = await self.cycle(runner)
            await asyncio.sleep(delay)

    async def cycle(self, runner: AccountRunner) -> float:
        """One cycle of one account; the seconds until its next one."""
        await self.hooks.before(runner)
        common = runner.common
        health = self.metrics.account(common.key)
        started = self.clock.monotonic()
        runner.upstream.cycle_started = started
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
            failure = Failure(
                exc.operation, exc.reason, safe_text(exc.message), hint, self.clock.time()
            )
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
            failure = Failure(
                "collect",
                "internal",
                type(exc).__name__,
                for_failure(common.vendor, "collect", "internal", ""),
                self.clock.time(),
            )
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
            runner.succeeded = True
            health.last_success = self.clock.time()
            # Saved before the render that shows these values: saved counters may be
            # ahead of the last scrape, never behind it.
            await self.hooks.after_success(runner)
        health.up = runner.failures == 0
        health.collect_duration = self.clock.monotonic() - started
        health.first_cycle_done = True
        runner.generation += 1
        self.hooks.after()
        cycle = runner.history.end(
            self.clock.time(),
            health.collect_duration,
            failure,
            for_cycle(common.vendor, runner.history.current, failure),
        )
        delay = next_delay(common, self.global_, runner.failures, retry_after, self.rng)
        runner.history.next_poll = self.clock.time() + delay
        # With --log.level debug, every cycle: what a healthy account does, a line each.
        log.debug(
            "cycle done",
            vendor=common.vendor,
            account=common.name,
            up=health.up,
            seconds=round(health.collect_duration, 3),
            requests=cycle.request_count,
            records=cycle.records_parsed,
            rejected=sum(cycle.rejected.values()),
            next_in=round(delay, 1),
        )
        return delay

    def _cycle_timeout(self, common: AccountCommon, deadline: float) -> UpstreamError:
        self.metrics.upstream_failure(common.vendor, common.name, "cycle", "timeout")
        return UpstreamError(
            "cycle",
            "timeout",
            f"cycle did not finish within its {deadline:g}s deadline (cycle_timeout)",
        )
