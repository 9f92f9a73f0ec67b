"""SecureVideo History -> counters, histograms and gauges, each session counted once.

The feed is polled over a rolling window of UTC days, so consecutive polls overlap;
per-session state (counted? duration observed? wait observed?) keyed by SessionId makes
each event happen once. That state is pruned by BillableTs, which SecureVideo never
changes once set: a session older than the window (plus a day of slack) cannot come back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from prometheus_client.core import Metric

from ...families import OTHER, BoundedLabel, CounterSet, HistogramSet, gauge
from ...http import Upstream
from ...statecheck import counter_state, histogram_state, is_int, is_number, list_of, number
from ..base import AccountCollector, CollectorContext
from .client import HistoryClient, day_start, feed_window, month_start, utc_day
from .config import MAX_FEED_DAYS, SecureVideoAccount
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
# Bump when the shape of `state()` changes: an older or newer state is then ignored.
STATE_VERSION = 1


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
        # Sessions that connected before this are never counted: our start, or with
        # --storage.path the start of the process whose counts we carry on.
        self._counted_from = ctx.started_at - account.lookback
        # The last time a feed reply was applied, and the one an earlier process saved
        # (--storage.path): until a feed succeeds here, the feed reaches back to that day,
        # so sessions that connected while no exporter ran are counted even if they have
        # left the rolling window.
        self._fed_until: float | None = None
        # A lookback beyond the rolling window is read once, like a restart's catch-up.
        self._catch_up_from: float | None = self._counted_from if account.lookback else None
        self.in_progress: int | None = None
        self.month: dict[str, int] | None = None
        self._month_key: str | None = None
        self._month_fetched_at: float | None = None

    async def collect(self, upstream: Upstream) -> None:
        now = self.ctx.clock.time()
        try:
            start = self._catch_up_start(now)
            # The extra argument only when catching up: stand-in clients (tests) keep the
            # two-argument form.
            page = await (self.client.feed(upstream, now) if start is None
                          else self.client.feed(upstream, now, start))
            self._reject_bad(page)
            self._apply_feed(page.records, now, start)
            self._fed_until, self._catch_up_from = now, None
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

    def _catch_up_start(self, now: float) -> date | None:
        """The first day to ask for when the feed an earlier process last applied is older
        than the rolling window's first day; None when the window already covers it."""
        if self._catch_up_from is None:
            return None
        window_start, today = feed_window(now, self.account.feed_days)
        wanted = utc_day(self._catch_up_from)
        if wanted >= window_start:
            return None
        # One reply has no pagination: never ask for more than the config allows at all.
        oldest = today - timedelta(days=MAX_FEED_DAYS - 1)
        if wanted < oldest:
            self.ctx.log.warning("securevideo_catch_up_truncated", lost_before=oldest.isoformat(),
                                 hint="sessions that connected earlier are not counted")
            wanted = oldest
        return wanted

    def _month_due(self, now: float) -> bool:
        last = self._month_fetched_at
        return last is None or now - last >= self.account.month_interval

    def _reject_bad(self, page: HistoryPage) -> None:
        if page.skipped:
            self.ctx.reject("bad_record", page.skipped)
            self.ctx.log.debug("securevideo_records_skipped", count=page.skipped,
                               first_problem=page.first_problem)

    def _apply_feed(
        self, records: Iterable[HistoryRecord], now: float, catch_up: date | None = None
    ) -> None:
        start, _ = feed_window(now, self.account.feed_days)
        window_from = day_start(start)
        horizon = day_start(min(start, catch_up or start)) - PRUNE_SLACK
        self._seen = {sid: s for sid, s in self._seen.items() if s.billable_ts >= horizon}
        # Sessions that connected before we started were counted by our predecessor (or
        # never will be); sessions beyond the horizon were already forgotten and must not
        # be counted a second time if a vendor ever returns them.
        eligible_from = max(self._counted_from, horizon)
        latest = {r.session_id: r for r in records}
        in_progress = 0
        max_age = self.account.in_progress_max_age
        for record in latest.values():
            billable_ts = record.billable_ts
            if billable_ts is None:
                continue
            if (record.duration_minutes is None and billable_ts >= window_from
                    and (max_age <= 0 or now - billable_ts <= max_age)):
                in_progress += 1  # a catch-up reply's older days are not "now"
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

    # -- durable state (--storage.path) ------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "counted_from": self._counted_from,
            # A catch-up still pending stays pending in the next process.
            "fed_until": self._catch_up_from or self._fed_until,
            "seen": [[sid, s.billable_ts, s.duration_observed, s.wait_observed]
                     for sid, s in self._seen.items()],
            "sessions": self.sessions.to_state(),
            "durations": self.durations.to_state(),
            "waits": self.waits.to_state(),
            "duration_buckets": list(self.durations.bounds),
            "wait_buckets": list(self.waits.bounds),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Carry on counting from a saved state: sessions counted or observed before are
        not again, and the next feed reaches back to the last one applied.

        Everything is checked before anything is applied: a state that does not fit
        raises ValueError and leaves the fresh collector as it was."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r}, expected {STATE_VERSION}")
        counted_from = number(state.get("counted_from"), "counted_from")
        fed_until = state.get("fed_until")
        if fed_until is not None:
            fed_until = number(fed_until, "fed_until")
        seen: dict[int, _Seen] = {}
        for item in list_of(state, "seen"):
            if not (isinstance(item, list) and len(item) == 4 and is_int(item[0])
                    and is_number(item[1]) and isinstance(item[2], bool)
                    and isinstance(item[3], bool)):
                raise ValueError("state seen entry is not [id, BillableTs, bool, bool]")
            seen[item[0]] = _Seen(float(item[1]), item[2], item[3])
        sessions = counter_state(state, "sessions", len(self.sessions.labelnames) - 1)
        histograms = []
        for key, histogram in (("durations", self.durations), ("waits", self.waits)):
            same = state.get(f"{key[:-1]}_buckets") == list(histogram.bounds)
            items = histogram_state(state, key, len(histogram.labelnames) - 1,
                                     len(histogram.bounds) + 1 if same else None)
            histograms.append((key, histogram, items, same))

        self._counted_from, self._catch_up_from, self._seen = counted_from, fed_until, seen
        self.sessions.load_state(sessions)
        for labels in self.sessions.values:
            # Restored label values keep their place within the label cap.
            for bounded, value in zip((self._status, self._schedule, self._provider), labels,
                                      strict=True):
                bounded(value)
        for key, histogram, items, same in histograms:
            if same:
                histogram.load_state(items)
            else:
                # The counter carries on; this histogram restarts (a counter reset to
                # Prometheus) rather than mixing counts from two sets of bounds.
                self.ctx.log.warning("securevideo_buckets_changed", histogram=key,
                                     hint="the histogram starts from zero")

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








