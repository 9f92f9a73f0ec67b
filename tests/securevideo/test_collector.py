"""The collector against the simulator over real loopback HTTP, checked against the
simulator's own ground truth (its world model, not its HTTP replies)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

import pytest
from prometheus_client.core import Metric

from exporter.errors import UpstreamError
from exporter.simulators.clock import FakeClock
from exporter.simulators.securevideo import SecureVideoSimulator
from exporter.simulators.securevideo_world import World
from exporter.snapshot import render
from exporter.vendors.securevideo.collector import BILLABLE_STATUSES

from ..support import require_tool
from .harness import (
    NEW_YEARS_EVE,
    Samples,
    Truth,
    account,
    assert_matches,
    harness,
    pick,
    samples,
    served,
    total,
)


def in_progress(world: World, t: float, feed_days: int = 2) -> int:
    t_ms = int(t * 1000)
    today = datetime.fromtimestamp(t, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    low = int((today - timedelta(days=feed_days - 1)).timestamp() * 1000)
    return sum(
        1
        for s in world.visible(t)
        if s.billable_ms is not None
        and low <= s.billable_ms <= t_ms
        and s.duration_at(t_ms) is None
    )


def month_truth(world: World, t: float) -> dict[str, float]:
    t_ms = int(t * 1000)
    month = datetime.fromtimestamp(t, UTC).strftime("%Y-%m")
    counts: Counter[str] = Counter(dict.fromkeys(BILLABLE_STATUSES, 0))
    for s in world.visible(t):
        if (
            s.billable_ms is not None
            and s.connected(t_ms)
            and datetime.fromtimestamp(s.billable_ms / 1000, UTC).strftime("%Y-%m") == month
        ):
            status = s.status_at(t_ms)
            assert status is not None
            counts[status] += 1
    return {k: float(v) for k, v in counts.items()}


def poll_times(start: float, steps: Iterable[float]) -> list[float]:
    times, t = [], start
    for step in steps:
        t += step
        times.append(t)
    return times


async def test_matches_ground_truth_across_midnight_month_and_year() -> None:
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=11)
    started_at = clock.time()
    truth = Truth()
    # Uneven intervals, repeated polls at one instant, and a long gap: windows overlap.
    steps = [0, 45, 0, 90, 17, 300, 60, 60, 0, 1200] + [120] * 30 + [3, 3, 3, 49, 1800]
    async with harness(clock) as h, served(sim) as url:
        c = h.collector(account(url, month_interval="0s"), started_at)
        checked_month_change = False
        for t in poll_times(started_at, steps):
            clock.set(t)
            await c.collect(h.upstream)
            truth.poll(sim.world, t, started_at)
            assert_matches(c, truth)
            m = samples(c.families())
            assert total(m, "securevideo_sessions_in_progress") == in_progress(sim.world, t)
            month = {
                dict(k)["billable_status"]: v
                for k, v in pick(m, "securevideo_sessions_month").items()
            }
            assert month == month_truth(sim.world, t)
            if t >= datetime(2026, 1, 1, tzinfo=UTC).timestamp() and not checked_month_change:
                checked_month_change = True
                assert sum(month.values()) < 20  # December is gone, January just began
        assert checked_month_change
        assert h.failures() == {}
    assert sum(truth.sessions.values()) > 100
    assert set(truth.durations) == {"Zoom", "One-Click", "VSee"}
    assert {k[0] for k in truth.sessions} >= {"BILL", "DUPL"}
    # Every kind of start the simulator draws happened: late, early, on time-ish.
    assert min(truth.early_starts.values()) > 0
    assert all(any(v > 60 for v in vs) for vs in truth.start_delays.values())
    assert set(truth.consults) == {"Zoom", "One-Click", "VSee"}
    # The counters only count sessions that connected after we started.
    connected_since = {
        s.session_id
        for s in sim.world.visible()
        if s.billable_ms is not None and started_at <= s.billable_ms / 1000 <= clock.time()
    }
    assert sum(truth.sessions.values()) == len(connected_since)


async def test_a_month_far_bigger_than_max_body_bytes_is_still_counted() -> None:
    """Issue 15: the month reply was read whole under max_body_bytes, so a busy account
    went down for the rest of the month. It is now counted as it streams in."""
    clock = FakeClock(datetime(2026, 1, 3, 0, 10, tzinfo=UTC).timestamp())
    sim = SecureVideoSimulator(clock, seed=4, history=2 * 86400 + 600)
    async with harness(clock, max_body_bytes=256 * 1024) as h, served(sim) as url:
        c = h.collector(account(url, feed_days=1), clock.time())
        await c.collect(h.upstream)
        assert h.failures() == {}
        month = {
            dict(k)["billable_status"]: v
            for k, v in pick(samples(c.families()), "securevideo_sessions_month").items()
        }
        assert month == month_truth(sim.world, clock.time())
        assert sum(month.values()) > 5000
        # What the month reply weighs on the wire:
        body = json.dumps(sim.world.query(clock.time(), month=date(2026, 1, 1))).encode()
        assert len(body) > 10 * 256 * 1024  # ten times the cap


async def test_restart_does_not_recount_and_loses_nothing() -> None:
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=5)
    first_start = clock.time()
    async with harness(clock) as h, served(sim) as url:
        acct = account(url)
        first = h.collector(acct, first_start)
        for _ in range(30):
            clock.advance(60)
            await first.collect(h.upstream)
        restart = clock.time()
        second = h.collector(acct, restart)  # a new process: empty state
        for _ in range(30):
            await second.collect(h.upstream)
            clock.advance(60)
        await second.collect(h.upstream)
    before = total(samples(first.families()), "securevideo_sessions_total")
    after = total(samples(second.families()), "securevideo_sessions_total")
    connected = [
        s.billable_ms / 1000
        for s in sim.world.visible()
        if s.billable_ms is not None and s.billable_ms / 1000 <= clock.time()
    ]
    assert before == sum(1 for b in connected if first_start <= b <= restart)
    assert after == sum(1 for b in connected if b >= restart)
    assert before > 0 and after > 0
    assert before + after == sum(1 for b in connected if b >= first_start)
    # The restarted collector saw the earlier sessions (in progress, finishing) and
    # observed none of their durations.
    truth = Truth()
    t = restart
    while t <= clock.time():
        truth.poll(sim.world, t, restart)
        t += 60
    assert_matches(second, truth)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("http_500", "http_5xx"),
        ("http_503", "http_5xx"),
        ("rate_limit", "rate_limited"),
        ("auth", "auth"),
        ("garbage", "parse"),
        ("truncate", "connection"),
        ("reset", "connection"),
    ],
)
async def test_faults_map_to_reasons_and_nothing_is_lost(fault: str, reason: str) -> None:
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=3)
    started_at = clock.time()
    truth = Truth()
    async with harness(clock) as h, served(sim) as url:
        c = h.collector(account(url), started_at)
        await c.collect(h.upstream)
        truth.poll(sim.world, clock.time(), started_at)
        clock.advance(60)
        # aiohttp silently retries an idempotent GET once when a pooled connection is
        # reset, so a reset must hit twice to surface.
        sim.faults.inject(fault, count=2 if fault == "reset" else 1, seconds=30)
        with pytest.raises(UpstreamError) as caught:
            await c.collect(h.upstream)
        assert caught.value.reason == reason
        assert caught.value.operation == "history"
        if fault == "rate_limit":
            assert caught.value.retry_after == 30
        assert_matches(c, truth)  # a failed cycle changes nothing
        clock.advance(60)
        await c.collect(h.upstream)
        truth.poll(sim.world, clock.time(), started_at)
        assert_matches(c, truth)
        assert h.failures() == {("history", reason): 1.0}


async def test_bad_credentials_are_an_auth_failure_with_the_vendor_message(
    read_metrics: Callable[[Iterable[Metric]], Samples],
) -> None:
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=3)
    async with harness(clock) as h, served(sim) as url:
        c = h.collector(account(url, api_secret="wrong-secret-value"))
        with pytest.raises(UpstreamError) as caught:
            await c.collect(h.upstream)
    assert caught.value.reason == "auth"
    assert caught.value.message == ("HTTP 401: Authorization has been denied for this request.")
    assert "wrong-secret-value" not in str(caught.value)
    assert total(read_metrics(c.families()), "securevideo_sessions_total") == 0


async def test_host_user_and_participant_filters_reach_the_simulator() -> None:
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=3)
    async with harness(clock) as h, served(sim) as url:
        c = h.collector(account(url, host_user_id=3), started_at=0.0)
        await c.collect(h.upstream)
    truth = sum(
        1
        for s in sim.world.visible()
        if s.host_user_id == 3
        and s.billable_ms is not None
        and s.connected(int(clock.time() * 1000))
    )
    assert total(samples(c.families()), "securevideo_sessions_total") == truth > 0
    assert list(sim.requests)[-2:] == [
        {"startDt": "2025-12-30", "endDt": "2025-12-31"},
        {"month": "2025-12-01"},
    ]


@pytest.mark.parametrize("offset", [0.0, 7.0, 13.5, 22.0, 29.9, 1234.5])
async def test_demo_every_metric_is_non_zero_within_a_minute(offset: float) -> None:
    clock = FakeClock(datetime(2026, 5, 12, 14, tzinfo=UTC).timestamp() + offset)
    sim = SecureVideoSimulator(clock, seed=1)
    async with harness(clock) as h, served(sim) as url:
        (entry,) = sim.demo_accounts(url)
        assert entry["name"] == "demo-clinic" and entry["interval"] == "5s"
        fields = {k: v for k, v in entry.items() if k != "name"}
        c = h.collector(account(**fields))
        for _ in range(12):
            await c.collect(h.upstream)
            clock.advance(5)
        await c.collect(h.upstream)
    m = samples(c.families())
    for name in (
        "securevideo_sessions_total",
        "securevideo_session_duration_seconds_count",
        "securevideo_session_wait_seconds_count",
        "securevideo_sessions_in_progress",
        "securevideo_sessions_month",
    ):
        assert total(m, name) > 0, name


async def test_exposition_passes_promtool_check_metrics() -> None:
    require_tool("promtool")
    clock = FakeClock(NEW_YEARS_EVE)
    sim = SecureVideoSimulator(clock, seed=1)
    async with harness(clock) as h, served(sim) as url:
        c = h.collector(account(url))
        for _ in range(30):
            await c.collect(h.upstream)
            clock.advance(20)
    text = render(c.families()).text
    assert b"securevideo_session_wait_seconds_bucket" in text
    result = await asyncio.to_thread(
        subprocess.run,
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def connected(sim: SecureVideoSimulator, lo: float, hi: float) -> int:
    """The simulator's sessions that connected (BillableTs) in [lo, hi]."""
    return sum(
        1
        for s in sim.world.visible()
        if s.billable_ms is not None and lo <= s.billable_ms / 1000 <= hi
    )


async def test_a_host_clock_ahead_counts_from_our_start_on_securevideos_clock() -> None:
    # Probe 7: started with our clock 30 minutes ahead, the sessions that connected in
    # those 30 minutes after we started (on SecureVideo's clock) were never counted.
    clock = FakeClock(datetime(2026, 5, 12, 14, tzinfo=UTC).timestamp())
    sim = SecureVideoSimulator(clock, seed=5)
    ours = FakeClock(clock.time() + 1800)
    started = clock.time()
    async with harness(ours) as h, served(sim) as url:  # our clock dates our side
        c = h.collector(account(url))
        for _ in range(90):
            clock.advance(60)
            ours.advance(60)
            await c.collect(h.upstream)
        assert h.failures() == {}

    assert connected(sim, started, started + 1800) > 0, "sessions connected in the gap"
    counted = total(samples(c.families()), "securevideo_sessions_total")
    assert counted == connected(sim, started, clock.time())


async def test_our_clock_a_week_ahead_for_two_cycles_counts_nothing_twice() -> None:
    # Sessions are forgotten against a horizon our clock sets: a week ahead for two
    # cycles, it forgot all of today's, and they were counted again once it came back.
    clock = FakeClock(datetime(2026, 5, 12, 9, tzinfo=UTC).timestamp())
    sim = SecureVideoSimulator(clock, seed=5)
    ours = FakeClock(clock.time())
    started = clock.time()
    async with harness(ours) as h, served(sim) as url:
        c = h.collector(account(url))
        for cycle in range(120):
            clock.advance(60)
            ours.advance(60)
            ours.step(clock.time() + (7 * 86400 if cycle in (60, 61) else 0))
            await c.collect(h.upstream)
        assert h.failures() == {}

    assert connected(sim, started, clock.time() - 3600) > 20
    assert total(samples(c.families()), "securevideo_sessions_total") == connected(
        sim, started, clock.time()
    )


async def test_a_clock_step_before_the_first_reply_counts_nothing_from_before_our_start() -> None:
    # A review found it: right when the collector was made, 2 h ahead by the first reply,
    # the skew was taken to have held at the start, which moved 2 h back (710 counted
    # where 302 connected since).
    clock = FakeClock(datetime(2026, 5, 12, 14, tzinfo=UTC).timestamp())
    sim = SecureVideoSimulator(clock, seed=5)
    ours = FakeClock(clock.time())
    started = clock.time()
    async with harness(ours) as h, served(sim) as url:
        c = h.collector(account(url))
        for _ in range(90):
            clock.advance(60)
            ours.advance(60)
            ours.step(clock.time() + 2 * 3600)
            await c.collect(h.upstream)

    since_start = connected(sim, started, clock.time())
    assert since_start > 50
    assert total(samples(c.families()), "securevideo_sessions_total") == since_start


async def test_a_one_day_window_follows_securevideos_day_with_our_clock_ahead() -> None:
    # A review found it: with feed_days 1 and our clock 30 minutes ahead at 23:50, the
    # window was our clock's day, tomorrow's, and 34 of 105 sessions were lost.
    clock = FakeClock(datetime(2026, 5, 12, 23, 50, tzinfo=UTC).timestamp())
    sim = SecureVideoSimulator(clock, seed=5)
    ours = FakeClock(clock.time() + 1800)
    started = clock.time()
    async with harness(ours) as h, served(sim) as url:
        c = h.collector(account(url, feed_days=1))
        for _ in range(60):
            clock.advance(60)
            ours.advance(60)
            await c.collect(h.upstream)

    since_start = connected(sim, started, clock.time())
    assert since_start > 20
    assert total(samples(c.families()), "securevideo_sessions_total") == since_start
