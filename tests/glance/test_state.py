"""Glance state across a restart (--storage.path): the feed resumes at its cursor, the
dedupe keys and counts carry on, and a state that does not fit is refused whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporter.storage import StateStore
from exporter.vendors.glance.collector import GlanceCollector

from .harness import Harness, assert_feed_matches, completed

# `clock` and `h` come from conftest.py.


def through_json(state: dict[str, Any] | None) -> dict[str, Any]:
    """What the store gives back: JSON turns tuples into lists and int keys into text."""
    assert state is not None
    result = json.loads(json.dumps(state))
    assert isinstance(result, dict)
    return result


async def run(h: Harness, c: GlanceCollector, steps: list[float]) -> None:
    for step in steps:
        h.clock.advance(step)
        await c.collect(h.upstream())


async def test_restart_resumes_the_feed_nothing_lost_nothing_twice(h: Harness) -> None:
    first_start = h.clock.time()
    first = h.collector(page_size=7, feed_overlap="30m")
    await run(h, first, [0, 60, 300, 45, 600])
    saved = through_json(first.state())
    # Down for two hours: dozens of sessions end meanwhile, some inside the overlap.
    h.clock.advance(7200)
    ended_while_down = h.sim.completed_ended(first.cursor, h.clock.time())
    assert len(ended_while_down) > 20
    second = h.collector(started_at=h.clock.time(), page_size=7, feed_overlap="30m")
    second.restore(saved)
    await run(h, second, [0, 30, 0, 900])
    assert_feed_matches(h, second, first_start)
    assert through_json(second.state())["origin"] == first_start


async def test_restart_without_a_state_starts_from_zero(h: Harness) -> None:
    first = h.collector()
    await run(h, first, [0, 600])
    h.clock.advance(600)
    restarted = h.clock.time()
    second = h.collector(started_at=restarted)
    await run(h, second, [0, 300])
    assert_feed_matches(h, second, restarted)


async def test_a_pending_backfill_is_carried_over_with_its_range(h: Harness) -> None:
    first_start = h.clock.time()
    first = h.collector(lookback="2h")
    h.sim.faults.inject("http_500", count=None, path_contains="PartnerCompletedSessions")
    with pytest.raises(Exception):  # noqa: B017, PT011 - any failure: the backfill must stay due
        await first.collect(h.upstream())
    saved = through_json(first.state())
    assert saved["backfill_pending"] is True
    h.sim.faults.clear()
    h.clock.advance(1800)
    second = h.collector(started_at=h.clock.time(), lookback="2h")
    second.restore(saved)
    await run(h, second, [0, 60])
    assert_feed_matches(h, second, first_start - 7200)
    backfill = [p for op, p in h.sim.requests if op == "PartnerCompletedSessions"]
    assert backfill[-1]["endRange"] == "2026-03-10T15:00:00Z"  # the first process's start


async def test_changed_buckets_restart_the_histogram_but_not_the_counter(h: Harness) -> None:
    first = h.collector()
    await run(h, first, [0, 1800])
    total = sum(completed(first).values())
    assert total > 0
    second = h.collector(duration_buckets=[60, 600])
    second.restore(through_json(first.state()))
    assert sum(completed(second).values()) == total
    assert second.durations.total_count() == 0
    assert any(event == "glance_duration_buckets_changed" for _, event, _ in h.log.events)


BAD_STATES: list[tuple[str, Any]] = [
    ("version", 4),
    ("version", None),
    ("version", True),
    ("partner_id", 1),
    ("cursor", "soon"),
    ("cursor", float("nan")),
    ("origin", 9e18),  # after the cursor
    ("cursor", 1e15),  # far ahead: every cycle failed, for good
    ("seen", [[1, 4.1e9]]),  # remembered until 2099
    ("backfill_pending", 0),
    ("seen", {"1": 2.0}),
    ("seen", [[1]]),
    ("seen", [["61000001", 2.0]]),
    ("completed", [[["C"], 1.0]]),
    ("completed", [[["C", "C"], -1.0]]),
    ("durations", [[["C", "answered"], [1, 2], 3.0]]),  # wrong number of buckets
    ("durations", [[["C", "answered"], [0] * 12 + [-1], 3.0]]),
    ("durations", [[["C"], [0] * 13, 3.0]]),  # no outcome label
    ("waits", [[["C", "answered"], [1, 2], 3.0]]),
    ("waits", None),
    # Found by a probe: the year -1199 crashed every cycle, written as a date.
    ("origin", -1e11),
    ("began", -1e11),
    ("began", 4.2e9),  # 2103
    # A count no float holds made every render fail; the account was left out for good.
    ("durations", [[["C", "answered"], [10**400] + [0] * 12, 3.0]]),
    ("completed", [[["C", "C"], 1e300]]),
    # Label values a collector could not have made, served as they were.
    ("completed", [[["x" * 5000, "C"], 1.0]]),
    ("completed", [[["C\x1b[31m", "C"], 1.0]]),
    # Found by a probe: more series than max_series_per_account (20,000) were taken in,
    # and the account was left out of /metrics at every cycle, saved back so each time.
    ("completed", [[["C", f"S{i}"], 1.0] for i in range(20_001)]),
    ("durations", [[[f"T{i}", "answered"], [0] * 13, 0.0] for i in range(20_001)]),
    # Found by a review: a series of a histogram is 15 samples; 1,400 are 21,000.
    ("durations", [[[f"T{i}", "answered"], [0] * 13, 0.0] for i in range(1_400)]),
]


@pytest.mark.parametrize(("key", "value"), BAD_STATES)
async def test_a_state_that_does_not_fit_is_refused_and_changes_nothing(
    h: Harness, key: str, value: Any
) -> None:
    first = h.collector()
    await run(h, first, [0, 1800])
    state = through_json(first.state())
    state[key] = value
    fresh = h.collector()
    before = through_json(fresh.state())
    with pytest.raises(ValueError):
        fresh.restore(state)
    assert through_json(fresh.state()) == before


async def test_saved_by_changes_the_store_gives_back_what_state_gives(
    h: Harness, tmp_path: Path
) -> None:
    """Cycle after cycle saved as changes (the dedupe ids added, refreshed, forgotten),
    the store holds exactly the collector's whole state, and a restart carries on."""
    store = StateStore(tmp_path / "s.db")
    first = h.collector(page_size=7, feed_overlap="30m")
    sizes = []
    for step in [0, 60, 300, 45, 600, 1800, 1800, 1800, 60]:
        h.clock.advance(step)
        await first.collect(h.upstream())
        saved = first.saved_state()
        sizes.append(len(saved.tables["seen"].upserts))
        store.save("glance", "acme", saved, h.clock.time())
    assert len(first.seen) > 20
    assert sizes[-1] < len(first.seen)  # a minute's changes, not the whole memory
    state = store.load("glance", "acme")
    store.close()
    assert state is not None
    expected = through_json(first.state())
    assert sorted(state["seen"]) == sorted(expected["seen"])  # the store's order is its own
    assert {**state, "seen": None} == {**expected, "seen": None}
    second = h.collector(started_at=h.clock.time(), page_size=7, feed_overlap="30m")
    second.restore(state)
    assert second.seen._expiry == first.seen._expiry
    assert completed(second) == completed(first)
    # Restored from the keys table: the next process saves its changes alone.
    second.restored_from_store()
    store = StateStore(tmp_path / "s.db")
    for step in [60, 1800]:
        h.clock.advance(step)
        await second.collect(h.upstream())
        saved = second.saved_state()
        assert not saved.tables["seen"].whole
        store.save("glance", "acme", saved, h.clock.time())
    again = store.load("glance", "acme")
    store.close()
    assert again is not None
    assert sorted(again["seen"]) == sorted(through_json(second.state())["seen"])
