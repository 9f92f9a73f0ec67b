"""Memory: peak RSS after a simulated day of 100,000 completed Glance sessions per account
on 10 accounts, polled every 60 s with the default 10-minute feed overlap (so each
session is seen about eleven times and counted once).

The collectors are the real `GlanceCollector`s, driven by a `FakeClock` and a client that
hands them parsed pages (no network, no XML): what is measured is the state they keep.
Dedupe state must be bounded by time: the ids remembered at the end of the day are those
of the last hour or so, not the day's. Run: `python bench/memory.py [--quick]`.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from benchlib import arguments, header, ratio, table

from exporter.config import parse_config
from exporter.logs import configure, get_logger
from exporter.registry import VENDORS
from exporter.simulators.clock import FakeClock
from exporter.snapshot import render
from exporter.vendors.base import CollectorContext
from exporter.vendors.glance.collector import GlanceCollector
from exporter.vendors.glance.parser import ActiveSessions, Counts, GroupSessions, Session

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
INTERVAL = 60.0
TYPES = ("C", "G", "V")


# The stand-in client never uses the network; the collector reads only the clock skew
# of the replies (none here: the vendor's clock is ours).
NO_UPSTREAM = SimpleNamespace(clock_skew=None, dated_replies=0)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class DayOfSessions:
    """A Glance client whose feed holds `per_day` completed sessions a day, evenly spread,
    each with its own id; pages of at most 1000 as the real API gives them."""

    def __init__(self, per_day: int, first_id: int) -> None:
        self.gap = 86400.0 / per_day
        self.first_id = first_id

    async def active_sessions(self, upstream: Any) -> ActiveSessions:
        return ActiveSessions([])

    async def session_counts(self, upstream: Any, *args: Any) -> Counts:
        return Counts([])

    async def session_counts_ending(self, upstream: Any, *args: Any) -> Counts:
        return Counts([])

    async def completed(
        self, upstream: Any, operation: str, start: float, end: float, **_: Any
    ) -> AsyncIterator[GroupSessions]:  # position, budget
        lo = max(0, int((start - START) / self.gap + 0.999999))
        hi = int((end - START) / self.gap)
        for page in range(lo, hi + 1, 1000):
            yield GroupSessions(
                None,
                [
                    Session(
                        id=self.first_id + i,
                        type=TYPES[i % 3],
                        status="C",
                        start_time=START + i * self.gap - 300,
                        duration=300.0 + i % 900,
                        partner_user_id="JDemo",
                    )
                    for i in range(page, min(page + 1000, hi + 1))
                ],
            )


def main() -> int:
    parser = arguments(__doc__ or "")
    args = parser.parse_args()
    configure("warn", "logfmt")
    accounts, per_day, seconds = (1, 100_000, 7200) if args.quick else (10, 100_000, 86400)
    header(
        f"memory: {accounts} Glance accounts x {per_day:,} completed sessions a day, "
        f"{seconds / 3600:g} h simulated, polled every {INTERVAL:g}s"
    )
    clock = FakeClock(START)
    config = parse_config(
        {
            "glance": [
                {"name": f"glance-{n:02d}", "partner_id": 1, "api_key": "k", "today_statuses": []}
                for n in range(accounts)
            ]
        },
        VENDORS,
    )
    collectors = []
    for n, account in enumerate(config.accounts):
        ctx = CollectorContext(
            clock=clock,
            log=get_logger(component="bench"),
            label_value_limit=50,
            reject=lambda reason, count: None,
            started_at=START,
        )
        # DayOfSessions stands in for GlanceClient: the same methods, no network.
        collectors.append(
            GlanceCollector(
                account,  # type: ignore[arg-type]
                ctx,
                client=DayOfSessions(  # type: ignore[arg-type]
                    per_day, n * 10**8
                ),
            )
        )
    baseline = rss_mib()
    samples: list[list[object]] = []
    tracked_max = 0

    async def day() -> None:
        nonlocal tracked_max
        for step in range(1, int(seconds / INTERVAL) + 1):
            clock.advance(INTERVAL)
            for collector in collectors:
                await collector.collect(NO_UPSTREAM)  # type: ignore[arg-type]
            tracked = sum(len(c.seen) for c in collectors)
            tracked_max = max(tracked_max, tracked)
            if step % int(3 * 3600 / INTERVAL) == 0 or step * INTERVAL == seconds:
                samples.append(
                    [
                        f"{step * INTERVAL / 3600:g} h",
                        tracked,
                        sum(len(c.seen._heap) for c in collectors),
                        rss_mib(),
                    ]
                )

    asyncio.run(day())
    snapshot = render(f for c in collectors for f in c.families())
    counted = sum(sum(c.completed.values.values()) for c in collectors)
    expected = accounts * int(seconds / (86400 / per_day))
    table(["time", "ids remembered", "heap entries", "RSS MiB"], samples)
    peak = peak_rss_mib()
    print(
        f"counted {counted:,.0f} sessions (expected about {expected:,}), "
        f"rendered {len(snapshot.text):,} bytes"
    )
    table(
        ["figure", "MiB", "vs baseline"],
        [
            ["baseline RSS (imports and collectors, before the day)", baseline, "1.00x"],
            ["RSS at the end of the day", rss_mib(), ratio(rss_mib(), baseline)],
            ["peak RSS", peak, ratio(peak, baseline)],
        ],
    )
    print(
        f"dedupe: at most {tracked_max:,} ids remembered at once, "
        f"{tracked_max / max(counted, 1):.1%} of the sessions counted"
    )
    print(
        f"target: peak RSS under 200 MB: {'MET' if peak * 2**20 < 200e6 else 'NOT MET'} "
        f"({peak * 2**20 / 1e6:.0f} MB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
