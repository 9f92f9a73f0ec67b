"""The served snapshot: incremental, capped, stale-aware rendering of every account.

Each account's families are encoded once after each of its cycles (off the loop when the
render loop does it; a family unchanged since the last cycle keeps its bytes), and our own
series of each account once each time they change; then all are stitched under one header
per family, so an unchanged account costs a render nothing but copying. An account whose
data is older than its `stale_after` is left out; one that fails to encode, or holds more
series than `max_series_per_account`, is left out (and counted) until its next cycle; so
are the largest accounts while the whole exposition is over `max_exposition_bytes`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Iterable, Mapping
from contextlib import suppress

from prometheus_client.core import Metric

from .accounts import AccountCommon
from .clock import Clock
from .config import GlobalConfig
from .logs import get_logger
from .scheduler import AccountRunner
from .selfmetrics import SelfMetrics
from .snapshot import EMPTY, EMPTY_CHUNKS, Chunks, Snapshot, assemble, render_chunks

log = get_logger(component="loop")

RENDER_SPACING = 1.0  # seconds between two renders at most
LOOP_SLICE = 0.01  # seconds of taking families on the loop before letting scrapes in

Key = tuple[str, str]


class Renderer:
    def __init__(
        self,
        runners: Mapping[Key, AccountRunner],
        global_: GlobalConfig,
        *,
        clock: Clock,
        metrics: SelfMetrics,
    ) -> None:
        self.runners = runners  # the daemon's live mapping, read at each render
        self.global_ = global_  # replaced on a config reload
        self.clock = clock
        self.metrics = metrics
        self._snapshot: Snapshot = EMPTY
        # Readiness is published with the snapshot it was computed for: a render that
        # is still encoding must not make /-/ready say what /metrics does not show yet.
        self._ready = False
        # Renders are numbered as they begin. The one served is never replaced by one
        # begun before it: an off-loop render still encoding when a reload (or a test's
        # `collect_all_once`) renders at once must not bring older values back, which
        # Prometheus would read as counter resets.
        self._begun = 0
        self._shown = 0
        self._finished: tuple[int, bool] = (0, False)  # the last render's number, readiness
        self._dirty = asyncio.Event()
        # Our own series of each account (session_exporter_up, its request counters...),
        # encoded, with the `SelfMetrics.version` they were encoded at: like the
        # accounts' own families, re-encoded only when they change.
        self._own: dict[Key, tuple[Hashable, Chunks]] = {}
        # Accounts the last render left out for the exposition budget: logged once when
        # they go out and once when they come back, not at every render (once a second).
        self._over_budget: set[Key] = set()
        # Why each account its last render left out is missing from /metrics, for the
        # status page: the log says it once, and the page said "up" with 0 series.
        self.left_out: dict[Key, str] = {}

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @snapshot.setter
    def snapshot(self, snapshot: Snapshot) -> None:
        """Serve the snapshot the last render returned, unless one begun after it is
        served already."""
        number, ready = self._finished
        if number < self._shown:
            return
        self._snapshot, self._shown, self._ready = snapshot, number, ready

    @property
    def over_budget(self) -> frozenset[Key]:
        """The accounts the last render left out for `max_exposition_bytes`."""
        return frozenset(self._over_budget)

    # -- readiness and staleness ---------------------------------------------------------

    def ready(self) -> bool:
        """Every account had finished its first cycle when the served snapshot was made
        (set when that snapshot is stored, not when its render began)."""
        return self._ready

    def _all_first_cycles_done(self) -> bool:
        return all(self.metrics.account(key).first_cycle_done for key in self.runners)

    def is_fresh(self, runner: AccountRunner) -> bool:
        """Its last success is its own, and recent. A runner a reload made shows nothing
        until its first cycle: before, it showed the zeros of counters not yet restored
        (a drop to 0 and back, which Prometheus takes for a reset, counting it all again)."""
        last = self.metrics.account(runner.common.key).last_success
        return (
            runner.succeeded
            and last is not None
            and self.clock.time() - last <= runner.common.stale_after
        )

    def seconds_until_next_stale(self) -> float | None:
        now, deadlines = self.clock.time(), []
        for key, runner in self.runners.items():
            last = self.metrics.account(key).last_success
            if last is not None and now - last <= runner.common.stale_after:
                deadlines.append(last + runner.common.stale_after - now)
        return min(deadlines) + 0.01 if deadlines else None

    def families(self) -> Iterable[Metric]:
        """Every family the snapshot shows, unencoded (for tests and tools)."""
        for runner in self.runners.values():
            if self.is_fresh(runner):
                yield from runner.collector.families()
        yield from self.metrics.families()

    # -- rendering -----------------------------------------------------------------------

    def render_now(self) -> Snapshot:
        """Encode only the accounts whose data changed since the last render."""
        begun = self._begin()
        for runner in self.runners.values():
            if self.is_fresh(runner) and runner.needs_encoding:
                result = encode(self._families_or_none(runner), runner.chunks)
                runner.encoded(self._checked(runner, result), runner.generation)
        kept = self._within_budget(self._parts())
        pending = self._own_pending()  # after the budget: its drops show at once
        self._store_own(pending, [render_chunks(f) for _, _, f in pending])
        shared = render_chunks(self.metrics.shared_families())
        return self._finish(begun, assemble([*kept, shared, *self._own_parts()]))

    async def render_off_loop(self) -> Snapshot:
        """`render_now`, with the encoding and gzip in a worker thread so that scrapes
        are served meanwhile. Families are taken on the loop (collectors are not
        thread-safe), for `LOOP_SLICE` at a time (thousands of accounts ending their
        cycles together take seconds); each slice's families are then encoded in the
        thread, the loop free meanwhile. A slice at a time, not all at once, so that
        few families are alive together: those of hundreds of accounts, held for a
        whole render, made the garbage collector's longest pauses. An account whose
        cycle ends meanwhile is not stored (its generation moved on): this snapshot
        shows its last encoding, and the next render takes it."""
        begun = self._begin()
        batch: list[tuple[AccountRunner, int, list[Metric] | None, Chunks | None]] = []
        slices = _LoopSlices()
        for runner in list(self.runners.values()):
            if self.is_fresh(runner) and runner.needs_encoding:
                batch.append(
                    (runner, runner.generation, self._families_or_none(runner), runner.chunks)
                )
                if slices.due():
                    await self._encode(batch)
                    batch = []
                    slices.restart()
        await self._encode(batch)
        kept = self._within_budget(self._parts())
        # After the budget, so that its drops show at once. Account by account, giving
        # the loop back every LOOP_SLICE: the first cycles of 2,000 accounts change
        # hundreds of accounts' own series between two renders (75-89 ms in one piece).
        changed = self._own_changed()
        counted = self.metrics.account_counts(changed)
        own: list[tuple[Key, Hashable, list[Metric]]] = []
        slices = _LoopSlices()
        for key, version in changed.items():
            own.append((key, version, self.metrics.families_of(key, counted[key])))
            await slices.tick()
        shared = self.metrics.shared_families()
        self._store_own(own, await asyncio.to_thread(lambda: [render_chunks(f) for _, _, f in own]))
        own_parts = self._own_parts()
        return self._finish(
            begun,
            await asyncio.to_thread(lambda: assemble([*kept, render_chunks(shared), *own_parts])),
        )

    async def _encode(
        self, batch: list[tuple[AccountRunner, int, list[Metric] | None, Chunks | None]]
    ) -> None:
        """Encode these families in the worker thread; keep each result whose account
        is still at the generation its families were taken at."""
        if not batch:
            return
        encoded = await asyncio.to_thread(lambda: [encode(f, last) for _, _, f, last in batch])
        for (runner, generation, _, _), result in zip(batch, encoded, strict=True):
            if runner.generation == generation:
                runner.encoded(self._checked(runner, result), generation)

    def _begin(self) -> tuple[int, bool]:
        """A render's number, and whether every account had finished its first cycle
        when it began (what its snapshot can show)."""
        self._begun += 1
        return self._begun, self._all_first_cycles_done()

    def _finish(self, begun: tuple[int, bool], snapshot: Snapshot) -> Snapshot:
        self._finished = begun  # read by the `snapshot` setter, which the caller calls next
        return snapshot

    def _own_pending(self) -> list[tuple[Key, Hashable, list[Metric]]]:
        """Our own series of the accounts whose ones changed since they were encoded
        (taken on the loop), and the version they are at."""
        changed = self._own_changed()
        families = self.metrics.account_families(changed)
        return [(key, version, families[key]) for key, version in changed.items()]

    def _own_changed(self) -> dict[Key, Hashable]:
        """The accounts whose own series changed since they were encoded, and the
        version they are at now; those of accounts gone are forgotten."""
        keys = self.metrics.accounts()
        for gone in self._own.keys() - set(keys):
            del self._own[gone]
        changed: dict[Key, Hashable] = {}
        for key in keys:
            version, cached = self.metrics.version(key), self._own.get(key)
            if cached is None or cached[0] != version:
                changed[key] = version
        return changed

    def _store_own(
        self, pending: list[tuple[Key, Hashable, list[Metric]]], encoded: list[Chunks]
    ) -> None:
        for (key, version, _), chunks in zip(pending, encoded, strict=True):
            self._own[key] = (version, chunks)

    def _own_parts(self) -> list[Chunks]:
        # In the order of `SelfMetrics.accounts`, as `SelfMetrics.families` shows them.
        return [self._own[key][1] for key in sorted(self._own)]

    def _parts(self) -> list[tuple[Key, Chunks]]:
        """Each fresh account's last encoding, though a newer cycle may wait for the
        next render: an account never vanishes from a snapshot between the two."""
        return [
            (key, runner.chunks)
            for key, runner in self.runners.items()
            if self.is_fresh(runner)
            and runner.chunks is not None
            and runner.chunks is not EMPTY_CHUNKS
        ]

    def _within_budget(self, parts: list[tuple[Key, Chunks]]) -> list[Chunks]:
        """Leave out the largest accounts while the exposition is over its budget."""
        budget = self.global_.max_exposition_bytes
        total = sum(c.size for _, c in parts)
        left_out: set[Key] = set()
        for key, chunks in sorted(parts, key=lambda p: p[1].size, reverse=True):
            if total <= budget:
                break
            parts.remove((key, chunks))
            total -= chunks.size
            left_out.add(key)
            self.metrics.render_dropped(*key, "exposition_too_large")
            self.left_out[key] = "left out of /metrics: exposition_too_large"
            if key not in self._over_budget:
                log.error(
                    "account left out of /metrics",
                    vendor=key[0],
                    account=key[1],
                    reason="exposition_too_large",
                    bytes=chunks.size,
                    hint="raise global.max_exposition_bytes or reduce this account's labels",
                )
        shown = {key for key, _ in parts}
        for key in self._over_budget - left_out:
            if key in shown:
                self.left_out.pop(key, None)
                log.info(
                    "account back in /metrics",
                    vendor=key[0],
                    account=key[1],
                    reason="exposition_too_large",
                )
        self._over_budget = left_out
        return [chunks for _, chunks in parts]

    def _families_or_none(self, runner: AccountRunner) -> list[Metric] | None:
        """The account's families, or None (counted, logged) when it cannot give them
        or gives more series than `max_series_per_account`."""
        common = runner.common
        limit = self.global_.max_series_per_account
        try:
            families = list(runner.collector.families())
        except Exception as exc:  # one broken account must not freeze every other one
            self._left_out(common, "render_failed", error=type(exc).__name__)
            return None
        series = sum(len(f.samples) for f in families)
        if series > limit:
            self._left_out(
                common,
                "too_many_series",
                series=series,
                hint=f"over global.max_series_per_account ({limit})",
            )
            return None
        self.left_out.pop((common.vendor, common.name), None)
        return families

    def _checked(self, runner: AccountRunner, result: Chunks | Exception) -> Chunks:
        if isinstance(result, Exception):
            self._left_out(runner.common, "render_failed", error=type(result).__name__)
            return EMPTY_CHUNKS
        return result

    def _left_out(self, common: AccountCommon, reason: str, **details: object) -> None:
        self.metrics.render_dropped(common.vendor, common.name, reason)
        told = ", ".join(f"{k} {v}" for k, v in details.items() if k != "hint")
        why = f"left out of /metrics: {reason}" + (f" ({told})" if told else "")
        if "hint" in details:
            why += f"; {details['hint']}"
        self.left_out[common.vendor, common.name] = why
        log.error(
            "account left out of /metrics",
            vendor=common.vendor,
            account=common.name,
            reason=reason,
            **details,
        )

    # -- the render loop -----------------------------------------------------------------

    def request(self) -> None:
        self._dirty.set()

    async def run(self) -> None:
        """Coalesce render requests: many accounts finishing together cost one render."""
        while True:
            # Waking on the timeout means an account just went stale: drop its series.
            # Not `wait_for`: on Python 3.11, a cancel that came as the event was set was
            # swallowed, and the next wait (with no timeout due) hung shutdown for good.
            with suppress(TimeoutError):
                async with asyncio.timeout(self.seconds_until_next_stale()):
                    await self._dirty.wait()
            self._dirty.clear()
            try:
                self.snapshot = await self.render_off_loop()
            except Exception:
                log.error("rendering failed; serving the previous snapshot", exc_info=True)
            # Cycles ending in the meantime share the next render: at most one a second.
            await asyncio.sleep(RENDER_SPACING)


class _LoopSlices:
    """Work on the loop in slices: `tick` after each step gives the loop back once
    `LOOP_SLICE` has passed since it last did (or the caller does, once `due`, and then
    calls `restart`)."""

    def __init__(self) -> None:
        self.restart()

    def due(self) -> bool:
        return time.perf_counter() > self._end

    def restart(self) -> None:
        self._end = time.perf_counter() + LOOP_SLICE

    async def tick(self) -> None:
        if self.due():
            await asyncio.sleep(0)
            self.restart()


def encode(families: list[Metric] | None, previous: Chunks | None = None) -> Chunks | Exception:
    """Pure, so it may run in a worker thread; failures are returned, counted by the
    caller on the loop. `previous`: the account's last encoding, whose unchanged
    families are reused."""
    if families is None:
        return EMPTY_CHUNKS
    try:
        return render_chunks(families, previous)
    except Exception as exc:  # a value that cannot be encoded, whatever let it in
        return exc
