"""The daemon: the accounts of one config, composed of the layers that serve them.

`scheduler` runs each account's cycles on its own timing, `persistence` restores and
saves their state (--storage.path), `render` turns their families into the snapshot that
scrapes serve (readiness and staleness included). The daemon only wires them together
and swaps accounts on a config reload.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping

import aiohttp
from prometheus_client.core import Metric

from . import scrub
from .admission import Admission
from .clock import Clock, SystemClock
from .config import Config
from .http import new_client_session
from .logs import get_logger
from .parseworker import ParseWorker
from .persistence import Persistence
from .render import RENDER_SPACING, Renderer
from .scheduler import (
    FIRST_CYCLE_SPREAD,
    AccountRunner,
    CycleHooks,
    Scheduler,
    build_runner,
    next_delay,
    runner_settings,
)
from .selfmetrics import SelfMetrics
from .snapshot import Snapshot
from .storage import StateStore
from .vendors.base import AccountConfig, Vendor

# How long `stop` waits for cancelled tasks to end before it saves state regardless.
STOP_GRACE = 10.0
# A refused reload's reason on the status page: a field path and what is wrong fit.
RELOAD_ERROR_MAX = 300

log = get_logger(component="loop")

# Re-exported: the status page, the probe and tests import these from here.
__all__ = ["FIRST_CYCLE_SPREAD", "RENDER_SPACING", "AccountRunner", "Daemon", "next_delay"]


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
        self.store = store
        self.runners: dict[tuple[str, str], AccountRunner] = {}
        self.persistence = Persistence(store, self.clock, self.metrics)
        self.renderer = Renderer(
            self.runners, config.global_, clock=self.clock, metrics=self.metrics
        )
        self.scheduler = Scheduler(
            config.global_,
            clock=self.clock,
            metrics=self.metrics,
            rng=random.Random(seed),  # noqa: S311 - jitter, no secret
            hooks=CycleHooks(
                before=self.persistence.restore,
                after_success=self.persistence.save,
                after=self.renderer.request,
            ),
        )
        self._session: aiohttp.ClientSession | None = None
        # Big replies are parsed in this child process (started with the first one).
        self.parse_worker = ParseWorker()
        self._admissions: dict[str, Admission] = {}
        self._render_task: asyncio.Task[None] | None = None
        self._scheduling = False

    # -- what scrapes and the status page read ---------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self.renderer.snapshot

    @snapshot.setter
    def snapshot(self, snapshot: Snapshot) -> None:
        self.renderer.snapshot = snapshot

    def ready(self) -> bool:
        """Every account has finished its first cycle, and the served snapshot shows it."""
        return self.renderer.ready()

    def is_fresh(self, runner: AccountRunner) -> bool:
        return self.renderer.is_fresh(runner)

    def families(self) -> Iterable[Metric]:
        return self.renderer.families()

    def render_now(self) -> Snapshot:
        return self.renderer.render_now()

    async def render_off_loop(self) -> Snapshot:
        return await self.renderer.render_off_loop()

    def request_render(self) -> None:
        self.renderer.request()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, schedule: bool = True) -> None:
        """Open the shared HTTP session, create a runner per account and restore its
        saved state (off the loop).

        With ``schedule=False`` no background tasks start: tests then drive cycles with
        `collect_once` and time with a fake clock.
        """
        self._session = new_client_session()
        self._scheduling = False  # runners start below, once every state is restored
        self.metrics.reload_success_time = self.clock.time()
        for account in self.config.accounts:
            self._add(account)
        await asyncio.gather(*(self.persistence.restore(r) for r in self.runners.values()))
        self._scheduling = schedule
        if schedule:
            for runner in self.runners.values():
                self.scheduler.start(runner)
        self.snapshot = self.render_now()
        if schedule:
            self._render_task = asyncio.create_task(self.renderer.run(), name="renderer")

    async def stop(self) -> None:
        tasks = [r.task for r in self.runners.values() if r.task is not None]
        if self._render_task is not None:
            tasks.append(self._render_task)
        for task in tasks:
            task.cancel()
        # Bounded: a task that ignores its cancel must not keep the state from being saved
        # and the store's lock from being let go (the process exits after this anyway).
        _, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE) if tasks else (set(), set())
        if stuck:
            log.error(
                "tasks did not stop",
                tasks=sorted(t.get_name() for t in stuck),
                grace_seconds=STOP_GRACE,
            )
        await self.persistence.save_all(list(self.runners.values()))
        if self._session is not None:
            await self._session.close()
        await self.parse_worker.close()
        self.persistence.close()

    def apply_config(self, config: Config) -> None:
        """Swap in a new config: unchanged accounts keep their state and schedule. New
        accounts restore their saved state at the start of their first cycle. A change of
        a global setting that runners are built with (`RUNNER_SETTINGS`) changes them all."""
        old, new = self.runners, {a.common.key: a for a in config.accounts}
        # A global setting built into every runner (max_remembered_ids, the label and
        # body limits...) changes every account, as its own settings would: kept, the
        # runners went on with the old value until a restart.
        rebuild = runner_settings(self.config.global_) != runner_settings(config.global_)
        if rebuild:
            self._admissions.clear()  # max_concurrency too
        for key in [k for k in old if rebuild or k not in new or old[k].account != new[k]]:
            runner = self.runners.pop(key)
            if runner.task is not None:
                runner.task.cancel()
            if key not in new:
                self.metrics.forget(key)
                self.persistence.forget(*key)
        self.config = config
        self.scheduler.global_ = self.renderer.global_ = config.global_
        for key, account in new.items():
            if key not in self.runners:
                self._add(account)
        self.metrics.reload_ok = True
        self.metrics.reload_error = ""
        self.metrics.reload_success_time = self.clock.time()
        self.snapshot = self.render_now()  # removed accounts vanish from the next scrape

    def config_rejected(self, reason: str = "") -> None:
        """A new config was refused: the old one stays, and the self-metric says so, and
        the status page says why (an operator's first question)."""
        self.metrics.reload_ok = False
        self.metrics.reload_error = scrub.excerpt(reason, RELOAD_ERROR_MAX)
        self.snapshot = self.render_now()  # the next scrape must already say so

    def _add(self, account: AccountConfig) -> None:
        common = account.common
        global_ = self.config.global_
        if self._session is None:
            raise RuntimeError("start() first")
        admission = self._admissions.setdefault(common.vendor, Admission(global_.max_concurrency))
        runner = build_runner(
            account,
            self.vendors[common.vendor],
            global_,
            session=self._session,
            admission=admission,
            clock=self.clock,
            metrics=self.metrics,
            # An account a reload adds or changes starts afresh now, not at the process
            # start: it re-counted every session that had ended since then.
            started_at=self.clock.time(),
            parse_worker=self.parse_worker,
        )
        self.metrics.account(common.key)
        self.runners[common.key] = runner
        if self._scheduling:
            self.scheduler.start(runner)

    # -- cycles ----------------------------------------------------------------------

    async def cycle(self, runner: AccountRunner) -> float:
        """One cycle of one account (restoring its state first if not yet done)."""
        return await self.scheduler.cycle(runner)

    async def collect_once(self, vendor: str, name: str) -> bool:
        """Run one cycle of one account now; True if it succeeded. For tests and tools."""
        runner = self.runners[(vendor, name)]
        await self.cycle(runner)
        self.snapshot = self.render_now()
        return runner.failures == 0

    async def collect_all_once(self) -> None:
        await asyncio.gather(*(self.cycle(r) for r in list(self.runners.values())))
        self.snapshot = self.render_now()
