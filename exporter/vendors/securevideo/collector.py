"""SecureVideo History -> counters, histograms and gauges, each session counted once.

The feed is polled over a rolling window of UTC days, so consecutive polls overlap;
per-session state (counted? duration observed? wait observed?) keyed by SessionId makes
each event happen once. That state is pruned by BillableTs, which SecureVideo never
changes once set: a session older than the window (plus a day of slack) cannot come back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import Metric

from ...families import OTHER, BoundedLabel, CounterSet, HistogramSet, gauge
from ...http import Upstream
from ..base import AccountCollector, CollectorContext
from .client import HistoryClient, day_start, feed_window, month_start
from .config import SecureVideoAccount
from .parser import HistoryPage, HistoryRecord

BILLABLE_STATUSES = ("BILL", "SVCO", "DUPL", "COMP")
SCHEDULE_TYPES = ("OnDemand", "Rescheduled", "Scheduled")
PROVIDERS = ("Zoom", "One-Click", "VSee")
UNKNOWN = "unknown"
# Label values are vendor free text; a long one is cut rather than exported whole.
MAX_LABEL_LENGTH = 64
# Slack beyond the feed window before a session is forgotten: covers a vendor clock or
# a day boundary that disagrees with ours.
PRUNE_SLACK = 86400.0


@dataclass
class _Seen:
    billable_ts: float
    duration_observed: bool = False
    wait_observed: bool = False


class SecureVideoCollector(AccountCollector):
    def __init__(self, account: SecureVideoAccount, ctx: CollectorContext) -> None:
        self.account = account
        self.ctx = ctx
        self.client = HistoryClient(account)
        self._prefix = (account.common.name,)
        limit = ctx.label_value_limit
        self._status = BoundedLabel((*BILLABLE_STATUSES, UNKNOWN), limit)
        self._schedule = BoundedLabel((*SCHEDULE_TYPES, UNKNOWN), limit)
        self._provider = BoundedLabel((*PROVIDERS, UNKNOWN), limit)
        self._overflow = 0
        self.sessions = CounterSet(
            "securevideo_sessions_total",
            "SecureVideo sessions that connected (History BillableTs set), counted once per "
            "SessionId with the BillableStatusCd, ScheduleType and ReportableMeetingProvider "
            "first seen; polled in the background.",
            ("account", "billable_status", "schedule_type", "provider"),
        )
        self.durations = HistogramSet(
            "securevideo_session_duration_seconds",
            "SecureVideo session length (History DurationMinutes x 60), observed once per "
            "session when it first becomes known; polled in the background.",
            ("account", "provider"),
            account.duration_buckets,
        )
        self.waits = HistogramSet(
            "securevideo_session_wait_seconds",
            "SecureVideo wait before the second participant connected (History WaitTime x "
            "60), observed once per session when it first becomes known; polled in the "
            "background.",
            ("account", "provider"),
            account.wait_buckets,
        )
        self._seen: dict[int, _Seen] = {}
        self.in_progress: int | None = None
        self.month: dict[str, int] | None = None
        self._month_key: str | None = None
        self._month_fetched_at: float | None = None

    async def collect(self, upstream: Upstream) -> None:
        now = self.ctx.clock.time()
        try:
            page = await self.client.feed(upstream, now)
            self._reject_bad(page)
            self._apply_feed(page.records, now)
            key = month_start(now).isoformat()
            if key != self._month_key:
                # Last month's numbers must not pose as this month's, even for one cycle.
                self.month, self._month_key, self._month_fetched_at = None, key, None
            if self._month_due(now):
                month_page = await self.client.month(upstream, now)
                self._reject_bad(month_page)
                self.month = self._month_counts(month_page.records)
                self._month_fetched_at = now
        finally:
            self._flush_overflow()

    def _month_due(self, now: float) -> bool:
        last = self._month_fetched_at
        return last is None or now - last >= self.account.month_interval

    def _reject_bad(self, page: HistoryPage) -> None:
        if page.skipped:
            self.ctx.reject("bad_record", page.skipped)
            self.ctx.log.debug("securevideo_records_skipped", count=page.skipped,
                               first_problem=page.first_problem)

    def _apply_feed(self, records: Iterable[HistoryRecord], now: float) -> None:
        start, _ = feed_window(now, self.account.feed_days)
        horizon = day_start(start) - PRUNE_SLACK
        self._seen = {sid: s for sid, s in self._seen.items() if s.billable_ts >= horizon}
        # Sessions that connected before we started were counted by our predecessor (or
        # never will be); sessions beyond the horizon were already forgotten and must not
        # be counted a second time if a vendor ever returns them.
        eligible_from = max(self.ctx.started_at, horizon)
        latest = {r.session_id: r for r in records}
        in_progress = 0
        max_age = self.account.in_progress_max_age
        for record in latest.values():
            billable_ts = record.billable_ts
            if billable_ts is None:
                continue
            if record.duration_minutes is None and (max_age <= 0 or now - billable_ts <= max_age):
                in_progress += 1
            if billable_ts >= eligible_from:
                self._account_for(record, billable_ts)
        self.in_progress = in_progress

    def _account_for(self, record: HistoryRecord, billable_ts: float) -> None:
        seen = self._seen.get(record.session_id)
        if seen is None:
            seen = self._seen[record.session_id] = _Seen(billable_ts)
            self.sessions.inc((
                self._label(self._status, record.billable_status),
                self._label(self._schedule, record.schedule_type),
                self._label(self._provider, record.provider),
            ))
        if not seen.duration_observed and record.duration_minutes is not None:
            seen.duration_observed = True
            provider = self._label(self._provider, record.provider)
            self.durations.observe((provider,), record.duration_minutes * 60.0)
        if not seen.wait_observed and record.wait_minutes is not None:
            seen.wait_observed = True
            provider = self._label(self._provider, record.provider)
            self.waits.observe((provider,), record.wait_minutes * 60.0)

    def _month_counts(self, records: Iterable[HistoryRecord]) -> dict[str, int]:
        latest = {r.session_id: r for r in records if r.billable_ts is not None}
        counts = dict.fromkeys(BILLABLE_STATUSES, 0)
        for record in latest.values():
            status = self._label(self._status, record.billable_status)
            counts[status] = counts.get(status, 0) + 1
        return counts

    def _label(self, bounded: BoundedLabel, value: str | None) -> str:
        if not value:
            return UNKNOWN
        value = value[:MAX_LABEL_LENGTH]
        label = bounded(value)
        if label == OTHER and value != OTHER:
            self._overflow += 1
        return label

    def _flush_overflow(self) -> None:
        if self._overflow:
            self.ctx.reject("label_overflow", self._overflow)
            self._overflow = 0

    @property
    def tracked_sessions(self) -> int:
        return len(self._seen)

    def families(self) -> Iterable[Metric]:
        prefix = self._prefix
        families: list[Metric] = [
            self.sessions.family(prefix),
            self.durations.family(prefix),
            self.waits.family(prefix),
        ]
        if self.in_progress is not None:
            families.append(gauge(
                "securevideo_sessions_in_progress",
                "SecureVideo sessions in the feed window that are connected (History "
                "BillableTs set) and whose DurationMinutes is still null; polled in the "
                "background.",
                ("account",), {prefix: float(self.in_progress)},
            ))
        if self.month is not None:
            families.append(gauge(
                "securevideo_sessions_month",
                "SecureVideo sessions billable in the current UTC month, by current History "
                "BillableStatusCd; polled in the background.",
                ("account", "billable_status"),
                {(*prefix, status): float(n) for status, n in self.month.items()},
            ))
        return families
