"""Many accounts: one `Daemon.collect_all_once()` over 200 accounts (67 Glance, 67
SecureVideo, 66 Rescue) against the three simulators on loopback, every request delayed
200 ms by the simulators' `latency` fault, against one account's cycle of each vendor.

The simulators run in child processes, one per vendor (`accounts.py serve LATENCY
VENDOR`), as a real vendor is never in our process: the exporter's cycle does not compete
with them for the GIL, and "CPU s exporter" (`time.process_time()` of this process) is
the exporter alone. The children's CPU over the same cycle (from /proc) is shown beside
it; on a 2-vCPU machine they share the CPUs with the exporter. Cycle 1 is the first
after start (SecureVideo's month query, new connections); cycle 2 follows at once and is
the steady state.
The loop lag is how late a task sleeping 10 ms at a time is woken over the cycle (what a
scrape would wait). With no `--concurrency`, the default settings are measured.
With `--scheduled MINUTES` the daemon runs instead as a user runs it, for that long: its
own scheduler (first cycles spread over a few seconds, later ones jittered), renders in
the background; every account's cycles are then read from its history: durations per
vendor (first cycles apart: they start nearly together), failures, cycles longer than
the interval.
Run: `python bench/accounts.py [--quick] [--accounts N] [--concurrency default,16,64]
[--profile] [--scheduled MINUTES]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from benchlib import arguments, child, header, ratio, stdin_closed, table

from exporter.cli import SWITCH_INTERVAL
from exporter.clock import SystemClock
from exporter.config import parse_config
from exporter.heap import tune_garbage_collector
from exporter.logs import configure
from exporter.loop import Daemon
from exporter.registry import VENDORS
from exporter.simulators import SIMULATORS
from exporter.simulators.demo import start_world
from exporter.snapshot import Snapshot

INTERVAL = 60.0  # the default poll interval, for the CPU share
READY_TIMEOUT = 60.0  # seconds for the child to start its simulators


# -- the simulators' process ---------------------------------------------------------------


def serve(latency: float, vendor: str) -> None:
    """Child: start one vendor's simulator, print one JSON line (its demo account aimed at
    its port), and serve until the parent closes our stdin. One process per vendor, as
    three vendors are three services: one process for all three saturated its one core
    (44-49 CPU s of a 60 s cycle at 2,000 accounts) and timed the Glance accounts out."""

    async def run() -> None:
        world = await start_world({vendor: SIMULATORS[vendor]}, SystemClock(), seed=1)
        for simulator in world.simulators.values():
            simulator.faults.inject("latency", count=None, seconds=latency)
        templates = {
            vendor: sim.demo_accounts(world.base_urls[vendor])[0]
            for vendor, sim in world.simulators.items()
        }
        print(json.dumps(templates), flush=True)
        try:
            await stdin_closed()
        finally:
            await world.close()

    configure("warn", "logfmt")
    asyncio.run(run())


@dataclass
class Simulators:
    templates: dict[str, dict[str, Any]]
    pids: list[int]

    def cpu(self) -> float:
        """CPU seconds the children have used so far (user + system, from /proc)."""
        total = 0.0
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                return float("nan")
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


@contextmanager
def simulators(latency: float) -> Iterator[Simulators]:
    with contextlib.ExitStack() as stack:
        templates: dict[str, dict[str, Any]] = {}
        pids = []
        for vendor in SIMULATORS:
            proc, line = stack.enter_context(
                child([sys.executable, __file__, "serve", str(latency), vendor], READY_TIMEOUT)
            )
            templates.update(json.loads(line))
            pids.append(proc.pid)
        yield Simulators(templates, pids)


# -- the exporter ----------------------------------------------------------------------------


DEFAULT = 0  # a `--concurrency` of "default": max_concurrency left to its default


def config_data(sims: Simulators, counts: dict[str, int], concurrency: int) -> dict[str, Any]:
    """`counts[vendor]` copies of each vendor's demo account, as a user would write them."""
    data: dict[str, Any] = {"global": {"interval": f"{INTERVAL:g}s", "timeout": "30s"}}
    if concurrency != DEFAULT:
        data["global"]["max_concurrency"] = concurrency
    for vendor, n in counts.items():
        template = {
            k: v for k, v in sims.templates[vendor].items() if k not in ("interval", "name")
        }
        data[vendor] = [{**template, "name": f"{vendor}-{i:03d}"} for i in range(n)]
    return data


@dataclass
class Cycle:
    wall: float
    render: float  # the part of `wall` spent rendering the snapshot once all cycles ended
    cpu_exporter: float
    cpu_simulators: float
    requests: int
    failures: int
    up: int
    accounts: int
    lag_p99: float  # event loop lag over the cycle, seconds (`LagProbe`)
    lag_max: float


class LagProbe:
    """How late the event loop wakes a task that sleeps `PERIOD` at a time: what a scrape
    arriving meanwhile would wait before its handler runs."""

    PERIOD = 0.01

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.PERIOD)
            self.lags.append(time.perf_counter() - start - self.PERIOD)

    async def stop(self) -> tuple[float, float]:
        """p99 and max lag, seconds."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        lags = sorted(self.lags) or [0.0]
        return lags[min(len(lags) - 1, int(len(lags) * 0.99))], lags[-1]


async def cycles(
    sims: Simulators, counts: dict[str, int], concurrency: int, profile: bool = False
) -> list[Cycle]:
    config = parse_config(config_data(sims, counts, concurrency), VENDORS)
    daemon = Daemon(config, VENDORS, seed=1)
    await daemon.start(schedule=False)
    results = []
    try:
        # A profiled cycle is slower: it is an extra third one, left out of the figures.
        for n in range(3 if profile else 2):
            before_req = sum(daemon.metrics.requests.values.values())
            before_fail = sum(daemon.metrics.failures.values.values())
            profiler = None
            if n == 2:
                from pyinstrument import Profiler

                profiler = Profiler(async_mode="enabled")
                profiler.start()
            wall, cpu, child = time.perf_counter(), time.process_time(), sims.cpu()
            probe = LagProbe()
            # `collect_all_once()`, with the final render timed on its own; off the loop,
            # as the daemon's render loop does it.
            await asyncio.gather(*(daemon.cycle(r) for r in list(daemon.runners.values())))
            render = time.perf_counter()
            daemon.snapshot = await daemon.render_off_loop()
            render = time.perf_counter() - render
            wall = time.perf_counter() - wall
            cpu, child = time.process_time() - cpu, sims.cpu() - child
            lag_p99, lag_max = await probe.stop()
            if profiler is not None:
                profiler.stop()
                print(profiler.output_text(unicode=False, color=False, show_all=False))
                break
            results.append(
                Cycle(
                    wall,
                    render,
                    cpu,
                    child,
                    int(sum(daemon.metrics.requests.values.values()) - before_req),
                    int(sum(daemon.metrics.failures.values.values()) - before_fail),
                    sum(h.up for h in daemon.metrics.health.values()),
                    len(daemon.runners),
                    lag_p99,
                    lag_max,
                )
            )
    finally:
        await daemon.stop()
    return results


@dataclass
class Scheduled:
    """What the daemon, scheduling on its own, did over `minutes` of real time."""

    minutes: float
    # Per vendor, every finished cycle's (index within the account, duration s, ok).
    cycles: dict[str, list[tuple[int, float, bool]]]
    failures: dict[str, int]  # "operation/reason" -> cycles that failed so
    up: int
    accounts: int
    cpu_exporter: float
    cpu_simulators: float
    lag_p99: float
    lag_max: float
    collections: str  # `GcProbe.stop`
    exposition: tuple[int, int]  # the served text exposition's bytes, plain and gzipped
    over_budget: int  # accounts the last render left out for `max_exposition_bytes`
    peak_rss: int  # bytes, this process (the exporter) at its largest over the run
    renders: list[float]  # each background render's wall time, s
    tracked: list[tuple[str, int]]  # the most numerous objects the collector tracks, at the end


async def scheduled(sims: Simulators, counts: dict[str, int], minutes: float) -> Scheduled:
    """Run the daemon as a user does (its scheduler, jitter, background renders) for
    `minutes`, then read every account's recent cycles from its history."""
    config = parse_config(config_data(sims, counts, DEFAULT), VENDORS)
    daemon = Daemon(config, VENDORS, seed=1)
    renders = timed_renders(daemon)
    cpu, child = time.process_time(), sims.cpu()
    await daemon.start(schedule=True)
    tune_garbage_collector()  # as `session-exporter` does once started
    sys.setswitchinterval(SWITCH_INTERVAL)  # and as its `main` does
    probe, collections = LagProbe(), GcProbe()
    try:
        await asyncio.sleep(minutes * 60)  # the run's length, not a synchronisation
    finally:
        lag_p99, lag_max = await probe.stop()
        gc_pauses = collections.stop()
        cpu, child = time.process_time() - cpu, sims.cpu() - child
        cycles: dict[str, list[tuple[int, float, bool]]] = {v: [] for v in counts}
        failures: dict[str, int] = {}
        for (vendor, _), runner in daemon.runners.items():
            done = [c for c in runner.history.cycles if c.duration is not None]
            for n, record in enumerate(done, 1):
                cycles[vendor].append((n, record.duration or 0.0, bool(record.ok)))
                if record.failure is not None:
                    key = f"{vendor} {record.failure.operation}/{record.failure.reason}"
                    failures[key] = failures.get(key, 0) + 1
        up = sum(h.up for h in daemon.metrics.health.values())
        served = daemon.snapshot
        exposition = len(served.text), len(served.text_gzip)
        over_budget = len(daemon.renderer.over_budget)
        tracked = Counter(type(o).__name__ for o in gc.get_objects()).most_common(8)
        await daemon.stop()
    return Scheduled(
        minutes,
        cycles,
        failures,
        up,
        len(daemon.runners),
        cpu,
        child,
        lag_p99,
        lag_max,
        gc_pauses,
        exposition,
        over_budget,
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        renders,
        tracked,
    )


def timed_renders(daemon: Daemon) -> list[float]:
    """The wall time of each background render from now on (appended as they end)."""
    durations: list[float] = []
    render = daemon.renderer.render_off_loop

    async def timed() -> Snapshot:
        started = time.perf_counter()
        try:
            return await render()
        finally:
            durations.append(time.perf_counter() - started)

    daemon.renderer.render_off_loop = timed  # type: ignore[method-assign]
    return durations


class GcProbe:
    """Every garbage collection over the run, by generation: how often and how long (a
    collection stops the event loop, and a full one walks every tracked object)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def stop(self) -> str:
        gc.callbacks.remove(self._callback)
        return "; ".join(
            f"gen{g} {len(p)} runs, {sum(p):.2f} s, max {max(p, default=0) * 1000:.0f} ms"
            for g, p in self.pauses.items()
        )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values) or [float("nan")]
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def report_scheduled(run: Scheduled, singles: dict[str, list[Cycle]]) -> None:
    rows = []
    for vendor, cycles in run.cycles.items():
        single = singles[vendor][1].wall  # one account's steady cycle, the baseline
        for label, chosen in (
            ("first", [c for c in cycles if c[0] == 1]),
            ("later", [c for c in cycles if c[0] > 1]),
        ):
            if not chosen:
                continue  # a run shorter than an interval has first cycles only
            durations = [d for _, d, _ in chosen]
            p50, p99 = percentile(durations, 0.5), percentile(durations, 0.99)
            rows.append(
                [
                    vendor,
                    label,
                    len(chosen),
                    sum(not ok for *_, ok in chosen),
                    p50,
                    ratio(p50, single),
                    p99,
                    max(durations),
                    sum(d > INTERVAL for d in durations),
                ]
            )
    table(
        [
            "vendor",
            "cycles",
            "finished",
            "failed",
            "duration p50 s",
            "p50 vs 1 account",
            "p99 s",
            "max s",
            f"over {INTERVAL:g} s",
        ],
        rows,
    )
    for key, count in sorted(run.failures.items()):
        print(f"failed cycles: {key}: {count}")
    every = [d for cycles in run.cycles.values() for _, d, _ in cycles]
    over = sum(d > INTERVAL for d in every)
    failed = sum(not ok for cycles in run.cycles.values() for *_, ok in cycles)
    share = 100 * run.cpu_exporter / (run.minutes * 60)
    print(
        f"{run.accounts} accounts, {run.minutes:g} min: {len(every)} cycles, {over} over the "
        f"{INTERVAL:g} s interval, {failed} failed; {run.up}/{run.accounts} up at the end; "
        f"exporter {run.cpu_exporter:.1f} CPU s ({share:.0f}% of one CPU), "
        f"simulators {run.cpu_simulators:.1f} CPU s; loop lag p99 {run.lag_p99 * 1000:.0f} ms, "
        f"max {run.lag_max * 1000:.0f} ms"
    )
    print(f"garbage collections: {run.collections}")
    print(
        f"renders: {len(run.renders)}, wall p50 {percentile(run.renders, 0.5) * 1000:.0f} ms, "
        f"max {max(run.renders, default=0) * 1000:.0f} ms, "
        f"{sum(run.renders) / (run.minutes * 60):.0%} of the run"
    )
    print(
        f"objects the garbage collector tracks, at the end: {sum(n for _, n in run.tracked):,} "
        "in the 8 most numerous types: "
        + ", ".join(f"{name} {count:,}" for name, count in run.tracked)
    )
    plain, gzipped = run.exposition
    print(
        f"/metrics at the end: {plain / 2**20:.1f} MiB ({gzipped / 2**20:.1f} MiB gzipped); "
        f"{run.over_budget} accounts left out for max_exposition_bytes; exporter peak RSS "
        f"{run.peak_rss / 2**20:.0f} MiB"
    )
    # A cycle cut off by its deadline (`cycle_timeout`, within the interval) did not
    # finish either: it counts against the target as much as one that ran over.
    print(
        "target: every cycle finished within its interval: "
        + ("MET" if over == 0 and failed == 0 else "NOT MET")
    )


def setting(concurrency: int) -> str:
    return "default settings" if concurrency == DEFAULT else f"max_concurrency {concurrency}"


def main() -> int:
    parser = arguments(__doc__ or "")
    parser.add_argument(
        "--concurrency",
        default="default",
        help="global.max_concurrency values to try, comma-separated "
        "(default: the default settings; e.g. 16,64,128,256)",
    )
    parser.add_argument(
        "--accounts",
        type=int,
        default=200,
        help="accounts in all, split evenly between the three vendors",
    )
    parser.add_argument(
        "--scheduled",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="instead of cycles started at once, run the daemon's own "
        "scheduler for MINUTES and report every cycle",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="pyinstrument profile of the last setting's steady cycle",
    )
    args = parser.parse_args()
    configure("warn", "logfmt")
    if args.quick:
        counts, latency, settings = {"glance": 2, "securevideo": 2, "rescue": 2}, 0.05, [DEFAULT]
    else:
        third = args.accounts // 3
        counts = {"glance": args.accounts - 2 * third, "securevideo": third, "rescue": third}
        latency = 0.2
        settings = [DEFAULT if c == "default" else int(c) for c in args.concurrency.split(",")]
    total = sum(counts.values())
    header(
        f"many accounts: {total} accounts, {latency * 1000:.0f} ms injected latency "
        "on every request, simulators in child processes, one per vendor"
    )
    with simulators(latency) as sims:
        singles = {vendor: asyncio.run(cycles(sims, {vendor: 1}, settings[0])) for vendor in counts}
        if args.scheduled:
            report_scheduled(asyncio.run(scheduled(sims, counts, args.scheduled)), singles)
            return 0
        many = {
            c: asyncio.run(cycles(sims, counts, c, args.profile and c == settings[-1]))
            for c in settings
        }

    rows = []
    for vendor, result in singles.items():
        for n, cycle in enumerate(result, 1):
            rows.append(
                [
                    f"1 {vendor} account",
                    n,
                    cycle.wall,
                    cycle.render,
                    "",
                    cycle.requests,
                    cycle.cpu_exporter,
                    cycle.cpu_simulators,
                    f"{cycle.up}/1",
                    cycle.lag_p99 * 1000,
                    cycle.lag_max * 1000,
                ]
            )
    # A cycle of many accounts can be no shorter than the slowest single account's.
    baseline = [max(r[n].wall for r in singles.values()) for n in range(2)]
    expected = [sum(singles[v][n].requests * k for v, k in counts.items()) for n in range(2)]
    for concurrency, result in many.items():
        for n, cycle in enumerate(result):
            rows.append(
                [
                    f"{total} accounts, {setting(concurrency)}",
                    n + 1,
                    cycle.wall,
                    cycle.render,
                    ratio(cycle.wall, baseline[n]),
                    f"{cycle.requests} ({ratio(cycle.requests, expected[n])})",
                    cycle.cpu_exporter,
                    cycle.cpu_simulators,
                    f"{cycle.up}/{cycle.accounts}",
                    cycle.lag_p99 * 1000,
                    cycle.lag_max * 1000,
                ]
            )
    table(
        [
            "run",
            "cycle",
            "wall s",
            "of which render s",
            "vs slowest single account",
            "requests (vs N x single)",
            "CPU s exporter",
            "CPU s simulators",
            "up",
            "loop lag p99 ms",
            "loop lag max ms",
        ],
        rows,
    )
    met = [c for c, r in many.items() if r[1].wall < 3 * baseline[1] and r[1].up == total]
    print(
        f"target: {total}-account cycle under 3x one account's (steady cycle): "
        + (
            f"MET with {', '.join(setting(c) for c in met)}"
            if met
            else "NOT MET at any setting tried"
        )
    )
    fastest = min(many, key=lambda c: many[c][1].wall)
    steady = many[fastest][1]
    print(
        f"capacity: one process handles {total} accounts at interval {INTERVAL:g}s with "
        f"{100 * steady.cpu_exporter / INTERVAL:.1f}% of one CPU "
        f"({steady.cpu_exporter:.2f} CPU s per steady cycle, {setting(fastest)}); "
        f"steady cycle {steady.wall:.1f} s of the {INTERVAL:g} s interval"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(float(sys.argv[2]), sys.argv[3])
        raise SystemExit(0)
    raise SystemExit(main())
