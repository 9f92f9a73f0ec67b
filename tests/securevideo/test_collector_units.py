"""Collector semantics on crafted History replies (no network: the client is replaced)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from exporter.errors import UpstreamError
from exporter.http import Upstream
from exporter.simulators.clock import FakeClock
from exporter.vendors.securevideo.collector import SecureVideoCollector
from exporter.vendors.securevideo.parser import HistoryPage, HistoryRecord, MonthCounts

from ..support import collector_context
from .harness import Harness, account, harness, pick, samples, total

BASE = "https://api.securevideo.com"


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class FakeClient:
    """Stands in for HistoryClient: serves whatever the test put in `feed_records`."""

    def __init__(self) -> None:
        self.feed_records: list[HistoryRecord] = []
        self.month_records: list[HistoryRecord] = []
        self.skipped = 0
        self.month_calls: list[float] = []
        self.fail_month = False
        self.fail_feed = False
        self.feed_starts: list[date | None] = []  # the catch-up's first day, if any

    async def feed(self, upstream: Upstream, now: float, start: date | None = None) -> HistoryPage:
        self.feed_starts.append(start)
        if self.fail_feed:
            raise upstream.error("history", "http_5xx", "HTTP 500")
        return HistoryPage(tuple(self.feed_records), self.skipped, "record 0: x")

    async def month(self, upstream: Upstream, now: float) -> MonthCounts:
        self.month_calls.append(now)
        if self.fail_month:
            raise upstream.error("history_month", "timeout", "no reply")
        return month_counts(self.month_records)


def month_counts(records: list[HistoryRecord]) -> MonthCounts:
    """What the month counter makes of these records: the last row of a session wins."""
    latest = {r.session_id: r.billable_status for r in records if r.billable_ts is not None}
    counts: dict[str | None, int] = {}
    for status in latest.values():
        counts[status] = counts.get(status, 0) + 1
    return MonthCounts(counts)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness(FakeClock(ts("2026-03-10T12:00:00"))) as result:
        yield result


def make(
    h: Harness, started_at: float | None = None, limit: int = 50, **fields: Any
) -> tuple[SecureVideoCollector, FakeClient]:
    collector = h.collector(account(BASE, **fields), started_at, limit)
    fake = FakeClient()
    collector.client = fake  # type: ignore[assignment]
    return collector, fake


def rec(
    sid: int,
    billable: str | None,
    duration: float | None = None,
    wait: float | None = None,
    status: str | None = "BILL",
    schedule: str | None = "OnDemand",
    provider: str | None = "Zoom",
    scheduled: str | None = None,
) -> HistoryRecord:
    return HistoryRecord(
        session_id=sid,
        billable_ts=ts(billable) if billable else None,
        duration_minutes=duration,
        wait_minutes=wait,
        billable_status=status,
        schedule_type=schedule,
        provider=provider,
        schedule_ts=ts(scheduled) if scheduled else None,
    )


def metrics(c: SecureVideoCollector) -> dict[Any, float]:
    return samples(c.families())


async def test_a_session_is_counted_once_with_the_labels_first_seen(h: Harness) -> None:
    c, fake = make(h, started_at=ts("2026-03-10T11:00:00"))
    fake.feed_records = [rec(1, "2026-03-10T11:30:00", status="BILL", provider="Zoom")]
    await c.collect(h.upstream)
    # Comped and switched provider later: still the one original count.
    fake.feed_records = [rec(1, "2026-03-10T11:30:00", 20, 2, status="COMP", provider="VSee")]
    h.clock.advance(60)
    await c.collect(h.upstream)
    await c.collect(h.upstream)
    m = metrics(c)
    assert pick(m, "securevideo_sessions_total") == {
        (
            ("account", "clinic"),
            ("billable_status", "BILL"),
            ("provider", "Zoom"),
            ("schedule_type", "OnDemand"),
        ): 1.0
    }
    # The duration is labelled with the provider current when it became known.
    assert total(m, "securevideo_session_duration_seconds_count", provider="VSee") == 1
    assert total(m, "securevideo_session_duration_seconds_sum", provider="VSee") == 1200
    assert total(m, "securevideo_session_wait_seconds_sum", provider="VSee") == 120


async def test_duration_observed_once_even_when_a_reconnect_grows_it(h: Harness) -> None:
    c, fake = make(h, started_at=ts("2026-03-10T00:00:00"))
    fake.feed_records = [rec(1, "2026-03-10T11:00:00", None, None)]
    await c.collect(h.upstream)
    m = metrics(c)
    assert total(m, "securevideo_session_duration_seconds_count") == 0
    assert total(m, "securevideo_sessions_in_progress") == 1
    for duration, wait in ((10, 3), (None, None), (25, 3), (25, 3)):
        fake.feed_records = [rec(1, "2026-03-10T11:00:00", duration, wait)]
        h.clock.advance(60)
        await c.collect(h.upstream)
    m = metrics(c)
    assert total(m, "securevideo_session_duration_seconds_count") == 1
    assert total(m, "securevideo_session_duration_seconds_sum") == 600
    assert total(m, "securevideo_session_wait_seconds_count") == 1
    assert total(m, "securevideo_session_wait_seconds_sum") == 180
    assert total(m, "securevideo_sessions_total") == 1
    assert total(m, "securevideo_sessions_in_progress") == 0


async def test_every_session_histogram_exists_at_zero_for_each_provider(h: Harness) -> None:
    # Probe 13: the wait and duration series were made by their first session, so they
    # began at 1 and `increase()` lost it from offered, answered and the speed of answer.
    c, _ = make(h, started_at=0.0)
    await c.collect(h.upstream)  # an empty feed
    m = metrics(c)
    for name in ("wait", "duration", "consult"):
        counts = pick(m, f"securevideo_session_{name}_seconds_count")
        assert {dict(labels)["provider"]: n for labels, n in counts.items()} == {
            "Zoom": 0,
            "One-Click": 0,
            "VSee": 0,
        }


async def test_null_wait_is_unknown_but_zero_wait_is_observed(h: Harness) -> None:
    c, fake = make(h, started_at=0.0)
    fake.feed_records = [
        rec(1, "2026-03-10T11:00:00", 10, None, provider="Zoom"),
        rec(2, "2026-03-10T11:05:00", 10, 0, provider="VSee"),
    ]
    await c.collect(h.upstream)
    m = metrics(c)
    assert total(m, "securevideo_session_wait_seconds_count") == 1
    assert total(m, "securevideo_session_wait_seconds_count", provider="VSee") == 1
    assert (
        m[
            (
                "securevideo_session_wait_seconds_bucket",
                (("account", "clinic"), ("le", "10.0"), ("provider", "VSee")),
            )
        ]
        == 1
    )
    assert total(m, "securevideo_session_duration_seconds_count") == 2
    # A wait that shows up later is observed then, once.
    fake.feed_records = [rec(1, "2026-03-10T11:00:00", 10, 4)]
    await c.collect(h.upstream)
    await c.collect(h.upstream)
    assert total(metrics(c), "securevideo_session_wait_seconds_count") == 2


async def test_restart_rule_sessions_before_start_are_never_counted(h: Harness) -> None:
    started = ts("2026-03-10T11:00:00")
    c, fake = make(h, started_at=started)
    fake.feed_records = [
        rec(1, "2026-03-10T10:59:59.999", None),  # connected before we started
        rec(2, "2026-03-10T11:00:00", None),
        rec(3, "2026-03-09T08:00:00", 30, 1),
    ]
    await c.collect(h.upstream)
    fake.feed_records = [
        rec(1, "2026-03-10T10:59:59.999", 40, 2),
        rec(2, "2026-03-10T11:00:00", 15, 1),
    ]
    await c.collect(h.upstream)
    m = metrics(c)
    assert total(m, "securevideo_sessions_total") == 1
    assert total(m, "securevideo_session_duration_seconds_sum") == 900
    assert total(m, "securevideo_session_wait_seconds_sum") == 60


async def test_lookback_counts_sessions_that_connected_shortly_before_start(h: Harness) -> None:
    c, fake = make(h, started_at=ts("2026-03-10T11:00:00"), lookback=7200.0)
    fake.feed_records = [
        rec(1, "2026-03-10T10:59:59.999", 40, 2),  # within the 2 h lookback
        rec(2, "2026-03-10T08:59:59", 30, 1),  # before it
    ]
    await c.collect(h.upstream)
    await c.collect(h.upstream)  # and once only
    m = metrics(c)
    assert total(m, "securevideo_sessions_total") == 1
    assert total(m, "securevideo_session_duration_seconds_sum") == 2400


async def test_in_progress_counts_connected_sessions_without_duration(h: Harness) -> None:
    c, fake = make(h, started_at=h.clock.time())
    fake.feed_records = [
        rec(1, "2026-03-10T11:00:00", None),
        rec(1, "2026-03-10T11:00:00", None),  # a duplicate row counts once
        rec(2, "2026-03-09T01:00:00", None),  # before start: still in progress now
        rec(3, "2026-03-10T11:10:00", 4),
        rec(4, None, None),  # never connected
    ]
    await c.collect(h.upstream)
    assert total(metrics(c), "securevideo_sessions_in_progress") == 2


async def test_in_progress_max_age_drops_sessions_whose_end_was_never_learnt(
    h: Harness,
) -> None:
    c, fake = make(h, in_progress_max_age="6h")
    fake.feed_records = [rec(1, "2026-03-10T11:00:00", None), rec(2, "2026-03-10T05:59:59", None)]
    await c.collect(h.upstream)
    assert total(metrics(c), "securevideo_sessions_in_progress") == 1


async def test_null_and_unknown_enum_values_and_label_overflow(h: Harness) -> None:
    c, fake = make(h, started_at=0.0, limit=1)
    fake.feed_records = [
        rec(1, "2026-03-10T11:00:00", status=None, schedule=None, provider=None),
        rec(2, "2026-03-10T11:01:00", status="TRIA", schedule="", provider="Teams"),
        rec(3, "2026-03-10T11:02:00", status="FREE", provider="Webex"),
        rec(4, "2026-03-10T11:03:00", status="TRIA", provider="Teams" + "x" * 500),
    ]
    await c.collect(h.upstream)
    m = metrics(c)
    sessions = {
        (d["billable_status"], d["schedule_type"], d["provider"]): n
        for d, n in ((dict(k), n) for k, n in pick(m, "securevideo_sessions_total").items())
    }
    assert sessions == {
        ("unknown", "unknown", "unknown"): 1,
        ("TRIA", "unknown", "Teams"): 1,  # one extra value per label fits the limit
        ("other", "OnDemand", "other"): 1,
        ("TRIA", "OnDemand", "other"): 1,  # a long value is cut, then folds as new
    }
    assert h.rejected["label_overflow"] == 3


async def test_bad_records_are_rejected_as_counted(h: Harness) -> None:
    c, fake = make(h)
    fake.skipped = 3
    await c.collect(h.upstream)
    assert h.rejected == {"invalid_record": 3}


async def test_implausible_records_are_counted_apart(h: Harness) -> None:
    c, fake = make(h)
    page = HistoryPage((), 5, "record 0: x", implausible=2)
    fake.feed = lambda upstream, now, start=None: _page(page)  # type: ignore[method-assign]
    await c.collect(h.upstream)
    assert h.rejected == {"invalid_record": 3, "implausible_value": 2}


async def _page(page: HistoryPage) -> HistoryPage:
    return page


async def test_start_delay_of_appointments_early_starts_as_zero(h: Harness) -> None:
    c, fake = make(h, started_at=0.0)
    fake.feed_records = [
        rec(1, "2026-03-10T11:01:30", schedule="Scheduled", scheduled="2026-03-10T11:00:00"),
        rec(2, "2026-03-10T10:58:00", schedule="Scheduled", scheduled="2026-03-10T11:00:00"),
        rec(3, "2026-03-10T11:20:00", schedule="Rescheduled", scheduled="2026-03-10T11:15:00"),
        rec(4, "2026-03-10T11:20:00", schedule="OnDemand", scheduled="2026-03-10T11:19:13"),
        rec(5, "2026-03-10T11:20:00", schedule="Scheduled", scheduled=None),
        # Both dates plausible, but eight days off its appointment: not observed.
        rec(6, "2026-03-10T11:00:00", schedule="Scheduled", scheduled="2026-03-02T11:00:00"),
    ]
    await c.collect(h.upstream)
    fake.feed_records[0] = rec(
        1, "2026-03-10T11:01:30", 30, 2, schedule="Scheduled", scheduled="2026-03-10T11:00:00"
    )
    await c.collect(h.upstream)  # observed once, when first counted
    m = metrics(c)
    delay = "securevideo_session_start_delay_seconds"
    assert total(m, f"{delay}_count", schedule_type="Scheduled") == 2
    assert total(m, f"{delay}_sum", schedule_type="Scheduled") == 90
    assert total(m, f"{delay}_count", schedule_type="Rescheduled") == 1
    assert total(m, f"{delay}_sum", schedule_type="Rescheduled") == 300
    assert pick(m, f"{delay}_count", schedule_type="OnDemand") == {}
    assert (
        m[
            (
                f"{delay}_bucket",
                (("account", "clinic"), ("le", "5.0"), ("schedule_type", "Scheduled")),
            )
        ]
        == 1
    )  # the early one
    assert pick(m, "securevideo_session_early_starts_total") == {
        (("account", "clinic"), ("schedule_type", "Rescheduled")): 0.0,
        (("account", "clinic"), ("schedule_type", "Scheduled")): 1.0,
    }
    assert h.rejected == {"implausible_value": 1}
    assert total(m, "securevideo_sessions_total") == 6  # counted all the same


async def test_consult_is_duration_minus_wait_observed_once(h: Harness) -> None:
    c, fake = make(h, started_at=0.0)
    fake.feed_records = [
        rec(1, "2026-03-10T11:00:00", 25, 4, provider="Zoom"),
        rec(2, "2026-03-10T11:00:00", 3, 5, provider="One-Click"),
        rec(3, "2026-03-10T11:00:00", 12, None, provider="VSee"),
        rec(4, "2026-03-10T11:00:00", None, None, provider="VSee"),
    ]
    await c.collect(h.upstream)
    fake.feed_records = [
        rec(1, "2026-03-10T11:00:00", 40, 4, provider="Zoom"),
        rec(3, "2026-03-10T11:00:00", 12, 0, provider="VSee"),
    ]
    await c.collect(h.upstream)
    m = metrics(c)
    consult = "securevideo_session_consult_seconds"
    assert total(m, f"{consult}_count", provider="Zoom") == 1
    assert total(m, f"{consult}_sum", provider="Zoom") == 21 * 60  # the first known value
    assert total(m, f"{consult}_sum", provider="One-Click") == 0  # clamped at 0
    assert total(m, f"{consult}_count", provider="One-Click") == 1
    # A wait known only later: the consult is observed then, from that record.
    assert total(m, f"{consult}_sum", provider="VSee") == 12 * 60
    assert total(m, f"{consult}_count") == 3


async def test_month_gauge_zero_filled_latest_status_and_interval(h: Harness) -> None:
    c, fake = make(h)
    fake.month_records = [
        rec(1, "2026-03-01T00:00:00", status="BILL"),
        rec(2, "2026-03-02T00:00:00", status="COMP"),
        rec(2, "2026-03-02T00:00:00", status="COMP"),
        rec(3, "2026-03-03T00:00:00", status="WEIRD"),
        rec(4, None, status=None),
    ]
    await c.collect(h.upstream)
    month = {
        dict(k)["billable_status"]: v
        for k, v in pick(metrics(c), "securevideo_sessions_month").items()
    }
    assert month == {"BILL": 1, "SVCO": 0, "DUPL": 0, "COMP": 1, "WEIRD": 1}
    fake.month_records = [rec(1, "2026-03-01T00:00:00", status="COMP")]
    h.clock.advance(299)
    await c.collect(h.upstream)
    assert len(fake.month_calls) == 1  # not due yet: the default month_interval is 5m
    h.clock.advance(1)
    await c.collect(h.upstream)
    assert len(fake.month_calls) == 2
    month = {
        dict(k)["billable_status"]: v
        for k, v in pick(metrics(c), "securevideo_sessions_month").items()
    }
    assert month == {"BILL": 0, "SVCO": 0, "DUPL": 0, "COMP": 1}


async def one_session_in_march(h: Harness, at: str) -> tuple[SecureVideoCollector, FakeClient]:
    """A collector that counted one session in March's usage, polled at `at`."""
    h.clock.set(ts(at))
    c, fake = make(h, month_interval="1h")
    fake.month_records = [rec(1, "2026-03-05T00:00:00")]
    await c.collect(h.upstream)
    assert total(metrics(c), "securevideo_sessions_month") == 1
    return c, fake


async def test_month_boundary_drops_last_months_numbers_at_once(h: Harness) -> None:
    c, fake = await one_session_in_march(h, "2026-03-31T23:59:00")
    h.clock.set(ts("2026-04-01T00:00:10"))
    fake.fail_month = True
    await c.collect(h.upstream)  # the month failing never fails the cycle
    assert pick(metrics(c), "securevideo_sessions_month") == {}
    fake.fail_month = False
    fake.month_records = []
    h.clock.advance(5)
    await c.collect(h.upstream)  # a failed month query is retried next cycle, not in 1h
    assert len(fake.month_calls) == 3
    assert total(metrics(c), "securevideo_sessions_month") == 0
    assert len(pick(metrics(c), "securevideo_sessions_month")) == 4


async def test_month_boundary_drops_last_months_numbers_even_if_the_feed_fails(
    h: Harness,
) -> None:
    c, fake = await one_session_in_march(h, "2026-03-31T23:58:00")
    h.clock.set(ts("2026-04-01T00:01:00"))
    fake.fail_feed = True
    with pytest.raises(UpstreamError):
        await c.collect(h.upstream)
    assert pick(metrics(c), "securevideo_sessions_month") == {}  # not March's as April's


async def test_month_failure_keeps_what_the_feed_taught(h: Harness) -> None:
    c, fake = make(h, started_at=0.0)
    fake.feed_records = [rec(1, "2026-03-10T11:00:00", 5, 1)]
    fake.fail_month = True
    await c.collect(h.upstream)  # no raise: `up` stays 1
    assert h.failures() == {("history_month", "timeout"): 1.0}
    m = metrics(c)
    assert total(m, "securevideo_sessions_total") == 1
    assert total(m, "securevideo_sessions_in_progress") == 0
    assert pick(m, "securevideo_sessions_month") == {}


async def test_a_failing_month_keeps_its_last_value_and_backs_off(h: Harness) -> None:
    c, fake = make(h, month_interval="10m")  # interval 60 s (the harness default)
    fake.month_records = [rec(1, "2026-03-02T00:00:00"), rec(2, "2026-03-03T00:00:00")]
    await c.collect(h.upstream)
    assert total(metrics(c), "securevideo_sessions_month") == 2
    h.clock.advance(600)
    fake.fail_month = True
    fake.month_records = []
    attempts: list[float] = []
    for _ in range(30):  # every 20 s for 10 minutes
        before = len(fake.month_calls)
        await c.collect(h.upstream)
        if len(fake.month_calls) > before:
            attempts.append(h.clock.time() - ts("2026-03-10T12:10:00"))
        # The last good value of this month stays, and so does the feed.
        assert total(metrics(c), "securevideo_sessions_month") == 2
        h.clock.advance(20)
    # 1st failure: retried next cycle; then after 1, 3, 7 intervals, capped at 10 min.
    assert attempts == [0, 20, 80, 260]  # the next would be at 680
    assert h.failures() == {("history_month", "timeout"): 4.0}
    fake.fail_month = False
    h.clock.advance(600)
    await c.collect(h.upstream)
    assert total(metrics(c), "securevideo_sessions_month") == 0


@pytest.mark.parametrize(
    ("asked", "waited"),
    [
        (500.0, 500.0),
        # Capped at max_backoff (600 s), as the scheduler caps it: 10^17 s froze the month
        # gauge until the month ended.
        (1e17, 600.0),
    ],
)
async def test_a_rate_limited_month_waits_as_asked_up_to_max_backoff(
    h: Harness, asked: float, waited: float
) -> None:
    c, fake = make(h)

    async def limited(upstream: Upstream, now: float) -> MonthCounts:
        fake.month_calls.append(now)
        raise upstream.error("history_month", "rate_limited", "HTTP 429", retry_after=asked)

    fake.month = limited  # type: ignore[method-assign]
    await c.collect(h.upstream)
    h.clock.advance(waited - 1)
    await c.collect(h.upstream)
    assert len(fake.month_calls) == 1
    h.clock.advance(1)
    await c.collect(h.upstream)
    assert len(fake.month_calls) == 2


async def test_feed_failure_changes_nothing(h: Harness) -> None:
    c, fake = make(h, started_at=0.0)
    fake.fail_feed = True
    fake.feed_records = [rec(1, "2026-03-10T11:00:00", 5, 1)]
    with pytest.raises(UpstreamError):
        await c.collect(h.upstream)
    assert fake.month_calls == []
    m = metrics(c)
    assert total(m, "securevideo_sessions_total") == 0
    assert pick(m, "securevideo_sessions_in_progress") == {}


async def test_state_is_bounded_by_time_and_old_sessions_are_never_recounted(
    h: Harness,
) -> None:
    c, fake = make(h, started_at=0.0)
    fake.feed_records = [rec(1, "2026-03-10T11:00:00", 5, 1)]
    await c.collect(h.upstream)
    assert c.tracked_sessions == 1
    # Window 2026-03-11..12 plus a day of slack still covers 03-10.
    h.clock.set(ts("2026-03-12T23:00:00"))
    fake.feed_records = []
    await c.collect(h.upstream)
    assert c.tracked_sessions == 1
    assert fake.feed_starts == [None, date(2026, 3, 10)]  # the last feed's day, caught up
    h.clock.set(ts("2026-03-13T00:00:00"))
    await c.collect(h.upstream)
    assert c.tracked_sessions == 0
    # A vendor ignoring startDt returns the forgotten session: it must not count again.
    fake.feed_records = [rec(1, "2026-03-10T11:00:00", 5, 1)]
    await c.collect(h.upstream)
    m = metrics(c)
    assert total(m, "securevideo_sessions_total") == 1
    assert total(m, "securevideo_session_duration_seconds_count") == 1
    assert c.tracked_sessions == 0


async def test_families_carry_account_first_and_help_texts(h: Harness) -> None:
    c, fake = make(h, started_at=0.0)
    fake.feed_records = [rec(1, "2026-03-10T11:00:00", 5, 1)]
    await c.collect(h.upstream)
    families = {f.name: f for f in c.families()}
    assert set(families) == {
        "securevideo_sessions",
        "securevideo_session_duration_seconds",
        "securevideo_session_wait_seconds",
        "securevideo_session_consult_seconds",
        "securevideo_session_start_delay_seconds",
        "securevideo_session_early_starts",
        "securevideo_sessions_in_progress",
        "securevideo_sessions_month",
    }
    assert families["securevideo_sessions"].type == "counter"
    assert families["securevideo_session_duration_seconds"].type == "histogram"
    for family in families.values():
        assert "polled in the background" in family.documentation
        for sample in family.samples:
            assert next(iter(sample.labels)) == "account"
            assert sample.labels["account"] == "clinic"


async def test_label_combinations_are_bounded_and_the_totals_kept(h: Harness) -> None:
    # Found by a probe: 45 values in each of the three labels, each under its own limit,
    # made 23,296 series; the account was left out of /metrics for good while up.
    c = SecureVideoCollector(
        account(BASE),
        collector_context(
            h.clock, h.rejected, started_at=0.0, label_limit=50, max_series_per_account=400
        ),
    )
    fake = FakeClient()
    c.client = fake  # type: ignore[assignment]
    fake.feed_records = [
        rec(
            i,
            "2026-03-10T11:00:00",
            status=f"S{i % 45}",
            schedule=f"T{i // 45 % 45}",
            provider=f"P{i // 2025}",
        )
        for i in range(1, 2001)
    ]
    await c.collect(h.upstream)
    sessions = pick(metrics(c), "securevideo_sessions_total")
    assert len(sessions) == 400 // 4 + 1  # the bound, and every label `other`
    assert sum(sessions.values()) == 2000  # each session still counted once
    folded = {k: n for k, n in sessions.items() if dict(k)["provider"] == "other"}
    assert [dict(k)["billable_status"] for k in folded] == ["other"]
    assert h.rejected["label_overflow"] == sum(folded.values()) == 2000 - 100
