"""The Glance feed when this host's clock and Glance's disagree, or step: the feed never
reads past Glance's now (its Date header), comes back when it finds itself ahead, and
neither loses nor counts twice a completed session."""

from __future__ import annotations

from collections import Counter
from email.utils import formatdate

import pytest
from aiohttp import web

from exporter.http import Upstream
from exporter.simulators.clock import FakeClock
from exporter.simulators.glance import GlanceSimulator
from exporter.vendors.glance.client import utc
from exporter.vendors.glance.collector import GlanceCollector
from exporter.vendors.glance.parser import Session

from .harness import Harness, assert_feed_matches, completed, start_harness, stop_harness
from .test_state import through_json

HOUR = 3600.0

# `clock` (Glance's, which dates its replies) and `h` come from conftest.py.


async def run(
    h: Harness, c: GlanceCollector, up: Upstream, ours: FakeClock, cycles: int, by: float = 0.0
) -> None:
    """`cycles` a minute apart, our clock `by` ahead of Glance's; `up` is kept from cycle
    to cycle, as the daemon keeps it, with the skew its last reply measured."""
    for _ in range(cycles):
        h.clock.advance(60)
        ours.advance(60)  # the monotonic clock runs on whatever the wall clock does
        ours.step(h.clock.time() + by)
        await c.collect(up)


async def test_our_clock_stepping_two_hours_ahead_for_a_cycle_loses_nothing(h: Harness) -> None:
    # Probe 7: the cycle read while our clock was 2 h ahead moved the cursor 2 h into the
    # future, and it never came back: every later read was empty, 32 of 93 sessions counted.
    ours = FakeClock(h.clock.time())
    started = h.clock.time()
    c, up = h.collector(clock=ours), h.upstream(clock=ours)
    await run(h, c, up, ours, 30)
    h.clock.advance(15)
    ours.advance(15)
    ours.step(h.clock.time() + 2 * HOUR)  # NTP steps us ahead (the skew is of the last cycle)
    await c.collect(up)
    assert c.cursor <= h.clock.time()
    await run(h, c, up, ours, 90)  # and back
    assert_feed_matches(h, c, started)
    assert not [e for level, e, _ in h.log.events if level == "warning"]


async def test_our_clock_stepping_back_for_a_cycle_neither_loses_nor_counts_twice(
    h: Harness,
) -> None:
    ours = FakeClock(h.clock.time() + 2 * HOUR)
    started = h.clock.time()
    c, up = h.collector(clock=ours, feed_overlap="5m"), h.upstream(clock=ours)
    # Our clock 2 h ahead from the start, for an hour (the feed keeps to Glance's Date),
    await run(h, c, up, ours, 60, by=2 * HOUR)
    # then corrected: the first cycle still believes Glance is 2 h behind.
    await run(h, c, up, ours, 90)
    assert_feed_matches(h, c, started)


async def test_a_restored_cursor_ahead_of_glance_comes_back_with_a_warning(h: Harness) -> None:
    # A predecessor that saved a cursor ahead of Glance's clock (an older version, or
    # Glance's clock stepped back): its feed waited, empty, until Glance caught up.
    started = h.clock.time()
    ours = FakeClock(h.clock.time())
    first = h.collector(clock=ours)
    await run(h, first, h.upstream(clock=ours), ours, 30)
    saved = through_json(first.state())
    saved["cursor"] += 1800
    second = h.collector(clock=ours)
    second.restore(saved)
    await run(h, second, h.upstream(clock=ours), ours, 60)
    assert_feed_matches(h, second, started)
    warned = [kw for level, e, kw in h.log.events if e == "glance_feed_ahead_of_vendor"]
    assert len(warned) == 1 and warned[0]["ahead_seconds"] >= 1800 - 60
    assert second.cursor <= h.clock.time()


async def test_a_cursor_far_ahead_comes_back_without_reading_forgotten_ids_again(
    h: Harness,
) -> None:
    # Ids are forgotten against the cursor: one 3 h ahead let go of every id the last
    # hours returned. Brought back, the feed reads only past what may be forgotten, and
    # counts no session twice (what ended in between is lost, and the warning says so).
    ours = FakeClock(h.clock.time())
    first = h.collector(clock=ours)
    await run(h, first, h.upstream(clock=ours), ours, 60)
    before = dict(completed(first))
    saved = through_json(first.state())
    saved["cursor"] += 3 * HOUR
    second = h.collector(clock=ours)
    second.restore(saved)
    lost_until = saved["cursor"] - second.account.feed_overlap - HOUR - 600
    await run(h, second, h.upstream(clock=ours), ours, 240)
    assert_feed_matches_between(h, second, before, lost_until)


def assert_feed_matches_between(
    h: Harness, c: GlanceCollector, before: dict[tuple[str, ...], float], lo: float
) -> None:
    """The counts are those carried over plus the sessions that ended in [lo, now]."""
    ended = h.sim.completed_ended(lo, h.clock.time())
    assert ended
    want = dict(before)
    for s in ended:
        key = (s.type, s.final_status)
        want[key] = want.get(key, 0.0) + 1
    got = {k: v for k, v in completed(c).items() if v}
    assert got == {k: v for k, v in want.items() if v}


async def test_our_clock_a_week_ahead_for_two_cycles_neither_loses_nor_counts_twice(
    h: Harness,
) -> None:
    # A week ahead is more than a Date header is believed for (a day): the feed reads to
    # our now and forgets ids against it. Brought back, it reads from just after the
    # latest id it forgot, so that what ended meanwhile is read and nothing is read twice.
    ours = FakeClock(h.clock.time())
    started = h.clock.time()
    c, up = h.collector(clock=ours), h.upstream(clock=ours)
    await run(h, c, up, ours, 90)
    await run(h, c, up, ours, 2, by=7 * 86400)
    await run(h, c, up, ours, 60)
    assert_feed_matches(h, c, started)
    warned = [kw for _, e, kw in h.log.events if e == "glance_feed_ahead_of_vendor"]
    assert len(warned) == 1 and warned[0]["ahead_seconds"] > 6 * 86400


async def test_our_clock_stepping_behind_glances_soon_after_start_counts_nothing_before_it(
    h: Harness,
) -> None:
    # A review found that a cursor ahead of our (behind) clock was taken for one ahead of
    # Glance's: the origin came back below our start, and 347 sessions that ended before
    # it were counted.
    ours = FakeClock(h.clock.time())
    started = h.clock.time()
    c, up = h.collector(clock=ours), h.upstream(clock=ours)
    await run(h, c, up, ours, 30)
    await run(h, c, up, ours, 60, by=-2 * HOUR)
    await run(h, c, up, ours, 150)
    assert_feed_matches(h, c, started)
    assert not [e for level, e, _ in h.log.events if level == "warning"]


async def test_our_clock_stepping_ahead_before_the_first_reply_counts_nothing_before_start(
    h: Harness,
) -> None:
    # Right when the collector was made, 2 h ahead by its first reply: the skew was taken
    # to have held at the start, which moved 2 h back (847 counted where 370 ended).
    ours = FakeClock(h.clock.time())
    started = h.clock.time()
    c, up = h.collector(clock=ours), h.upstream(clock=ours)
    await run(h, c, up, ours, 60, by=2 * HOUR)
    await run(h, c, up, ours, 30)
    assert_feed_matches(h, c, started)


async def test_without_a_date_header_a_cursor_ahead_of_our_clock_comes_back(
    clock: FakeClock,
) -> None:
    # Probe 7's step (2 h ahead for a cycle) with no Date to go by: the cursor stayed in
    # the future, and 447 of 709 sessions were lost without a word.
    sim = GlanceSimulator(clock, seed=7)
    app = sim.app()

    async def no_date(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Date"] = "not a date"  # aiohttp always sends one

    app.on_response_prepare.append(no_date)
    h = await start_harness(clock, sim, app)
    try:
        ours = FakeClock(h.clock.time())
        started = h.clock.time()
        c, up = h.collector(clock=ours), h.upstream(clock=ours)
        await run(h, c, up, ours, 30)
        await run(h, c, up, ours, 1, by=2 * HOUR)
        await run(h, c, up, ours, 90)
        assert up.dated_replies == 0
        assert_feed_matches(h, c, started)
        warned = [e for _, e, _ in h.log.events if e == "glance_feed_ahead_of_vendor"]
        assert warned == ["glance_feed_ahead_of_vendor"]
    finally:
        await stop_harness(h)


@pytest.mark.parametrize("seed", [1, 2])
async def test_with_our_clock_behind_a_backfilled_session_is_counted_once(
    clock: FakeClock, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A review found it: the backfill's ids were kept past our (behind) clock, and the
    # feed, following that clock, reached a long session's end only after its id was
    # forgotten, and counted it again (1 to 3 sessions in 7 of 8 seeds).
    sim = GlanceSimulator(clock, seed=seed)
    h = await start_harness(clock, sim)
    try:
        ours = FakeClock(h.clock.time() - 2 * HOUR)
        c, up = h.collector(clock=ours, lookback="2h"), h.upstream(clock=ours)
        times: Counter[int] = Counter()
        count = c._count

        def counted(session: Session, touched: set[str]) -> None:
            times[session.id] += 1
            count(session, touched)

        monkeypatch.setattr(c, "_count", counted)
        await run(h, c, up, ours, 200, by=-2 * HOUR)
    finally:
        await stop_harness(h)
    assert len(times) > 500
    assert [sid for sid, n in times.items() if n > 1] == []


async def test_one_stale_date_at_start_up_counts_nothing_from_before_the_start(
    clock: FakeClock,
) -> None:
    # Probe 9: a Date 23 h behind in the first cycle only (a cached reply) moved the
    # start 23 h back, and 40 sessions that had ended before it were counted.
    sim = GlanceSimulator(clock, seed=7)
    app = sim.app()
    stale = [True]

    async def first_cycle_stale(request: web.Request, response: web.StreamResponse) -> None:
        if stale[0]:
            response.headers["Date"] = formatdate(clock.time() - 23 * HOUR, usegmt=True)

    app.on_response_prepare.append(first_cycle_stale)
    h = await start_harness(clock, sim, app)
    try:
        ours = FakeClock(h.clock.time())
        started = h.clock.time()
        c, up = h.collector(clock=ours), h.upstream(clock=ours)
        await run(h, c, up, ours, 1)
        stale[0] = False
        await run(h, c, up, ours, 120)
        assert_feed_matches(h, c, started)
    finally:
        await stop_harness(h)


async def test_glance_clock_stepping_back_past_the_overlap_brings_the_cursor_back(
    clock: FakeClock,
) -> None:
    # Probe 13: Glance's clock stepped back 15 minutes (its Date says so, and what ends
    # from then on is dated by it): the cursor, set by its earlier now, was compared with
    # our clock, never found ahead, and the next read began 5 minutes before it, past
    # what ended in the step. It comes back to Glance's now, with a warning.
    sim = GlanceSimulator(clock, seed=7)
    app = sim.app()
    behind = [0.0]

    async def glance_date(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Date"] = formatdate(clock.time() - behind[0], usegmt=True)

    app.on_response_prepare.append(glance_date)
    h = await start_harness(clock, sim, app)
    try:
        ours = FakeClock(h.clock.time())
        c, up = h.collector(clock=ours, feed_overlap="5m"), h.upstream(clock=ours)
        await run(h, c, up, ours, 30)
        assert c.cursor == pytest.approx(ours.time(), abs=2.0)
        behind[0] = 900.0
        await run(h, c, up, ours, 1)  # its Date is 15 minutes behind ours from here
        assert c.cursor == pytest.approx(ours.time() - 900.0, abs=2.0)
        warned = [e for _, e, _ in h.log.events if e == "glance_feed_ahead_of_vendor"]
        assert warned == ["glance_feed_ahead_of_vendor"]
        h.sim.requests.clear()
        await run(h, c, up, ours, 1)
        (first, *_) = [p for op, p in h.sim.requests if op == "PartnerCompletedSessionsEnding"]
        # From Glance's now of the step less the overlap: what ended in the step is read.
        assert first["startRange"] <= utc(ours.time() - 60 - 900.0 - 300.0)
    finally:
        await stop_harness(h)
