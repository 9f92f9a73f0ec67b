"""State save (--storage.path): the cost of one save after a cycle, on the event loop and
in the store's writer thread, for a Glance account remembering 10,000 and 160,000
session ids of which about 1% are new per cycle and as many forgotten, while the ids of
the last ten cycles are seen again (the feed's overlap).

Baseline, measured in the same run: the whole-state path this replaces, `state()` on the
loop (every id with its expiry) and its JSON in one row. New: `saved_state()` on the loop
(the small blob and the journal of changed ids), then the blob and the changed ids
upserted and deleted in one transaction. A whole save of the new path (every id written
once: after a failed save, or the first after an upgrade from a whole-state row) is shown
apart. Median of the cycles. Run:
`python bench/state_save.py [--quick]`.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import arguments, header, ratio, table

from exporter.config import parse_config
from exporter.logs import configure, get_logger
from exporter.registry import VENDORS
from exporter.simulators.clock import FakeClock
from exporter.storage import StateStore
from exporter.vendors.base import CollectorContext
from exporter.vendors.glance.collector import SEEN_SLACK, SKEW_MARGIN, GlanceCollector

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
INTERVAL = 60.0
OVERLAP_CYCLES = 10  # the default 10-minute feed overlap at 60 s polls


def collector(clock: FakeClock) -> GlanceCollector:
    config = parse_config(
        {"glance": [{"name": "glance-00", "partner_id": 1, "api_key": "k", "today_statuses": []}]},
        VENDORS,
    )
    ctx = CollectorContext(
        clock=clock,
        log=get_logger(component="bench"),
        label_value_limit=50,
        reject=lambda reason, count: None,
        started_at=START,
    )
    return GlanceCollector(config.accounts[0], ctx)  # type: ignore[arg-type]


class Feed:
    """`remembered` ids whose expiries are spread over the next 100 cycles, so that each
    cycle forgets 1% of them; as many new ids arrive each cycle, and the ids of the last
    ten cycles are seen again (not yet due for a refresh: unchanged)."""

    def __init__(self, c: GlanceCollector, clock: FakeClock, remembered: int) -> None:
        self.c, self.clock = c, clock
        self.per_cycle = max(1, remembered // 100)
        now = clock.time()
        lifetime = SKEW_MARGIN + SEEN_SLACK  # what `add` gives a new id
        for key in range(remembered):
            c.seen.add(key, now - lifetime + (key + 1) * 100 * INTERVAL / remembered)
        self.next_id = remembered

    def cycle(self) -> None:
        self.clock.advance(INTERVAL)
        now = self.clock.time()
        seen = self.c.seen
        for key in range(self.next_id - OVERLAP_CYCLES * self.per_cycle, self.next_id):
            seen.add(key, now)  # the feed's overlap: seen again
        for key in range(self.next_id, self.next_id + self.per_cycle):
            seen.add(key, now)
        self.next_id += self.per_cycle
        seen.prune(now)


def timed(step: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    result = step(*args)
    return (time.perf_counter() - began) * 1000, result


def old_write(db: sqlite3.Connection, state: dict[str, Any], now: float) -> None:
    """The whole-state write this replaces: the JSON of everything in one row."""
    db.execute(
        "INSERT INTO account_state (vendor, account, saved_at, state) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (vendor, account) DO UPDATE SET saved_at = excluded.saved_at, "
        "state = excluded.state",
        ("glance", "glance-00", now, json.dumps(state, separators=(",", ":"))),
    )


Timings = dict[str, tuple[list[float], list[float], list[int]]]


def old_path(remembered: int, cycles: int, path: Path, results: Timings) -> None:
    clock = FakeClock(START)
    c = collector(clock)
    feed = Feed(c, clock, remembered)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE account_state (vendor TEXT NOT NULL, account TEXT NOT NULL, "
        "saved_at REAL NOT NULL, state TEXT NOT NULL, PRIMARY KEY (vendor, account))"
    )
    timings: tuple[list[float], list[float], list[int]] = ([], [], [])
    for _ in range(cycles):
        feed.cycle()
        loop_ms, state = timed(c.state)  # on the loop
        writer_ms, _ = timed(old_write, db, state, clock.time())  # in the writer thread
        timings[0].append(loop_ms)
        timings[1].append(writer_ms)
        timings[2].append(len(state["seen"]))
    db.close()
    results["old"] = timings


def new_path(remembered: int, cycles: int, path: Path, results: Timings) -> None:
    clock = FakeClock(START)
    c = collector(clock)
    feed = Feed(c, clock, remembered)
    store = StateStore(path)
    # `save` waits for the writer thread: its time is the writer's (and one hand-over).
    # A fresh collector's first save is whole: what follows a failed save or an upgrade.
    loop_ms, saved = timed(c.saved_state)
    writer_ms, _ = timed(store.save, "glance", "glance-00", saved, clock.time())
    results["new, whole save"] = ([loop_ms], [writer_ms], [len(saved.tables["seen"].upserts)])
    timings: tuple[list[float], list[float], list[int]] = ([], [], [])
    for _ in range(cycles):
        feed.cycle()
        loop_ms, saved = timed(c.saved_state)
        writer_ms, _ = timed(store.save, "glance", "glance-00", saved, clock.time())
        changes = saved.tables["seen"]
        timings[0].append(loop_ms)
        timings[1].append(writer_ms)
        timings[2].append(len(changes.upserts) + len(changes.deletes))
    loaded = store.load("glance", "glance-00")
    store.close()
    assert loaded is not None and len(loaded["seen"]) == len(c.seen), "store != memory"
    results["new"] = timings


def small_ratio(value: float, baseline: float) -> str:
    """`ratio`, with the digits a ratio far below 1 needs (0.00x says nothing)."""
    if baseline and value / baseline < 0.01:
        return f"{value / baseline:.1g}x"
    return ratio(value, baseline)


def measure(remembered: int, cycles: int, directory: Path) -> list[list[object]]:
    results: Timings = {}
    old_path(remembered, cycles, directory / f"old-{remembered}.db", results)
    new_path(remembered, cycles, directory / f"new-{remembered}.db", results)
    old_loop, old_writer = (statistics.median(v) for v in results["old"][:2])
    rows: list[list[object]] = []
    for name in ("old", "new", "new, whole save"):
        loop_ms, writer_ms, written = results[name]
        on_loop, writer = statistics.median(loop_ms), statistics.median(writer_ms)
        rows.append(
            [
                f"{remembered:,}",
                name,
                on_loop,
                small_ratio(on_loop, old_loop),
                writer,
                small_ratio(writer, old_writer),
                int(statistics.median(written)),
            ]
        )
    return rows


def main() -> int:
    parser = arguments(__doc__ or "")
    args = parser.parse_args()
    configure("warn", "logfmt")
    sizes, cycles = ((1000, 4000), 3) if args.quick else ((10_000, 160_000), 15)
    header(
        f"state save: one Glance account, ~1% of its remembered ids changed per "
        f"{INTERVAL:g}s cycle, median of {cycles} cycles"
    )
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as directory:
        for remembered in sizes:
            rows.extend(measure(remembered, cycles, Path(directory)))
    table(
        ["remembered ids", "path", "on loop ms", "vs old", "writer ms", "vs old", "ids written"],
        rows,
    )
    print(
        "ids written: the old path writes every id each save; the new one the ids added "
        "and forgotten (a whole save, after a failed one or an upgrade, writes them all)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
