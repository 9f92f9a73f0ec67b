"""The Glance collector against the simulator over real loopback HTTP, time on a FakeClock."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from exporter.admission import Admission
from exporter.errors import UpstreamError
from exporter.http import Upstream
from exporter.simulators.clock import FakeClock
from exporter.simulators.glance import GlanceSimulator
from exporter.vendorclock import vendor_now
from exporter.vendors.glance.client import GlanceClient
from exporter.vendors.glance.collector import STATUSES, GlanceCollector, utc_text
from exporter.vendors.glance.parser import NS

from ..support import collector_context
from .harness import (
    NOON_ISH,
    Harness,
    assert_feed_matches,
    by_label,
    completed,
    make_account,
    series,
    start_harness,
    stop_harness,
)

HOUR = 3600.0

# `clock` and `h` (a collector against the simulator over loopback) come from conftest.py.


async def test_every_metric_is_labelled_with_the_account_first(h: Harness) -> None:
    c = h.collector(users=["JDemo"], name="acme-eu")
    await c.collect(h.upstream())
    names = set()
    for family in c.families():
        names.add(family.name)
        for s in family.samples:
            assert s.labels["account"] == "acme-eu"
    assert names == {
        "glance_sessions_current",
        "glance_session_guests_current",
        "glance_waiting_session_oldest_start_timestamp_seconds",
        "glance_sessions_today",
        "glance_session_average_duration_seconds",
        "glance_completed_feed_timestamp_seconds",
        "glance_sessions_completed",
        "glance_session_duration_seconds",
        "glance_session_wait_seconds",
        "glance_user_sessions_current",
    }


async def test_current_sessions_match_the_simulator(h: Harness) -> None:
    c = h.collector()
    await c.collect(h.upstream())
    live = h.sim.in_progress()
    now = h.clock.time()
    want = {(t, s): 0.0 for t in "CGV" for s in "AW"}
    for s in live:
        want[(s.type, s.status_at(now))] += 1
    got = by_label(series(c.families(), "glance_sessions_current"), "session_type", "status")
    assert got == want
    assert sum(want.values()) > 5

    guests = by_label(series(c.families(), "glance_session_guests_current"), "session_type")
    assert guests == {
        (t,): float(sum(s.guests for s in live if s.type == t and s.status_at(now) == "A"))
        for t in "CGV"
    }

    oldest = by_label(
        series(c.families(), "glance_waiting_session_oldest_start_timestamp_seconds"),
        "session_type",
    )
    waiting = [s for s in live if s.status_at(now) == "W"]
    assert oldest == {
        (t,): float(min(s.start for s in waiting if s.type == t)) for t in {s.type for s in waiting}
    }


async def test_oldest_waiting_is_absent_when_nobody_waits(h: Harness) -> None:
    c = h.collector()
    # Walk forward until a moment when some type has nobody waiting.
    for _ in range(200):
        await c.collect(h.upstream())
        waiting = {s.type for s in h.sim.in_progress() if s.status_at(h.clock.time()) == "W"}
        if waiting != {"C", "G", "V"}:
            break
        h.clock.advance(7)
    got = by_label(
        series(c.families(), "glance_waiting_session_oldest_start_timestamp_seconds"),
        "session_type",
    )
    assert {k[0] for k in got} == waiting


@pytest.mark.parametrize(
    ("zone", "midnight"),
    [
        ("UTC", datetime(2026, 3, 10, 0, 0, tzinfo=UTC).timestamp()),
        ("America/New_York", datetime(2026, 3, 10, 4, 0, tzinfo=UTC).timestamp()),
        ("Asia/Kolkata", datetime(2026, 3, 9, 18, 30, tzinfo=UTC).timestamp()),
    ],
)
async def test_today_gauges_use_the_local_day(h: Harness, zone: str, midnight: float) -> None:
    c = h.collector(timezone=zone)
    await c.collect(h.upstream())
    end = midnight + 24 * HOUR
    started = {
        **h.sim.session_counts(midnight, end, "A"),
        **h.sim.session_counts(midnight, end, "C"),
    }
    ended = h.sim.session_counts_ending(midnight, end)
    assert started and ended

    counts = by_label(
        series(c.families(), "glance_sessions_today"), "counted_by", "session_type", "status"
    )
    averages = by_label(
        series(c.families(), "glance_session_average_duration_seconds"),
        "counted_by",
        "session_type",
        "status",
    )
    want = {("start", t, s): float(n) for (t, s), (n, _) in started.items()}
    want |= {("end", t, s): float(n) for (t, s), (n, _) in ended.items()}
    zero_filled = {(by, t, "C"): 0.0 for by in ("start", "end") for t in "CGV"}
    assert counts == zero_filled | want
    assert averages == {("start", t, s): float(a) for (t, s), (_, a) in started.items()} | {
        ("end", t, s): float(a) for (t, s), (_, a) in ended.items()
    }
    sent = [p for op, p in h.sim.requests if op == "PartnerSessionCounts"]
    assert sorted(p["status"] for p in sent) == ["A", "C"]
    assert {p["startRange"] for p in sent} == {
        datetime.fromtimestamp(midnight, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    }


async def test_completed_sessions_counted_once_across_overlapping_polls_and_pages(
    h: Harness,
) -> None:
    started_at = h.clock.time()
    c = h.collector(page_size=4, feed_overlap="30m")
    for step in (0, 0, 5, 60, 1, 300, 45, 900, 2, 1200, 30):
        h.clock.advance(step)
        await c.collect(h.upstream())
    assert_feed_matches(h, c, started_at)
    pages = [p for op, p in h.sim.requests if op == "PartnerCompletedSessionsEnding"]
    assert any(p["nextId"] != "0" for p in pages), "the test should cross page boundaries"
    assert not h.rejects


async def test_the_feed_begins_at_the_first_whole_second_after_the_start(h: Harness) -> None:
    # Probe 12: started 0.02 s into a second, the first read began at that second, and
    # a session that had ended in it, before the start, was counted.
    started_at = float(int(h.clock.time())) + 0.02
    c = h.collector(started_at=started_at)
    h.clock.advance(60)
    await c.collect(h.upstream())
    (first, *_) = [p for op, p in h.sim.requests if op == "PartnerCompletedSessionsEnding"]
    whole = datetime.fromtimestamp(int(started_at) + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert first["startRange"] == whole


@pytest.mark.parametrize("end_style", ["empty_page", "zero", "same"])
async def test_every_way_of_ending_a_feed(clock: FakeClock, end_style: str) -> None:
    sim = GlanceSimulator(clock, seed=3, end_style=end_style)
    h = await start_harness(clock, sim)
    try:
        c = h.collector(page_size=3)
        for _ in range(6):
            clock.advance(240)
            await c.collect(h.upstream())
        assert_feed_matches(h, c, NOON_ISH)
    finally:
        await stop_harness(h)


async def test_restart_does_not_recount(h: Harness) -> None:
    first = h.collector(page_size=10)
    for _ in range(5):
        await first.collect(h.upstream())
        h.clock.advance(600)
    restarted_at = h.clock.time()
    second = h.collector(started_at=restarted_at, page_size=10)
    for _ in range(3):
        h.clock.advance(120)
        await second.collect(h.upstream())
        await first.collect(h.upstream())
    assert_feed_matches(h, second, restarted_at)
    assert_feed_matches(h, first, NOON_ISH)
    assert sum(completed(second).values()) < sum(completed(first).values())


async def test_lookback_backfills_once(h: Harness) -> None:
    started_at = h.clock.time()
    c = h.collector(lookback="3h", page_size=50)
    for step in (0, 60, 60, 60):
        h.clock.advance(step)
        await c.collect(h.upstream())
    assert_feed_matches(h, c, started_at - 3 * HOUR)
    backfill = [p for op, p in h.sim.requests if op == "PartnerCompletedSessions"]
    assert backfill, "lookback reads PartnerCompletedSessions"
    assert {(p["startRange"], p["endRange"]) for p in backfill} == {
        ("2026-03-10T12:00:00Z", "2026-03-10T15:00:00Z")
    }
    assert all(p["nextId"] != "0" for p in backfill[1:])  # one pass, paged, never repeated


async def test_lookback_beyond_31_days(clock: FakeClock) -> None:
    sim = GlanceSimulator(clock, seed=5, history=40 * 86400, rate=1 / 3600)
    h = await start_harness(clock, sim)
    try:
        c = h.collector(lookback="35d", page_size=200)
        await c.collect(h.upstream())
        clock.advance(60)
        await c.collect(h.upstream())
        assert_feed_matches(h, c, NOON_ISH - 35 * 86400)
        assert sum(completed(c).values()) > 500
        assert not h.failures()
    finally:
        await stop_harness(h)


def fail_nth(operation: str, n: int) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Fail the n-th request of an operation once, like a hiccup in the middle of a feed."""
    seen = {"count": 0}

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.endswith("/" + operation):
            seen["count"] += 1
            if seen["count"] == n:
                return web.Response(status=502, text="Bad Gateway")
        return await handler(request)

    return middleware


async def test_failure_mid_feed_keeps_what_was_counted(clock: FakeClock) -> None:
    sim = GlanceSimulator(clock, seed=11)
    app = sim.app()
    app.middlewares.append(fail_nth("PartnerCompletedSessionsEnding", 3))
    h = await start_harness(clock, sim, app)
    try:
        c = h.collector(page_size=2)
        clock.advance(1800)
        with pytest.raises(UpstreamError) as info:
            await c.collect(h.upstream())
        assert info.value.reason == "http_5xx"
        assert c.cursor == NOON_ISH, "a failed feed must not move the cursor"
        partial = sum(completed(c).values())
        assert partial == 4, "the two pages before the failure stay counted"
        await c.collect(h.upstream())
        assert c.cursor == clock.time()
        assert_feed_matches(h, c, NOON_ISH)
    finally:
        await stop_harness(h)


def cached_page(
    body: bytes, clock: FakeClock, since: float = 0.0
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware answering every PartnerCompletedSessionsEnding page with `body` from
    Glance's time `since` (an empty page before)."""
    empty = completed_page("")

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.endswith("/PartnerCompletedSessionsEnding"):
            served = body if clock.time() >= since else empty
            return web.Response(body=served, content_type="text/xml")
        return await handler(request)

    return middleware


def completed_page(sessions: str) -> bytes:
    return (
        f'<groupSessions xmlns="{NS}"><nextId>0</nextId><users><userSessions>'
        "<partnerUserId>U</partnerUserId><validUser>true</validUser>"
        f"<sessions>{sessions}</sessions></userSessions></users></groupSessions>"
    ).encode()


def completed_session(session_id: int, start: float, duration: str) -> str:
    return (
        f"<session><id>{session_id}</id><type>C</type><status>C</status>"
        f"<startTime>{utc_text(start)}</startTime>{duration}</session>"
    )


@pytest.mark.parametrize(
    "ended",
    [NOON_ISH - 2 * 3600, NOON_ISH + 1800],
    ids=["first-read-after-its-end", "first-read-holding-its-end"],
)
async def test_a_cached_reply_is_counted_once_however_long_it_is_served(
    clock: FakeClock, ended: float
) -> None:
    # Probe 13: a session a read returned whose end lay outside that read's range
    # (within the day's tolerance) was kept only as long as the read that first held
    # it asked, so a reply served for every read (a cache) counted it again each 80
    # minutes; the review found the second case, a cache of a reply first read right.
    body = completed_page(
        completed_session(1, ended - 300, "<duration>300</duration>")
        + completed_session(2, ended - 60, "<duration>60</duration>")
    )
    sim = GlanceSimulator(clock, seed=3)
    app = sim.app()
    app.middlewares.append(cached_page(body, clock, since=ended + 30))
    h = await start_harness(clock, sim, app)
    try:
        c = h.collector()
        counted = []
        for _ in range(6 * 30):  # 30 hours of ten-minute cycles
            await c.collect(h.upstream())
            counted.append(sum(completed(c).values()))
            clock.advance(600)
        assert set(counted) - {0.0} == {2.0}
        assert h.rejects["implausible_value"] == 2  # once each, a day past its end
    finally:
        await stop_harness(h)


@pytest.mark.parametrize("duration", ["", "<duration>x</duration>"])
async def test_a_long_session_without_a_duration_is_counted(
    clock: FakeClock, duration: str
) -> None:
    # The review: dated by its start alone, a 30-hour session that ended in the read
    # was refused as a day outside it. Undated, it is taken as ending in the read.
    body = completed_page(completed_session(1, NOON_ISH - 30 * 3600, duration))
    sim = GlanceSimulator(clock, seed=3)
    app = sim.app()
    app.middlewares.append(cached_page(body, clock))
    h = await start_harness(clock, sim, app)
    try:
        c = h.collector()
        await c.collect(h.upstream())
        assert sum(completed(c).values()) == 1.0
        assert (h.rejects["missing_duration"], h.rejects["implausible_value"]) == (1, 0)
    finally:
        await stop_harness(h)


async def test_a_long_outage_does_not_recount(h: Harness) -> None:
    c = h.collector(page_size=20, feed_overlap="10m")
    await c.collect(h.upstream())
    h.clock.advance(300)
    await c.collect(h.upstream())
    before = sum(completed(c).values())
    assert before > 0
    h.sim.faults.inject("http_503", None, path_contains="PartnerCompletedSessionsEnding")
    for _ in range(30):  # 5 hours, far beyond any fixed retention
        h.clock.advance(600)
        with pytest.raises(UpstreamError):
            await c.collect(h.upstream())
    h.sim.faults.clear()
    await c.collect(h.upstream())
    assert_feed_matches(h, c, NOON_ISH)


async def test_seen_ids_are_pruned_in_steady_state(h: Harness) -> None:
    c = h.collector(page_size=100, feed_overlap="5m")
    for _ in range(30):
        h.clock.advance(600)
        await c.collect(h.upstream())
    # About 4 sessions a minute finish (the simulator's rate); only the overlap plus the
    # skew margin (and one poll) is kept, not the 300 minutes polled (about 1200 ids).
    assert len(c.seen) < 4 * (5 + 60 + 10) * 1.5
    assert_feed_matches(h, c, NOON_ISH)


async def test_values_stay_when_a_cycle_fails(h: Harness) -> None:
    c = h.collector(users=["JDemo"])
    await c.collect(h.upstream())
    before = [(f.name, repr(f.samples)) for f in c.families()]
    h.sim.faults.inject("http_500", None)
    h.clock.advance(60)
    with pytest.raises(UpstreamError):
        await c.collect(h.upstream())
    assert [(f.name, repr(f.samples)) for f in c.families()] == before


async def test_one_failing_operation_does_not_stop_the_others(h: Harness) -> None:
    c = h.collector()
    h.sim.faults.inject("garbage", 1, path_contains="PartnerActiveSessions")
    with pytest.raises(UpstreamError) as info:
        await c.collect(h.upstream())
    assert (info.value.operation, info.value.reason) == ("PartnerActiveSessions", "parse")
    assert series(c.families(), "glance_sessions_current") == {}
    assert series(c.families(), "glance_sessions_today")
    assert c.cursor == h.clock.time()


async def test_bad_api_key_is_an_auth_failure(h: Harness) -> None:
    c = h.collector(api_key="wrong-key", users=["JDemo"])
    with pytest.raises(UpstreamError) as info:
        await c.collect(h.upstream())
    assert info.value.reason == "auth"
    assert "wrong-key" not in str(info.value)
    failed = {k[2] for k in h.failures("auth")}
    # The day's calls run in sequence and stop at the first failure; the rest run apart.
    assert failed == {
        "PartnerActiveSessions",
        "PartnerSessionCounts",
        "PartnerCompletedSessionsEnding",
        "PartnerUserSessions",
    }
    assert not h.failures("http_5xx")


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("http_503", "http_5xx"),
        ("rate_limit", "rate_limited"),
        ("truncate", "connection"),
        ("garbage", "parse"),
        ("auth", "auth"),
    ],
)
async def test_faults_map_to_reasons(h: Harness, fault: str, reason: str) -> None:
    c = h.collector()
    h.sim.faults.inject(fault, None, seconds=42)
    with pytest.raises(UpstreamError) as info:
        await c.collect(h.upstream())
    assert info.value.reason == reason
    if fault == "rate_limit":
        assert info.value.retry_after == 42


async def test_user_gauges_match_the_simulator(h: Harness) -> None:
    users = ["JDemo", "ASmith", "BJones"]
    c = h.collector(users=users)
    for _ in range(3):
        h.clock.advance(97)
        await c.collect(h.upstream())
        now = h.clock.time()
        got = by_label(series(c.families(), "glance_user_sessions_current"), "user", "session_type")
        want = {(u, t): 0.0 for u in users for t in "CGV"}
        for u in users:
            for s in h.sim.user_in_progress(u, now - 24 * HOUR, now + HOUR):
                want[(u, s.type)] += 1
        assert got == want
        assert sum(want.values()) > 0


async def test_a_user_session_listed_twice_is_counted_once(clock: FakeClock) -> None:
    # Probe 13: PartnerUserSessions' sessions were counted per row, so one listed twice
    # counted two (PartnerActiveSessions' already counted it once).
    session = (
        f"<session><id>61943691</id><type>C</type><status>A</status>"
        f"<startTime>{utc_text(clock.time() - 60)}</startTime></session>"
    )
    body = (
        f'<userSessions xmlns="{NS}"><partnerUserId>JDemo</partnerUserId>'
        f"<validUser>true</validUser><sessions>{session * 2}</sessions></userSessions>"
    ).encode()

    @web.middleware
    async def twice(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.endswith("/PartnerUserSessions"):
            return web.Response(body=body, content_type="text/xml")
        return await handler(request)

    sim = GlanceSimulator(clock, seed=3)
    app = sim.app()
    app.middlewares.append(twice)
    h = await start_harness(clock, sim, app)
    try:
        c = h.collector(users=["JDemo"])
        for _ in range(3):
            await c.collect(h.upstream())
            clock.advance(30)
        got = by_label(series(c.families(), "glance_user_sessions_current"), "user", "session_type")
        assert got[("JDemo", "C")] == 1.0
        assert h.rejects["invalid_record"] == 1  # the second row, once
    finally:
        await stop_harness(h)


async def test_invalid_user_vanishes_and_is_logged_once(h: Harness) -> None:
    c = h.collector(users=["JDemo", "Nobody"])
    for _ in range(3):
        await c.collect(h.upstream())
        h.clock.advance(30)
    users = {k[0] for k in by_label(series(c.families(), "glance_user_sessions_current"), "user")}
    assert users == {"JDemo"}
    warnings = [e for e in h.log.events if e[0] == "warning"]
    assert warnings == [
        (
            "warning",
            "glance_user_not_valid",
            {"user": "Nobody", "hint": "check the partnerUserId in the config"},
        )
    ]


async def test_unknown_types_and_statuses_are_kept_within_the_limit(clock: FakeClock) -> None:
    sim = GlanceSimulator(
        clock,
        seed=2,
        session_types={"C": 1, "S": 1, "Y": 1, "Z": 1},
        final_statuses={"C": 1, "N": 1, "P": 1},
    )
    h = await start_harness(clock, sim)
    try:
        c = h.collector(label_limit=1, page_size=100)
        for _ in range(4):
            clock.advance(900)
            await c.collect(h.upstream())
        got = completed(c)
        types = {t for t, _ in got}
        statuses = {s for _, s in got}
        assert {"C", "other"} <= types and len(types - {"C", "G", "V", "other"}) == 1
        assert "other" in statuses and len(statuses - set(STATUSES) - {"other"}) == 1
        ended = h.sim.completed_ended(NOON_ISH, clock.time())
        assert sum(got.values()) == len(ended), "folded, never dropped"
        assert h.rejects["label_overflow"] > 0
    finally:
        await stop_harness(h)


async def test_yesterdays_totals_never_pose_as_todays_while_todays_calls_fail(
    h: Harness,
) -> None:
    c = h.collector(timezone="America/New_York")
    h.clock.set(datetime(2026, 3, 11, 3, 57, tzinfo=UTC).timestamp())  # 23:57 in New York
    await c.collect(h.upstream())
    assert sum(series(c.families(), "glance_sessions_today").values()) > 0
    h.clock.advance(4 * 60)  # 00:01, a new local day
    h.sim.faults.inject("http_500", 1, path_contains="PartnerSessionCountsEnding")
    with pytest.raises(UpstreamError):
        await c.collect(h.upstream())
    assert series(c.families(), "glance_sessions_today") == {}
    assert series(c.families(), "glance_session_average_duration_seconds") == {}
    await c.collect(h.upstream())
    assert series(c.families(), "glance_sessions_today")  # today's, once its calls work


async def test_a_host_clock_ahead_of_glances_loses_no_completed_session(
    clock: FakeClock,
) -> None:
    # The feed's cursor followed our clock: 30 minutes ahead, each window began after
    # what Glance had recorded yet, and a third of the completed sessions were lost.
    # And the feed started when we did on our clock: the sessions that ended in the 30
    # minutes after we started on Glance's were never read, even once the clocks agreed.
    sim = GlanceSimulator(clock, seed=1)  # its replies' Date follows its clock
    h = await start_harness(clock, sim, sim.app())
    try:
        ours = FakeClock(clock.time() + 1800)
        account = make_account(h.base_url)
        ctx = collector_context(ours, h.rejects)
        c = GlanceCollector(account, ctx, client=GlanceClient(account, ctx))
        upstream = Upstream(
            h.session,
            vendor="glance",
            account="acme",
            timeout=5.0,
            admission=Admission(4),
            metrics=h.metrics,
            max_body_bytes=1 << 24,
            wall_time=ours.time,
        )
        started = clock.time()  # on Glance's clock
        for _ in range(120):
            clock.advance(60)
            ours.advance(60)
            await c.collect(upstream)
        assert_feed_matches(h, c, started)
        assert h.sim.completed_ended(started, started + 1800), "sessions ended in the gap"
    finally:
        await stop_harness(h)


def test_the_vendors_now_believes_a_date_header_behind_us_by_a_day_at_most() -> None:
    assert vendor_now(10_000_000.0, -1800.0) == 10_000_000.0 - 1800
    assert vendor_now(10_000_000.0, 120.0) == vendor_now(10_000_000.0, None) == 10_000_000.0
    assert vendor_now(10_000_000.0, -86400.0) == 10_000_000.0 - 86400
    # A hostile Date (1970) is not believed: taken as a day behind, it held every
    # completed session back a day, with `up` 1 and nothing logged.
    assert vendor_now(10_000_000.0, -86401.0) == 10_000_000.0
    assert vendor_now(10_000_000.0, -9e9) == 10_000_000.0


async def test_today_statuses_can_be_narrowed(h: Harness) -> None:
    c = h.collector(today_statuses=["C"])
    await c.collect(h.upstream())
    sent = [p["status"] for op, p in h.sim.requests if op == "PartnerSessionCounts"]
    assert sent == ["C"]
    today = by_label(series(c.families(), "glance_sessions_today"), "counted_by", "status")
    assert ("start", "W") not in today and ("start", "A") not in today


async def test_custom_duration_buckets(h: Harness) -> None:
    c = h.collector(duration_buckets=[60, 600])
    h.clock.advance(1200)
    await c.collect(h.upstream())
    bucket_series = series(c.families(), "glance_session_duration_seconds_bucket")
    buckets = {dict(k)["le"] for k in bucket_series}
    assert buckets == {"60.0", "600.0", "+Inf"}


async def test_demo_account_shows_every_metric_within_a_minute(clock: FakeClock) -> None:
    from exporter.simulators import SIMULATORS

    sim = SIMULATORS["glance"](clock, 0)
    assert isinstance(sim, GlanceSimulator)
    h = await start_harness(clock, sim)
    try:
        (demo,) = sim.demo_accounts(h.base_url)
        assert demo["interval"] == "5s"
        fields = {k: v for k, v in demo.items() if k not in ("name", "base_url", "interval")}
        c = h.collector(name=demo["name"], **fields)
        for _ in range(12):
            await c.collect(h.upstream())
            clock.advance(5)
        for family in c.families():
            assert any(s.value > 0 for s in family.samples), family.name
    finally:
        await stop_harness(h)


def active_rewritten(pattern: bytes, replacement: bytes) -> Callable[..., Any]:
    """Middleware rewriting the simulator's PartnerActiveSessions replies (`re.sub`)."""

    @web.middleware
    async def rewrite(
        request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if request.path.endswith("/PartnerActiveSessions") and isinstance(response, web.Response):
            assert isinstance(response.body, bytes)
            text = re.sub(pattern, replacement, response.body)
            return web.Response(body=text, content_type="text/xml")
        return response

    return rewrite


async def test_unreadable_start_times_are_counted_and_the_sessions_kept(clock: FakeClock) -> None:
    # Probe 7: an unreadable startTime became None unseen: the waiting-oldest gauge lost
    # its session and nothing said why.
    sim = GlanceSimulator(clock, seed=7)
    app = sim.app()
    app.middlewares.append(
        active_rewritten(rb"<startTime>[^<]*</startTime>", b"<startTime>soon</startTime>")
    )
    h = await start_harness(clock, sim, app)
    try:
        c = h.collector()
        await c.collect(h.upstream())
        live = h.sim.in_progress()
        assert live
        got = by_label(series(c.families(), "glance_sessions_current"), "session_type", "status")
        assert sum(got.values()) == len(live)  # every session still counted
        assert h.rejects["invalid_value"] == len(live)
        assert series(c.families(), "glance_waiting_session_oldest_start_timestamp_seconds") == {}
    finally:
        await stop_harness(h)


async def test_an_active_session_of_a_long_type_is_reported_once_not_every_poll(
    clock: FakeClock,
) -> None:
    # Probe 13: the labels of the sessions in progress are made at every poll, and a cut
    # one was reported (label_truncated) again at every poll.
    sim = GlanceSimulator(clock, seed=7)
    app = sim.app()
    app.middlewares.append(
        active_rewritten(rb"<type>[^<]*</type>", b"<type>" + b"Y" * 100 + b"</type>")
    )
    h = await start_harness(clock, sim, app)
    try:
        c = h.collector()
        await c.collect(h.upstream())
        live = {s.id for s in h.sim.in_progress()}
        assert live and h.rejects["label_truncated"] == len(live)
        for _ in range(3):
            await c.collect(h.upstream())  # the same sessions, still in progress
        assert {s.id for s in h.sim.in_progress()} == live
        assert h.rejects["label_truncated"] == len(live)
    finally:
        await stop_harness(h)


async def test_a_session_returned_outside_the_range_asked_is_never_counted(
    clock: FakeClock,
) -> None:
    # Probe 9: a session on every read, ended three days before the range: remembered only
    # as long as a read asks, it was counted again about every 70 minutes.
    old = datetime.fromtimestamp(NOON_ISH - 3 * 86400, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stray = (
        f"<session><id>7001</id><type>C</type><status>C</status><startTime>{old}</startTime>"
        "<duration>60</duration></session>"
    ).encode()

    @web.middleware
    async def always_stray(
        request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if request.path.endswith("/PartnerCompletedSessionsEnding") and isinstance(
            response, web.Response
        ):
            assert isinstance(response.body, bytes)
            body = response.body.replace(b"<sessions>", b"<sessions>" + stray, 1)
            if body == response.body:  # a page of no user: give it one
                body = body.replace(
                    b"<users />",
                    b"<users><userSessions><partnerUserId>U</partnerUserId><validUser>true"
                    b"</validUser><sessions>" + stray + b"</sessions></userSessions></users>",
                )
            return web.Response(body=body, content_type="text/xml")
        return response

    sim = GlanceSimulator(clock, seed=7)
    app = sim.app()
    app.middlewares.append(always_stray)
    h = await start_harness(clock, sim, app)
    try:
        c = h.collector(page_size=50)
        for _ in range(180):
            clock.advance(60)
            await c.collect(h.upstream())
        assert_feed_matches(h, c, NOON_ISH)  # 7001 is no session of the simulator's
        # Returned by each of the 180 cycles' reads, it is one record: counted once.
        assert h.rejects["implausible_value"] == 1
    finally:
        await stop_harness(h)
