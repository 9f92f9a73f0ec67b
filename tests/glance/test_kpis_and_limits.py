"""Glance KPIs (issue 14) and bounds (issue 11): the real collector against the simulator
(or a hostile Activity Service) over loopback, time on a FakeClock."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote_plus

import pytest
from aiohttp import web

from exporter.errors import UpstreamError
from exporter.outcomes import OUTCOMES
from exporter.simulators.clock import FakeClock
from exporter.simulators.glance import DEMO_API_KEY, GlanceSimulator
from exporter.snapshot import render
from exporter.vendors.glance.client import ACTIVE, COMPLETED_ENDING, COUNTS_ENDING, utc
from exporter.vendors.glance.collector import GlanceCollector
from exporter.vendors.glance.parser import NS

from .harness import (
    NOON_ISH,
    Harness,
    assert_feed_matches,
    by_label,
    completed,
    series,
    start_harness,
    stop_harness,
)

# `clock` and `h` come from conftest.py.


def through_json(state: dict[str, Any] | None) -> dict[str, Any]:
    assert state is not None
    result = json.loads(json.dumps(state))
    assert isinstance(result, dict)
    return result


async def test_every_outcome_has_exact_counts_waits_and_service_level(h: Harness) -> None:
    c = h.collector(page_size=50)
    for _ in range(12):
        h.clock.advance(600)
        await c.collect(h.upstream())
    assert_feed_matches(h, c, NOON_ISH)  # exact per type and outcome, zero-filled
    ended = h.sim.completed_ended(NOON_ISH, h.clock.time())
    outcomes = Counter(s.outcome for s in ended if s.observed_wait is not None)
    assert all(outcomes[o] > 0 for o in ("answered", "abandoned", "timed_out", "other"))
    # Service level 80/20 reads two exact bucket bounds: answered within 20 s / answered.
    buckets = by_label(
        series(c.families(), "glance_session_wait_seconds_bucket"), "session_type", "outcome", "le"
    )
    for session_type in "CGV":
        answered = [
            s.observed_wait
            for s in ended
            if s.type == session_type and s.outcome == "answered" and s.observed_wait is not None
        ]
        assert buckets[(session_type, "answered", "20.0")] == sum(w <= 20 for w in answered)
        assert buckets[(session_type, "answered", "+Inf")] == len(answered)
    # Answered sessions nobody joined (X without an agent) have no wait, but a duration.
    unanswerable = [s for s in ended if s.outcome == "answered" and s.observed_wait is None]
    assert unanswerable, "the simulator should end some unjoined sessions with X"
    durations = series(c.families(), "glance_session_duration_seconds_count")
    assert sum(v for k, v in durations.items() if ("outcome", "answered") in k) == sum(
        1 for s in ended if s.outcome == "answered"
    )


async def test_help_texts_name_the_fields_and_say_polled(h: Harness) -> None:
    c = h.collector()
    await c.collect(h.upstream())
    families = {f.name: f for f in c.families()}
    wait = families["glance_session_wait_seconds"]
    for words in ("startTime", "agent", "visitor", "duration", "in the background"):
        assert words in wait.documentation
    assert "outcome" in families["glance_session_duration_seconds"].documentation
    labels = {tuple(sorted(s.labels)) for s in wait.samples if s.name.endswith("_bucket")}
    assert labels == {("account", "le", "outcome", "session_type")}
    assert {s.labels["outcome"] for s in wait.samples} == set(OUTCOMES)


async def test_the_page_budget_stops_a_cycle_and_the_next_carries_on(h: Harness) -> None:
    # Found by a probe: each cycle that spent its budget failed, so the account backed
    # off and, past stale_after, left /metrics during the catch-up. Such a cycle now
    # succeeds (every page it read was good) and the next carries on.
    c = h.collector(page_size=5, limits={"max_pages_per_cycle": 4})
    h.clock.advance(3 * 3600)  # about 700 sessions end: far more than 4 pages of 5
    cycles, behind = 0, []
    while c.cursor < h.clock.time() and cycles < 200:
        await c.collect(h.upstream())  # raises on a failure
        cycles += 1
        (position,) = series(c.families(), "glance_completed_feed_timestamp_seconds").values()
        behind.append(h.clock.time() - position)
    assert behind[0] > 3600 and behind == sorted(behind, reverse=True)  # shown catching up
    assert cycles > 5
    assert_feed_matches(h, c, NOON_ISH)  # nothing lost, nothing twice
    shown = series(c.families(), "glance_completed_feed_timestamp_seconds")
    assert shown == {(("account", "acme"),): h.clock.time()}
    assert not h.failures()
    assert sum(e == "glance_feed_catching_up" for _, e, _ in h.log.events) == cycles - 1
    pages = [p for op, p in h.sim.requests if op == "PartnerCompletedSessionsEnding"]
    ended = len(h.sim.completed_ended(NOON_ISH, h.clock.time()))
    # Carrying on, not starting over: about one request per page of sessions.
    assert len(pages) <= ended / 5 + cycles + 3
    assert c.cursor == h.clock.time()


async def test_a_feed_falling_further_behind_says_so(h: Harness) -> None:
    # Found by a review: with the budget no longer failing a cycle, a feed that can
    # never catch up showed nowhere but an info line.
    c = h.collector(page_size=1, limits={"max_pages_per_cycle": 2})

    async def warnings_after(cycles: int) -> int:
        for _ in range(cycles):
            h.clock.advance(600)  # far more than two sessions end in ten minutes
            await c.collect(h.upstream())
        return sum(e == "glance_feed_falling_behind" for _, e, _ in h.log.events)

    # At the second cycle that ran out of pages, then at most hourly (probe 13: every
    # cycle, two seconds apart at its interval).
    assert await warnings_after(2) == 1
    assert await warnings_after(5) == 1
    assert await warnings_after(1) == 2


async def test_a_full_dedupe_memory_stops_counting_without_counting_twice(h: Harness) -> None:
    c = h.collector(page_size=7, limits={"max_remembered_ids": 10})
    h.clock.advance(1800)
    with pytest.raises(UpstreamError) as info:
        await c.collect(h.upstream())
    assert info.value.reason == "limit_exceeded"
    assert "max_remembered_ids" in info.value.message
    # Whole pages or none: the first page of seven fits, the second does not.
    assert sum(completed(c).values()) == 7
    for _ in range(3):
        with pytest.raises(UpstreamError):
            await c.collect(h.upstream())
    assert sum(completed(c).values()) == 7  # the same seven, once each
    assert c.cursor == NOON_ISH


async def catch_up(c: GlanceCollector, h: Harness, cycles: int) -> int:
    """Cycles until one succeeds; how many failed, each with `limit_exceeded`."""
    for failed in range(cycles):
        try:
            await c.collect(h.upstream())
        except UpstreamError as exc:
            assert exc.reason == "limit_exceeded", exc  # noqa: PT017
            continue
        return failed
    pytest.fail(f"the feed did not catch up in {cycles} cycles")


async def test_a_catch_up_of_more_sessions_than_can_be_remembered_counts_each_once(
    h: Harness,
) -> None:
    # Found by a probe: the catch-up after an outage read its whole range (up to 31 days)
    # in one read and forgot nothing before it ended, so a range of more sessions than
    # max_remembered_ids waited there for good. Its reads are now halved until each can
    # be remembered, and each forgets what ended before the next.
    c = h.collector(page_size=200, limits={"max_remembered_ids": 2000})
    await c.collect(h.upstream())
    h.clock.advance(2 * 86400)  # down for two days: about 11,000 sessions end
    assert len(h.sim.completed_ended(NOON_ISH, h.clock.time())) > 5 * 2000
    await catch_up(c, h, 30)
    assert_feed_matches(h, c, NOON_ISH)  # nothing lost, nothing twice
    assert c.cursor == h.clock.time()
    assert len(c.seen) <= 2000
    assert any(event == "glance_feed_read_halved" for _, event, _ in h.log.events)


async def test_a_lookback_of_more_sessions_than_can_be_remembered_counts_each_once(
    h: Harness,
) -> None:
    # Noticed in a closing note: while the lookback backfill was pending nothing was
    # forgotten, so a lookback of more sessions than max_remembered_ids failed every
    # cycle for good (the feed and the backfill both stopped). The Ending feed starts
    # `lookback` early and counts every session that ended since, so the backfill is
    # given up once it does not fit, and the feed reads on.
    h.clock.advance(2 * 86400)
    started_at = h.clock.time()
    c = h.collector(
        started_at=started_at, lookback="2d", page_size=200, limits={"max_remembered_ids": 2000}
    )
    assert len(h.sim.completed_ended(started_at - 2 * 86400, started_at)) > 5 * 2000
    await catch_up(c, h, 30)
    assert_feed_matches(h, c, started_at - 2 * 86400)  # nothing lost, nothing twice
    assert c.cursor == h.clock.time()
    assert len(c.seen) <= 2000
    given_up = [fields for _, event, fields in h.log.events if event == "glance_backfill_given_up"]
    assert len(given_up) == 1, h.log.events
    for _ in range(3):  # and it stays given up: the next cycles read the feed alone
        h.clock.advance(60)
        await c.collect(h.upstream())
    assert_feed_matches(h, c, started_at - 2 * 86400)
    assert len([e for _, e, _ in h.log.events if e == "glance_backfill_given_up"]) == 1


async def test_a_backfill_that_cannot_be_remembered_is_given_up_and_the_cycle_succeeds(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The backfill itself meeting the bound (found by a review: the test above meets it
    # in the feed). Here the Ending feed lists nothing, so every session comes from
    # PartnerCompletedSessions; it failed every cycle with limit_exceeded.
    monkeypatch.setattr(h.sim, "completed_ended", lambda lo, hi: [])
    h.clock.advance(2 * 86400)
    started_at = h.clock.time()
    c = h.collector(
        started_at=started_at, lookback="2d", page_size=200, limits={"max_remembered_ids": 2000}
    )
    assert len(h.sim.completed_started(started_at - 2 * 86400, started_at)) > 2000
    await c.collect(h.upstream())  # succeeds
    counted = sum(completed(c).values())
    assert 0 < counted <= 2000 and counted % 200 == 0  # whole pages, each session once
    backfill = sum(op == "PartnerCompletedSessions" for op, _ in h.sim.requests)
    for _ in range(3):
        h.clock.advance(60)
        await c.collect(h.upstream())
    assert sum(op == "PartnerCompletedSessions" for op, _ in h.sim.requests) == backfill
    assert sum(completed(c).values()) == counted
    assert [e for _, e, _ in h.log.events if e == "glance_backfill_given_up"] == [
        "glance_backfill_given_up"
    ]
    assert not h.failures()


async def test_an_outage_of_over_31_days_of_more_sessions_than_can_be_remembered(
    clock: FakeClock,
) -> None:
    # Found by a review: a read of more than one 31-day window forgot nothing until it
    # ended, so a second window that did not fit waited for good.
    h = await start_harness(clock, GlanceSimulator(clock, seed=7, rate=1 / 600, history=45 * 86400))
    try:
        c = h.collector(limits={"max_remembered_ids": 5000})
        await c.collect(h.upstream())
        h.clock.advance(40 * 86400)  # 144 sessions a day: about 5,800
        await catch_up(c, h, 30)
        assert_feed_matches(h, c, NOON_ISH)
    finally:
        await stop_harness(h)


async def test_a_quiet_month_then_a_busy_day_gets_through(clock: FakeClock) -> None:
    # Found by a review: the quiet month's read completed holding 879 of 1,100 ids, kept
    # until the next read ended, and no busy read, however short, fitted beside them.
    # Reads that can still be halved now fill at most half the memory.
    h = await start_harness(clock, GlanceSimulator(clock, seed=7, rate=1 / 3150, history=86400))
    try:
        c = h.collector(limits={"max_remembered_ids": 1100})
        await c.collect(h.upstream())
        h.clock.advance(31 * 86400)  # about 1.1 sessions an hour
        h.sim.advance()
        h.sim.rate = 240 / 3600
        h.clock.advance(12 * 3600)  # then 240 an hour
        await catch_up(c, h, 40)
        assert_feed_matches(h, c, NOON_ISH)
    finally:
        await stop_harness(h)


@pytest.mark.parametrize("duration", ["0", None])
async def test_a_catch_up_counts_each_once_whatever_the_durations_say(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, duration: str | None
) -> None:
    # Found by a review: ids forgotten an hour after startTime plus duration counted
    # sessions twice (17,080 of 17,078) once durations were reported as 0, and without a
    # duration the catch-up waited for good. Ids are kept past the read's end instead.
    import exporter.simulators.glance as glance_simulator

    reply_of = glance_simulator._session_xml

    def with_duration(container: Any, session: Any, now: float) -> Any:
        item = reply_of(container, session, now)
        field = item.find(f"{{{NS}}}duration")
        assert field is not None
        if duration is None:
            item.remove(field)
        elif session.completed(now):
            field.text = duration
        return item

    monkeypatch.setattr(glance_simulator, "_session_xml", with_duration)
    h = await start_harness(clock, GlanceSimulator(clock, seed=7))
    try:
        c = h.collector(page_size=200, limits={"max_remembered_ids": 2000})
        await c.collect(h.upstream())
        for _ in range(3):
            h.clock.advance(86400)  # down for a day, then three cycles
            await catch_up(c, h, 30)
            for _ in range(3):
                h.clock.advance(60)
                await c.collect(h.upstream())
        ended = h.sim.completed_ended(NOON_ISH, h.clock.time())
        assert sum(completed(c).values()) == len(ended)
    finally:
        await stop_harness(h)


async def test_a_catch_up_carried_over_a_restart_counts_each_once(h: Harness) -> None:
    first = h.collector(
        page_size=200, limits={"max_remembered_ids": 2000, "max_pages_per_cycle": 9}
    )
    await first.collect(h.upstream())
    h.clock.advance(86400)
    for _ in range(20):  # part of the way: the page budget stops each cycle
        with contextlib.suppress(UpstreamError):  # a read halved, or one cut short
            await first.collect(h.upstream())
        if first.cursor > NOON_ISH:
            break
    assert NOON_ISH < first.cursor < h.clock.time(), "the test needs a catch-up half done"
    second = h.collector(page_size=200, limits={"max_remembered_ids": 2000})
    second.restore(through_json(first.state()))
    await catch_up(second, h, 30)
    assert_feed_matches(h, second, NOON_ISH)


async def test_a_reply_over_max_records_is_refused_and_the_gauges_kept(h: Harness) -> None:
    c = h.collector()
    await c.collect(h.upstream())
    before = series(c.families(), "glance_sessions_current")
    assert sum(before.values()) > 3
    small = h.collector(limits={"max_records_per_reply": 3})
    small._current, small._guests = c._current, c._guests
    with pytest.raises(UpstreamError) as info:
        await small.collect(h.upstream())
    assert info.value.reason == "limit_exceeded"
    assert series(small.families(), "glance_sessions_current") == before
    assert ("glance", "acme", "PartnerActiveSessions", "limit_exceeded") in h.failures()


async def test_a_reply_of_a_million_elements_is_refused_and_the_gauges_kept(h: Harness) -> None:
    c = h.collector()
    await c.collect(h.upstream())
    before = series(c.families(), "glance_sessions_current")
    assert sum(before.values()) > 3
    bomb = b"<ArrayOfSession>" + b"<a/>" * 1_100_000 + b"</ArrayOfSession>"
    h.sim.faults.malformed = lambda _body: bomb
    h.sim.faults.inject("malformed", None, path_contains="PartnerActiveSessions")
    h.clock.advance(60)
    with pytest.raises(UpstreamError) as info:
        await c.collect(h.upstream())
    assert (info.value.operation, info.value.reason) == ("PartnerActiveSessions", "parse")
    assert "XML of 1,100,002 tags exceeds the cap of 1,000,000" in info.value.message
    assert series(c.families(), "glance_sessions_current") == before


async def test_long_types_and_statuses_are_cut_and_counted(clock: FakeClock) -> None:
    long_type, long_status = "T" * 32_000, "S" * 32_000
    sim = GlanceSimulator(
        clock, seed=2, session_types={"C": 1, long_type: 1}, final_statuses={"C": 1, long_status: 1}
    )
    h = await start_harness(clock, sim)
    try:
        c = h.collector(page_size=100, limits={"label_value_max_length": 40})
        for _ in range(3):
            clock.advance(900)
            await c.collect(h.upstream())
        text = render(c.families()).text
        assert len(text) < 200_000
        types = {t for t, _ in completed(c)}
        assert "T" * 39 + "…" in types and long_type not in types
        assert h.rejects["label_truncated"] > 0
        assert "label_overflow" not in h.rejects
        ended = h.sim.completed_ended(NOON_ISH, clock.time())
        assert sum(completed(c).values()) == len(ended)
    finally:
        await stop_harness(h)


# -- a hostile Activity Service ----------------------------------------------------------


def _page(*sessions: str, next_id: int = 0) -> bytes:
    return (
        f'<groupSessions xmlns="{NS}"><nextId>{next_id}</nextId><users><userSessions>'
        "<partnerUserId>U</partnerUserId><validUser>true</validUser><sessions>"
        + "".join(sessions)
        + "</sessions></userSessions></users></groupSessions>"
    ).encode()


def _session(sid: int, status: str = "C", duration: str = "60", guests: str = "") -> str:
    return (
        f"<session><id>{sid}</id><type>C</type><status>{status}</status>"
        f"<startTime>2026-03-10T14:59:00Z</startTime><duration>{duration}</duration>"
        f"<guests>{guests}</guests></session>"
    )


def _guest(kind: str, at: str) -> str:
    return f"<guest><type>{kind}</type><startTime>2026-03-10T{at}Z</startTime></guest>"


@asynccontextmanager
async def hostile(
    clock: FakeClock, feed: Callable[[], bytes], operation: str = COMPLETED_ENDING
) -> AsyncIterator[Harness]:
    """The simulator for every operation but one (the feed unless said), which serves
    `feed()`."""
    sim = GlanceSimulator(clock, seed=1)
    app = sim.app()

    @web.middleware
    async def replace_feed(
        request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if request.path.endswith(f"/{operation}"):
            await request.post()
            return web.Response(body=feed(), content_type="text/xml")
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(replace_feed)
    h = await start_harness(clock, sim, app)
    try:
        yield h
    finally:
        await stop_harness(h)


async def test_absurd_numbers_are_rejected_never_observed(clock: FakeClock) -> None:
    who = _guest("visitor", "14:59:00") + _guest("agent", "14:59:12")
    body = _page(
        _session(1, guests=who),
        _session(2, duration="1e308", guests=who),
        _session(3, duration="NaN"),
        _session(4, "Q", duration="-1"),
        _session(5, guests=_guest("visitor", "14:59:00").replace("2026", "9999")),
        _session(6, "T", duration="45"),
    )
    served = iter([body, _page()])
    async with hostile(clock, lambda: next(served, _page())) as h:
        c = h.collector()
        await c.collect(h.upstream())
        families = list(c.families())
    waits = by_label(series(families, "glance_session_wait_seconds_sum"), "session_type", "outcome")
    counts = by_label(
        series(families, "glance_session_wait_seconds_count"), "session_type", "outcome"
    )
    assert waits[("C", "answered")] == 12 and counts[("C", "answered")] == 1
    assert waits[("C", "timed_out")] == 45 and counts[("C", "timed_out")] == 1
    assert sum(counts.values()) == 2
    sums = series(families, "glance_session_duration_seconds_sum")
    assert sum(sums.values()) == 60 + 45
    assert h.rejects == {"implausible_value": 4}


def _active(sid: int, status: str, start: float) -> str:
    return (
        f"<activeSession><id>{sid}</id><type>C</type><status>{status}</status>"
        f"<startTime>{utc(start)}</startTime><partnerUserId>U</partnerUserId>"
        "<nguests>2</nguests></activeSession>"
    )


async def test_active_sessions_listed_twice_or_waiting_for_years_are_rejected(
    clock: FakeClock,
) -> None:
    now = clock.time()
    body = (
        f'<ArrayOfActiveSession xmlns="{NS}">'
        + _active(1, "W", now - 120)
        + _active(1, "W", now - 120)
        + _active(2, "A", now - 60)
        + _active(3, "W", now - 26 * 365 * 86400)
        + _active(4, "W", now + 70 * 365 * 86400)
        + "</ArrayOfActiveSession>"
    ).encode()
    async with hostile(clock, lambda: body, ACTIVE) as h:
        c = h.collector()
        await c.collect(h.upstream())
        families = list(c.families())
    current = by_label(series(families, "glance_sessions_current"), "session_type", "status")
    assert (current[("C", "W")], current[("C", "A")]) == (3.0, 1.0)  # session 1 once
    assert (
        by_label(series(families, "glance_session_guests_current"), "session_type")[("C",)] == 8.0
    )
    oldest = by_label(
        series(families, "glance_waiting_session_oldest_start_timestamp_seconds"), "session_type"
    )
    assert oldest == {("C",): float(int(now - 120))}
    assert (h.rejects["invalid_record"], h.rejects["implausible_value"]) == (1, 2)


async def polled(h: Harness, clock: FakeClock, cycles: int) -> GlanceCollector:
    """A collector after `cycles` cycles a minute apart."""
    c = h.collector()
    for _ in range(cycles):
        await c.collect(h.upstream())
        clock.advance(60)
    return c


async def test_a_bad_record_in_every_reply_is_counted_once(clock: FakeClock) -> None:
    # Probe 9: a bad record that every poll (or overlapping read) returns was counted in
    # each reply: about 11 times for one completed session at the default overlap.
    now = clock.time()
    body = (
        f'<ArrayOfActiveSession xmlns="{NS}">'
        + _active(1, "W", now - 120).replace(utc(now - 120), "soon")  # kept, time unknown
        + _active(2, "W", now - 26 * 365 * 86400)  # skipped: implausible
        + _active(3, "A", now - 60).replace("<type>C</type>", "")  # skipped: no type
        + _active(4, "A", now - 60).replace("<id>4</id>", "")  # skipped, no id to know it by
        + "</ArrayOfActiveSession>"
    ).encode()
    async with hostile(clock, lambda: body, ACTIVE) as h:
        c = await polled(h, clock, 3)
        current = by_label(
            series(c.families(), "glance_sessions_current"), "session_type", "status"
        )
    assert current[("C", "W")] == 2.0  # sessions 1 and 2 still counted every poll
    assert (h.rejects["invalid_value"], h.rejects["implausible_value"]) == (1, 1)
    assert h.rejects["invalid_record"] == 1 + 3  # session 3 once; the id-less one each poll


async def test_a_bad_row_of_todays_counts_is_counted_once_a_day(clock: FakeClock) -> None:
    def row(status: str, count: str) -> str:
        return (
            f"<sessionCount><type>C</type><status>{status}</status><count>{count}</count>"
            "<averageDuration>60</averageDuration></sessionCount>"
        )

    body = (
        f'<ArrayOfSessionCount xmlns="{NS}">{row("C", "3")}{row("X", "many")}'
        f"{row('', 'few')}</ArrayOfSessionCount>"
    ).encode()
    async with hostile(clock, lambda: body, COUNTS_ENDING) as h:
        c = await polled(h, clock, 3)
        assert h.rejects["invalid_record"] == 1 + 3  # (C, X) once; the row of no status each
        clock.advance(86400)  # another day's counts: another record
        await c.collect(h.upstream())
    assert h.rejects["invalid_record"] == 2 + 4


async def test_a_bad_row_of_todays_counts_keeps_its_last_value_of_the_day(
    clock: FakeClock,
) -> None:
    # Probe 13: a row skipped (a count of 9x10^17) was zero-filled, so the day's count of
    # C/X read 0, as if no session had ended today; the last good value stays instead.
    counts = ["5", str(9 * 10**17), "7"]

    def body() -> bytes:
        return (
            f'<ArrayOfSessionCount xmlns="{NS}"><sessionCount><type>C</type><status>X'
            f"</status><count>{counts[0]}</count><averageDuration>60</averageDuration>"
            "</sessionCount></ArrayOfSessionCount>"
        ).encode()

    async with hostile(clock, body, COUNTS_ENDING) as h:
        c = h.collector()
        seen = []
        for _ in range(3):
            await c.collect(h.upstream())
            today = by_label(
                series(c.families(), "glance_sessions_today"),
                "session_type",
                "status",
                "counted_by",
            )
            average = by_label(
                series(c.families(), "glance_session_average_duration_seconds"),
                "session_type",
                "status",
                "counted_by",
            )
            seen.append((today.get(("C", "X", "end")), average.get(("C", "X", "end"))))
            counts.pop(0)
            clock.advance(60)
    assert seen == [(5.0, 60.0), (5.0, 60.0), (7.0, 60.0)]
    assert h.rejects["implausible_value"] == 1


async def test_the_parser_body_cap_comes_from_max_body_bytes(clock: FakeClock) -> None:
    pad = (b" " * 1020 + b"<p/>") * (17 * 1024)  # more than the old fixed 16 MiB cap
    body = _page(_session(1)).replace(b"<users>", b"<users>" + pad)
    async with hostile(clock, lambda: body) as h:
        c = h.collector()
        await c.collect(h.upstream(max_body_bytes=32 * 1024 * 1024))
    assert sum(completed(c).values()) == 1


async def test_a_version_1_state_keeps_the_feed_and_counts(h: Harness) -> None:
    first = h.collector()
    for _ in range(3):
        h.clock.advance(600)
        await first.collect(h.upstream())
    state = through_json(first.state())
    old = {k: v for k, v in state.items() if k not in ("waits", "wait_buckets")}
    old["version"] = 1  # which keyed every series with the account name too
    old["completed"] = [[["acme", *labels], value] for labels, value in state["completed"]]
    old["durations"] = [
        [["acme", labels[0]], counts, total]
        for labels, counts, total in state["durations"]
        if labels[1] == "answered"
    ]
    second = h.collector()
    second.restore(old)
    assert completed(second) == completed(first)
    assert second.cursor == first.cursor and len(second.seen) == len(first.seen)
    assert second.durations.total_count() == 0 == second.waits.total_count()
    assert any(event == "glance_state_upgraded" for _, event, _ in h.log.events)


async def test_the_wait_histogram_survives_a_restart(h: Harness) -> None:
    first = h.collector(page_size=20)
    for _ in range(4):
        h.clock.advance(600)
        await first.collect(h.upstream())
    assert first.waits.total_count() > 0
    second = h.collector(page_size=20, started_at=h.clock.time())
    second.restore(through_json(first.state()))
    assert second.waits.to_state() == first.waits.to_state()
    h.clock.advance(600)
    await second.collect(h.upstream())
    assert_feed_matches(h, second, NOON_ISH)


async def test_changed_wait_buckets_restart_only_the_wait_histogram(h: Harness) -> None:
    first = h.collector()
    h.clock.advance(1800)
    await first.collect(h.upstream())
    second = h.collector(wait_buckets=[10, 60])
    second.restore(through_json(first.state()))
    assert second.durations.to_state() == first.durations.to_state()
    assert second.waits.total_count() == 0 < first.waits.total_count()
    assert any(event == "glance_wait_buckets_changed" for _, event, _ in h.log.events)


async def test_vendor_data_equal_to_the_key_never_becomes_a_label(clock: FakeClock) -> None:
    sim = GlanceSimulator(
        clock,
        seed=2,
        session_types={"C": 1, DEMO_API_KEY: 1},
        final_statuses={"C": 1, quote_plus(DEMO_API_KEY): 1},
    )
    h = await start_harness(clock, sim)
    try:
        c = h.collector(page_size=100)
        for _ in range(3):
            clock.advance(900)
            await c.collect(h.upstream())
        text = render(c.families()).text.decode()
    finally:
        await stop_harness(h)
    assert DEMO_API_KEY not in text and quote_plus(DEMO_API_KEY) not in text
    assert 'session_type="<redacted>"' in text and 'status="<redacted>"' in text
