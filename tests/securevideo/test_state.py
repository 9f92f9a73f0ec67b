"""SecureVideo state across a restart (--storage.path): sessions counted or observed
before are not again, sessions that connected while down are, even when the downtime
outlasts the rolling window; a state that does not fit is refused whole."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exporter.simulators.clock import FakeClock
from exporter.simulators.securevideo import SecureVideoSimulator
from exporter.storage import StateStore
from exporter.vendors.securevideo.collector import SecureVideoCollector

from .harness import (
    NEW_YEARS_EVE,
    Harness,
    Truth,
    account,
    assert_matches,
    harness,
    pick,
    samples,
    served,
    total,
)


def through_json(state: dict[str, Any] | None) -> dict[str, Any]:
    """What the store gives back: JSON turns tuples into lists."""
    assert state is not None
    result = json.loads(json.dumps(state))
    assert isinstance(result, dict)
    return result


async def poll(
    h: Harness,
    c: SecureVideoCollector,
    sim: SecureVideoSimulator,
    truth: Truth,
    counted_from: float,
    steps: Sequence[float],
    feed_days: int = 2,
) -> None:
    for step in steps:
        h.clock.advance(step)
        await c.collect(h.upstream)
        truth.poll(sim.world, h.clock.time(), counted_from, feed_days)


def day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).date().isoformat()


async def test_restart_counts_what_connected_while_down_and_nothing_twice() -> None:
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=5)
    first_start = clock.time()
    truth = Truth()
    async with harness(clock) as h, served(sim) as url:
        first = h.collector(account(url), first_start)
        await poll(h, first, sim, truth, first_start, [0] + [60] * 20)
        saved = through_json(first.state())
        down_from = clock.time()
        clock.advance(1800)  # across midnight and the new year, while nobody polls
        second = h.collector(account(url), clock.time())
        second.restore(saved)
        await poll(h, second, sim, truth, first_start, [0] + [60] * 20)
        assert_matches(second, truth)
    connected_while_down = [
        s
        for s in sim.world.visible()
        if s.billable_ms is not None and down_from < s.billable_ms / 1000 < down_from + 1800
    ]
    assert len(connected_while_down) > 5
    assert sum(truth.sessions.values()) > 50


@pytest.mark.parametrize("down", ["exporter", "history"])
async def test_three_days_down_are_caught_up_once(down: str) -> None:
    # Down longer than the two-day window: the exporter (stopped, its state restored)
    # or the History API (failing while the exporter ran, which lost sessions before).
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=8)
    first_start = clock.time()
    truth = Truth()
    async with harness(clock) as h, served(sim) as url:
        c = h.collector(account(url), first_start)
        await poll(h, c, sim, truth, first_start, [0, 60, 60])
        if down == "exporter":
            saved = through_json(c.state())
            clock.advance(3 * 86400)  # the window no longer reaches the last poll
            c = h.collector(account(url), clock.time())
            c.restore(saved)
        else:
            sim.faults.inject("http_500", count=None)
            for _ in range(3):
                clock.advance(86400)
                with pytest.raises(Exception):  # noqa: B017, PT011 - each day's feed fails
                    await c.collect(h.upstream)
            sim.faults.clear()
        await poll(h, c, sim, truth, first_start, [0], feed_days=5)
        await poll(h, c, sim, truth, first_start, [60, 60])
        assert_matches(c, truth)
    # The first feed after reached back to the last one applied, once.
    feeds = [r["startDt"] for r in sim.requests if "startDt" in r]
    assert feeds[-3:] == ["2025-12-31", day(clock.time() - 86400), day(clock.time() - 86400)]
    # Days that only the catch-up covered were counted.
    assert (
        sum(
            1
            for s in sim.world.visible()
            if s.billable_ms is not None
            and first_start + 180 < s.billable_ms / 1000 < clock.time() - 2 * 86400
        )
        > 50
    )


async def test_a_catch_up_still_pending_at_shutdown_stays_pending() -> None:
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=8)
    async with harness(clock) as h, served(sim) as url:
        first = h.collector(account(url))
        await first.collect(h.upstream)
        saved = through_json(first.state())
        clock.advance(3 * 86400)
        second = h.collector(account(url))
        second.restore(saved)
        sim.faults.inject("http_500")
        with pytest.raises(Exception):  # noqa: B017, PT011 - the feed fails, the catch-up waits
            await second.collect(h.upstream)
        assert through_json(second.state())["fed_until"] == NEW_YEARS_EVE


async def test_restart_without_a_state_starts_from_zero() -> None:
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=5)
    async with harness(clock) as h, served(sim) as url:
        first = h.collector(account(url))
        await poll(h, first, sim, Truth(), clock.time(), [0] + [60] * 10)
        clock.advance(600)
        restart = clock.time()
        truth = Truth()
        second = h.collector(account(url), restart)
        await poll(h, second, sim, truth, restart, [0] + [60] * 10)
        assert_matches(second, truth)


async def test_changed_buckets_restart_only_that_histogram() -> None:
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=5)
    async with harness(clock) as h, served(sim) as url:
        first = h.collector(account(url))
        await poll(h, first, sim, Truth(), clock.time(), [0] + [60] * 20)
        before = samples(first.families())
        second = h.collector(account(url, wait_buckets=[5, 50]))
        second.restore(through_json(first.state()))
        after = samples(second.families())
    for name in ("securevideo_sessions_total", "securevideo_session_duration_seconds_count"):
        assert total(after, name) == total(before, name) > 0
    assert total(before, "securevideo_session_wait_seconds_count") > 0
    assert total(after, "securevideo_session_wait_seconds_count") == 0


BAD_STATES: list[tuple[str, Any]] = [
    ("version", 0),
    ("counted_from", None),
    ("fed_until", "yesterday"),
    ("fed_until", 1e12),  # the year 33658: every cycle failed, for good
    ("fed_until", -1e11),  # the year -1199: the next feed would ask for every day since
    ("seen", [[1, 4.1e9, True, False, False]]),  # billed in 2099: never forgotten
    ("version", 3),
    ("version", True),
    ("seen", [[1, 2.0, True]]),
    ("seen", [[1, 2.0, True, False]]),  # a version 1 entry in a version 2 state
    ("seen", [[1, 2.0, "yes", False, False]]),
    ("seen", [["1", 2.0, True, False, False]]),
    ("sessions", [[["BILL", "OnDemand"], 1.0]]),
    ("sessions", "many"),
    ("durations", [[["Zoom"], [1], 60.0]]),
    ("waits", [[["Zoom", "x"], [0] * 11, 60.0]]),
    ("consults", None),
    ("consults", [[["Zoom"], [1], 60.0]]),
    ("start_delays", [[["Scheduled"], [0] * 16 + [-1], 1.0]]),
    ("early_starts", [[["Scheduled"], -1.0]]),
    ("early_starts", None),
]


async def test_a_version_1_state_carries_on_and_the_new_series_start_at_zero() -> None:
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=5)
    async with harness(clock) as h, served(sim) as url:
        first = h.collector(account(url))
        await poll(h, first, sim, Truth(), clock.time(), [0] + [60] * 20)
        state = through_json(first.state())
        # What the previous release saved: no consult, start delay or early starts.
        old = {
            k: v for k, v in state.items() if k not in ("consults", "start_delays", "early_starts")
        }
        old["version"] = 1
        old["seen"] = [item[:4] for item in state["seen"]]
        second = h.collector(account(url))
        second.restore(old)
        await second.collect(h.upstream)
        before, after = samples(first.families()), samples(second.families())
    assert (
        total(after, "securevideo_sessions_total")
        >= total(before, "securevideo_sessions_total")
        > 0
    )
    assert (
        total(after, "securevideo_session_duration_seconds_count")
        >= total(before, "securevideo_session_duration_seconds_count")
        > 0
    )
    # Sessions whose duration the old process observed never land in the new histogram.
    assert total(after, "securevideo_session_consult_seconds_count") == total(
        after, "securevideo_session_duration_seconds_count"
    ) - total(before, "securevideo_session_duration_seconds_count")
    assert len(pick(after, "securevideo_session_early_starts_total")) == 2  # zero-filled


@pytest.mark.parametrize(("key", "value"), BAD_STATES)
async def test_a_state_that_does_not_fit_is_refused_and_changes_nothing(
    key: str, value: Any
) -> None:
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=5)
    async with harness(clock) as h, served(sim) as url:
        first = h.collector(account(url))
        await poll(h, first, sim, Truth(), clock.time(), [0, 600, 600])
        state = through_json(first.state())
        assert state["seen"], "the test needs a non-empty state"
        state[key] = value
        fresh = SecureVideoCollector(account(url), h.context())
        before = through_json(fresh.state())
        with pytest.raises(ValueError):
            fresh.restore(state)
        assert through_json(fresh.state()) == before


async def test_saved_by_changes_the_store_gives_back_what_state_gives(tmp_path: Path) -> None:
    """Saved as changes every cycle (sessions new or newly observed, sessions pruned by
    BillableTs), the store holds exactly the whole state, across days of pruning."""
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=5)
    truth = Truth()
    store = StateStore(tmp_path / "s.db")
    changed, deleted = [], 0
    async with harness(clock) as h, served(sim) as url:
        c = h.collector(account(url), clock.time())
        for step in [0] + [60] * 3 + [12 * 3600] * 9:
            await poll(h, c, sim, truth, clock.time(), [step])
            saved = c.saved_state()
            changed.append(len(saved.tables["seen"].upserts))
            deleted += len(saved.tables["seen"].deletes)
            store.save("securevideo", "acme", saved, clock.time())
        state = store.load("securevideo", "acme")
        store.close()
        assert state is not None
        expected = through_json(c.state())
        assert sorted(state["seen"]) == sorted(expected["seen"])
        assert {**state, "seen": None} == {**expected, "seen": None}
        assert deleted > 0  # pruning was saved as deletes
        assert min(changed[1:]) < c.tracked_sessions  # an hour's changes, not the memory
        second = h.collector(account(url), clock.time())
        second.restore(state)
        again = second.state()
        assert sorted(again["seen"]) == sorted(c.state()["seen"])
        assert {**again, "seen": None} == {**c.state(), "seen": None}
        second.restored_from_store()  # as from the keys table: changes alone follow
        assert not second.saved_state().tables["seen"].whole
