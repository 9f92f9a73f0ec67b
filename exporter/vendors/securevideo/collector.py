"""SecureVideo History -> counters, histograms and gauges, each session counted once.

The feed is polled over a rolling window of UTC days, so consecutive polls overlap;
per-session state (counted? duration observed? wait observed?) keyed by SessionId makes
each event happen once. That state is pruned by BillableTs, which SecureVideo never
changes once set: a session older than the window (plus a day of slack) cannot come back.
"""

from __future__ import annotations

import asyncio
import math
import operator
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from datetime import date, timedelta
from typing import Any

import msgspec
from prometheus_client.core import Metric

from ...dedupe import DedupeFull, KeyJournal
from ...errors import UpstreamError
from ...families import BoundedLabel, CounterSet, HistogramSet, LabelValues, gauge
from ...http import Upstream
from ...sanitize import MAX_AHEAD, plausible_seconds
from ...savedstate import SavedState
from ...statecheck import (
    counter_state,
    is_int,
    is_number,
    list_of,
    not_ahead,
    number,
    remembered_fits,
    saved_histogram,
    state_version,
)
from ...vendorclock import AHEAD_TOLERANCE, StartOnVendorClock, believed_skew
from ..base import APPLY_CHUNK, AccountCollector, CollectorContext
from .client import FEED, MONTH, HistoryClient, day_start, feed_window, month_start, utc_day
from .config import MAX_FEED_DAYS, SecureVideoAccount
from .parser import HistoryPage, HistoryRecord, MonthCounts

BILLABLE_STATUSES = ("BILL", "SVCO", "DUPL", "COMP")
SCHEDULE_TYPES = ("OnDemand", "Rescheduled", "Scheduled")
# Sessions with an appointment: their start delay (BillableTs - ScheduleTs) is observed.
# An OnDemand session's ScheduleTs is when it was created, so it has no delay to speak of.
APPOINTMENT_TYPES = ("Scheduled", "Rescheduled")
_RAW_LABELS = operator.attrgetter("billable_status", "schedule_type", "provider")
PROVIDERS = ("Zoom", "One-Click", "VSee")
UNKNOWN = "unknown"
# Slack beyond the feed window before a session is forgotten: covers a vendor clock or
# a day boundary that disagrees with ours.
PRUNE_SLACK = 86400.0
# Bump when the shape of `state()` changes: an older or newer state is then ignored.
# Version 1 (no consult or start-delay series) is still read: it carries on, and the new
# series start from zero.
STATE_VERSION = 2
# Leave the month query this much of the cycle deadline unused, so that the month, not
# the whole cycle, is what runs out of time.
MONTH_DEADLINE_MARGIN = 1.0

POLLED = "polled in the background"


def _saved(seen: _Seen) -> tuple[float, bool, bool, bool]:
    """A session's saved entry after its id (a copy: the flags change on the loop)."""
    return (seen.billable_ts, seen.duration_observed, seen.wait_observed, seen.consult_observed)


class _Seen(msgspec.Struct, gc=False):
    """A remembered session: one per session of the feed's days, so tens of thousands
    per busy account; untracked by the garbage collector (floats and bools only), or
    every full collection walks each of them (at 2,000 accounts such collections
    stopped the loop for up to 2.5 s)."""

    billable_ts: float
    duration_observed: bool = False
    wait_observed: bool = False
    consult_observed: bool = False


class SecureVideoCollector(AccountCollector):
    def __init__(
        self,
        account: SecureVideoAccount,
        ctx: CollectorContext,
        *,
        client: HistoryClient | None = None,
    ) -> None:
        self.account = account
        self.ctx = ctx
        self._once = ctx.rejected_once()
        # Tests hand in a stand-in client here, as with every vendor's collector.
        self.client = client or HistoryClient(account, ctx)
        self._prefix = (account.common.name,)
        self._status = ctx.label((*BILLABLE_STATUSES, UNKNOWN))
        self._schedule = ctx.label((*SCHEDULE_TYPES, UNKNOWN))
        self._provider = ctx.label((*PROVIDERS, UNKNOWN))
        self.sessions = ctx.counter(
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
        self.consults = HistogramSet(
            "securevideo_session_consult_seconds",
            "SecureVideo consult time after the second participant connected (History "
            "(DurationMinutes - WaitTime) x 60, at least 0), observed once per session when "
            "both first become known; " + POLLED + ".",
            ("account", "provider"),
            account.duration_buckets,
        )
        self.start_delays = HistogramSet(
            "securevideo_session_start_delay_seconds",
            "How late Scheduled and Rescheduled SecureVideo sessions connected (History "
            "BillableTs - ScheduleTs; an early start is observed as 0), observed once per "
            "session; " + POLLED + ".",
            ("account", "schedule_type"),
            account.wait_buckets,
        )
        self.early_starts = CounterSet(
            "securevideo_session_early_starts_total",
            "Scheduled and Rescheduled SecureVideo sessions that connected before their "
            "appointment (History BillableTs before ScheduleTs), counted once; " + POLLED + ".",
            ("account", "schedule_type"),
        )
        self._zero_fill()
        self._seen: dict[int, _Seen] = {}
        # With --storage.path: which sessions of `_seen` the next save writes.
        self._seen_journal: KeyJournal[int] = KeyJournal()
        self._restored_version: int | None = None
        self._pruned_below: float | None = None  # the horizon `_seen` was last pruned at
        # The latest BillableTs of a session forgotten: one billed then or before may have
        # been counted, so it never is again, even once the horizon moves back (our
        # clock stepped days ahead for a cycle pruned today's sessions, and counted them
        # all again when it came back).
        self._forgot_upto = -math.inf
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
        # `_counted_from` is on our clock until SecureVideo's Date headers say where it
        # was on theirs (or it is restored).
        self._start = StartOnVendorClock(ctx.clock.time(), ctx.clock.monotonic())
        self.in_progress: int | None = None
        self.month: dict[str, int] | None = None
        self._month_key: str | None = None
        self._month_fetched_at: float | None = None
        # After a failed month query: when to try again, and how many failed in a row.
        self._month_retry_at: float | None = None
        self._month_failures = 0

    async def collect(self, upstream: Upstream) -> None:
        # On SecureVideo's clock where its Date says ours is ahead (as the last reply
        # measured it): its days make the feed's window, its month the usage gauge. With
        # feed_days 1 and our clock 30 minutes ahead at 23:50, the window was tomorrow's.
        now = self.ctx.clock.time()
        if (skew := believed_skew(upstream.clock_skew)) < -AHEAD_TOLERANCE:
            now += skew
        began = asyncio.get_running_loop().time()
        key = month_start(now).isoformat()
        if key != self._month_key:
            # Last month's numbers must not pose as this month's, even for one cycle,
            # nor while the feed fails (first, below).
            self.month, self._month_key, self._month_fetched_at = None, key, None
            self._month_retry_at, self._month_failures = None, 0
        start = self._catch_up_start(now)
        page = await self._fetch_feed(upstream, now, start)
        if not self._start.settled and self._count_from_vendor_clock(upstream.clock_skew):
            # Our start moved back, and a lookback with it: ask again if its catch-up now
            # begins on an earlier day than the reply covers.
            again = self._catch_up_start(now)
            if again is not None and (start is None or again < start):
                start = again
                page = await self._fetch_feed(upstream, now, start)
        self._reject_bad(page)
        try:
            await self._apply_feed(page.records, now, start)
        except DedupeFull as exc:
            # What was counted stays counted (and remembered); the rest waits until older
            # sessions are forgotten, rather than being counted without being remembered.
            raise upstream.error(FEED, "limit_exceeded", str(exc)) from None
        self._fed_until, self._catch_up_from = now, None
        if self._month_due(now):
            await self._collect_month(upstream, now, began)

    async def _collect_month(self, upstream: Upstream, now: float, began: float) -> None:
        """The month gauge is a side view (billing): its query failing, or its reply being
        too big, never fails the cycle. The failure is counted and logged, the gauge keeps
        its last value of this month, and the query is retried with a backoff."""
        left = (
            self.account.common.cycle_deadline
            - MONTH_DEADLINE_MARGIN
            - (asyncio.get_running_loop().time() - began)
        )
        try:
            if left <= 0:
                raise upstream.error(MONTH, "timeout", "no time left in this cycle")
            try:
                async with asyncio.timeout(left):
                    counts = await self.client.month(upstream, now)
            except TimeoutError:
                raise upstream.error(
                    MONTH, "timeout", f"no reply within the {left:.3g}s left of the cycle deadline"
                ) from None
        except UpstreamError as exc:
            self._month_failed(now, exc)
            return
        self._reject_counts(
            counts.skipped, counts.implausible, counts.first_problem, ("month", counts.rejected_ids)
        )
        self.month = self._month_counts(counts, month_start(now).isoformat())
        self._month_fetched_at, self._month_retry_at, self._month_failures = now, None, 0

    async def _fetch_feed(self, upstream: Upstream, now: float, start: date | None) -> HistoryPage:
        # The extra argument only when catching up: stand-in clients (tests) keep the
        # two-argument form.
        try:
            return await (
                self.client.feed(upstream, now)
                if start is None
                else self.client.feed(upstream, now, start)
            )
        except UpstreamError as exc:
            if start is not None and exc.reason == "limit_exceeded":
                # A catch-up too big for one reply would fail every cycle for good: give
                # it up (those days are lost, and said so) and carry on with the window.
                self._catch_up_from = self._fed_until = None
                self.ctx.log.warning(
                    "securevideo_catch_up_truncated",
                    lost_before=feed_window(now, self.account.feed_days)[0].isoformat(),
                    hint="the catch-up reply was over max_records_per_reply",
                )
            raise

    def _count_from_vendor_clock(self, skew: float | None) -> bool:
        """At a feed reply, before it is counted: our start on SecureVideo's clock once
        two replies' Dates agree it was behind ours when this collector was made; True if
        that moved it (the sessions of the gap the first reply left out count then). With
        our clock 30 minutes ahead, the sessions that connected in those 30 minutes after
        we started were never counted, even once the clocks agreed. A reply without a
        Date changes nothing: the next one may have one."""
        if skew is None:
            return False
        clock = self.ctx.clock
        shift = self._start.observe(clock.time(), clock.monotonic(), skew)
        if shift is None or shift >= -AHEAD_TOLERANCE:
            return False
        self._counted_from += shift
        if self._catch_up_from is not None:
            self._catch_up_from += shift
        self.ctx.log.info(
            "securevideo_counting_from_vendor_clock",
            behind_seconds=round(-shift),
            hint="this host's clock was ahead of SecureVideo's (its Date header)",
        )
        return True

    def _month_failed(self, now: float, exc: UpstreamError) -> None:
        self._month_failures += 1
        # The first retry comes with the next cycle, later ones back off (1, 3, 7 ...
        # intervals) up to month_interval: a month too big to count is not fetched again
        # every few seconds. A Retry-After is honoured up to max_backoff, as the
        # scheduler honours it: one of 10^17 s (or a date in 9999) froze
        # securevideo_sessions_month until the month ended.
        backoff = self.account.common.interval * (2 ** min(self._month_failures - 1, 20) - 1)
        asked = min(exc.retry_after or 0.0, self.ctx.max_backoff)
        delay = max(min(backoff, self.account.month_interval), asked)
        self._month_retry_at = now + delay
        self.ctx.log.warning(
            "securevideo_month_failed",
            operation=exc.operation,
            reason=exc.reason,
            error=exc.message,
            consecutive_failures=self._month_failures,
            hint="securevideo_sessions_month keeps its last value",
        )

    def _catch_up_start(self, now: float) -> date | None:
        """The first day to ask for when the last feed applied (here, or by an earlier
        process) is older than the rolling window's first day; None when the window
        already covers it. Here too: a History outage of days while we ran lost the
        sessions of the days the window had moved past (6,909 of 15,193 in three)."""
        since = self._catch_up_from if self._catch_up_from is not None else self._fed_until
        if since is None:
            return None
        window_start, today = feed_window(now, self.account.feed_days)
        wanted = utc_day(since)
        if wanted >= window_start:
            return None
        # One reply has no pagination: never ask for more than the config allows at all.
        oldest = today - timedelta(days=MAX_FEED_DAYS - 1)
        if wanted < oldest:
            self.ctx.log.warning(
                "securevideo_catch_up_truncated",
                lost_before=oldest.isoformat(),
                hint="sessions that connected earlier are not counted",
            )
            wanted = oldest
        return wanted

    def _month_due(self, now: float) -> bool:
        if self._month_retry_at is not None:
            return now >= self._month_retry_at
        last = self._month_fetched_at
        return last is None or now - last >= self.account.month_interval

    def _reject_bad(self, page: HistoryPage) -> None:
        self._reject_counts(
            page.skipped, page.implausible, page.first_problem, ("feed", page.rejected_ids)
        )

    def _reject_counts(
        self,
        skipped: int,
        implausible: int,
        first_problem: str | None,
        ids: tuple[str, Sequence[tuple[str, int]]],
    ) -> None:
        """Count one reply's skipped records; those of `ids` (which query, and the
        parser's `rejected_ids`) once however many of its replies hold them."""
        if not skipped:
            return
        totals = {"invalid_record": skipped - implausible, "implausible_value": implausible}
        self._once.reply(ids[0], totals, ids[1], self.ctx.clock.time())
        self.ctx.log.debug(
            "securevideo_records_skipped",
            count=skipped,
            implausible=implausible,
            first_problem=first_problem,
        )

    async def _apply_feed(
        self, records: Iterable[HistoryRecord], now: float, catch_up: date | None = None
    ) -> None:
        start, _ = feed_window(now, self.account.feed_days)
        window_from = day_start(start)
        horizon = day_start(min(start, catch_up or start)) - PRUNE_SLACK
        if horizon != self._pruned_below:
            # Only sessions at or after the horizon are ever remembered (below), so there
            # is something to forget only when it moved: once a day, not every cycle.
            kept = {sid: s for sid, s in self._seen.items() if s.billable_ts >= horizon}
            if len(kept) < len(self._seen):
                last_forgotten = max(
                    s.billable_ts for s in self._seen.values() if s.billable_ts < horizon
                )
                self._forgot_upto = max(self._forgot_upto, last_forgotten)
            if not self._seen_journal.whole:
                for sid in self._seen.keys() - kept.keys():
                    self._seen_journal.forgot(sid)
                self._seen_journal.bound(len(kept))
            self._seen = kept
            self._pruned_below = horizon
        # Sessions that connected before we started were counted by our predecessor (or
        # never will be); sessions beyond the horizon, or billed no later than one that
        # was forgotten, may have been counted and forgotten, and must not be counted a
        # second time if a vendor ever returns them.
        eligible_from = max(
            self._counted_from, horizon, math.nextafter(self._forgot_upto, math.inf)
        )
        latest = {r.session_id: r for r in records}
        in_progress = 0
        max_age = self.account.in_progress_max_age
        remembered, journal = self._seen, self._seen_journal
        seen_before, limit = remembered.get, self.ctx.max_remembered_ids
        fresh: list[HistoryRecord] = []  # remembered, to be counted by `_count_new`
        # A session billed in the future would be counted, and remembered (pruning goes
        # by BillableTs) until that day: enough of them fill the dedupe memory for good.
        latest_plausible, ahead = now + MAX_AHEAD, []
        try:
            for done, record in enumerate(latest.values(), 1):
                if done % APPLY_CHUNK == 0:
                    # A month of sessions is tens of thousands of records: let scrapes in.
                    self._count_new(fresh)
                    await asyncio.sleep(0)
                billable_ts = record.billable_ts
                if billable_ts is None:
                    continue
                if billable_ts > latest_plausible:
                    ahead.append(("implausible_value", record.session_id))
                    continue
                duration, wait = record.duration_minutes, record.wait_minutes
                if (
                    duration is None
                    and billable_ts >= window_from
                    and (max_age <= 0 or now - billable_ts <= max_age)
                ):
                    in_progress += 1  # a catch-up reply's older days are not "now"
                if billable_ts < eligible_from:
                    continue
                session_id = record.session_id
                seen = seen_before(session_id)
                if seen is None:
                    # Remembered inline, as `SeenRecords.add` does: a call a new session
                    # cost 6 ms of the 175 of a 50,000-session first poll (bench/ingest.py).
                    # Per-session flags pruned by BillableTs do not fit `SeenRecords`; the
                    # same bound applies.
                    if len(remembered) >= limit:
                        raise DedupeFull(
                            f"already remembering {len(remembered)} sessions (max_remembered_ids)"
                        )
                    known_duration, known_wait = duration is not None, wait is not None
                    remembered[session_id] = _Seen(
                        billable_ts, known_duration, known_wait, known_duration and known_wait
                    )
                    if not journal.whole:  # looked up each time: a save renews the journal
                        journal.dirty.add(session_id)
                        journal.deleted.discard(session_id)
                    fresh.append(record)
                elif not (
                    (duration is None or seen.duration_observed)
                    and (wait is None or seen.wait_observed)
                    and (duration is None or wait is None or seen.consult_observed)
                ):
                    # Labels are given in the order the records came: those waiting first.
                    self._count_new(fresh)
                    self._observe_late(record, seen)
                    journal.changed(session_id)
                # else seen before, nothing new: most records of every poll but the first
        finally:
            # Whatever was remembered is counted, even if the cycle ends here (a full
            # dedupe memory, the cycle's deadline): it is never offered again.
            self._count_new(fresh)
            self._reject_counts(
                len(ahead), len(ahead), "BillableTs more than a day after now", ("feed", ahead)
            )
        self.in_progress = in_progress

    def _observe_late(self, record: HistoryRecord, seen: _Seen) -> None:
        """What a session seen before has learnt since: its length, its wait."""
        duration, wait = record.duration_minutes, record.wait_minutes
        provider = (self._label(self._provider, record.provider),)
        if not seen.duration_observed and duration is not None:
            seen.duration_observed = True
            self.durations.observe(provider, duration * 60.0)
        if not seen.wait_observed and wait is not None:
            seen.wait_observed = True
            self.waits.observe(provider, wait * 60.0)
        if not seen.consult_observed and duration is not None and wait is not None:
            seen.consult_observed = True
            self.consults.observe(provider, max(0.0, duration - wait) * 60.0)

    def _count_new(self, fresh: list[HistoryRecord]) -> None:
        """Count sessions seen for the first time and observe what they already know,
        a batch at a time: the first poll of a busy account has tens of thousands.

        The same counts, reports and sums as one session at a time: labels are asked in
        the order each value first came, once for all the records with it (a cut or
        overflowing value reported for each), and each histogram series adds its values
        in the records' order."""
        if not fresh:
            return
        records = fresh.copy()
        fresh.clear()  # taken: an error below must not count them twice
        raws = list(map(_RAW_LABELS, records))
        provider_of: dict[tuple[str | None, ...], LabelValues] = {}
        for (status, schedule_type, provider), n in Counter(raws).items():
            labels = (
                self._label(self._status, status, n),
                self._label(self._schedule, schedule_type, n),
                self._label(self._provider, provider, n),
            )
            self.sessions.inc(labels, float(n))
            provider_of[status, schedule_type, provider] = labels[2:]
        by_provider: dict[LabelValues, list[HistoryRecord]] = {
            provider: [] for provider in provider_of.values()
        }
        for raw, record in zip(raws, records, strict=True):
            by_provider[provider_of[raw]].append(record)
        for provider, group in by_provider.items():
            self.durations.observe_many(
                provider,
                [r.duration_minutes * 60.0 for r in group if r.duration_minutes is not None],
            )
            self.waits.observe_many(
                provider, [r.wait_minutes * 60.0 for r in group if r.wait_minutes is not None]
            )
            # A comparison, not `max(0.0, ...)`: a builtin call a session was 5 ms of a
            # 50,000-session first poll. The same value, 0.0 for any consult not above 0.
            self.consults.observe_many(
                provider,
                [
                    consult * 60.0
                    if (consult := r.duration_minutes - r.wait_minutes) > 0.0
                    else 0.0
                    for r in group
                    if r.duration_minutes is not None and r.wait_minutes is not None
                ],
            )
        self._observe_start_delays(records)

    def _observe_start_delays(self, records: list[HistoryRecord]) -> None:
        """Once, when a session is first counted: BillableTs never changes once set."""
        delays: dict[str, list[float]] = {}
        implausible = 0
        for record in records:
            schedule_type, schedule_ts = record.schedule_type, record.schedule_ts
            if schedule_type not in APPOINTMENT_TYPES or schedule_ts is None:
                continue
            delay = record.billable_ts - schedule_ts  # type: ignore[operator] # counted: set
            if not plausible_seconds(abs(delay)):
                # Each date is plausible, but a session a week off its appointment is not.
                implausible += 1
                continue
            if delay < 0:
                self.early_starts.inc((schedule_type,))
            delays.setdefault(schedule_type, []).append(delay if delay > 0.0 else 0.0)
        if implausible:
            self.ctx.reject("implausible_value", implausible)
        for schedule_type, values in delays.items():
            self.start_delays.observe_many((schedule_type,), values)

    def _month_counts(self, counts: MonthCounts, month: str) -> dict[str, int]:
        result = dict.fromkeys(BILLABLE_STATUSES, 0)
        for raw, n in counts.counts.items():
            # Queried every month_interval: each odd status reported once a month.
            status = self._label(self._status, raw, record=("month", month, raw))
            result[status] = result.get(status, 0) + n
        return result

    @staticmethod
    def _label(
        bounded: BoundedLabel,
        value: str | None,
        count: int = 1,
        record: Hashable | None = None,
    ) -> str:
        """Null, absent or empty is `unknown`; the rest is capped, scrubbed and counted
        by the bounded label itself (label_truncated, label_overflow), once a record."""
        return bounded(value, count, record) if value else UNKNOWN

    def _zero_fill(self) -> None:
        # The wait histogram too: the service level's inputs. Made by its first session,
        # a series began at 1 and `increase()` lost that session from offered, answered
        # and the speed of answer, while the zero-filled consults counted it (probe 13).
        for provider in PROVIDERS:
            self.durations.touch((provider,))
            self.waits.touch((provider,))
            self.consults.touch((provider,))
        for schedule_type in APPOINTMENT_TYPES:
            self.start_delays.touch((schedule_type,))
            self.early_starts.values.setdefault((schedule_type,), 0.0)

    # -- durable state (--storage.path) ------------------------------------------------

    def _histograms(self) -> tuple[tuple[str, HistogramSet, str], ...]:
        """(state key, histogram, key of its buckets) of every histogram kept."""
        return (
            ("durations", self.durations, "duration_buckets"),
            ("waits", self.waits, "wait_buckets"),
            ("consults", self.consults, "duration_buckets"),
            ("start_delays", self.start_delays, "wait_buckets"),
        )

    def state(self) -> dict[str, Any]:
        return {**self._small_state(), "seen": [[sid, *_saved(s)] for sid, s in self._seen.items()]}

    def saved_state(self) -> SavedState:
        # The per-session flags are most of the state: only those that changed.
        return SavedState(
            self._small_state(), {"seen": self._seen_journal.take(self._seen, _saved)}
        )

    def state_unsaved(self) -> None:
        self._seen_journal.unsaved()

    def restored_from_store(self) -> None:
        # A version 1 state's flags were upgraded in `restore`: the store has the old.
        if self._restored_version == STATE_VERSION:
            self._seen_journal.in_store()

    def _small_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "counted_from": self._counted_from,
            # A catch-up still pending stays pending in the next process.
            "fed_until": self._catch_up_from or self._fed_until,
            "sessions": self.sessions.to_state(),
            "early_starts": self.early_starts.to_state(),
            **{key: histogram.to_state() for key, histogram, _ in self._histograms()},
            "duration_buckets": list(self.durations.bounds),
            "wait_buckets": list(self.waits.bounds),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Carry on counting from a saved state: sessions counted or observed before are
        not again, and the next feed reaches back to the last one applied.

        Everything is checked before anything is applied: a state that does not fit
        raises ValueError and leaves the fresh collector as it was."""
        version = state_version(state, (1, STATE_VERSION))
        counted_from = number(state.get("counted_from"), "counted_from")
        fed_until = state.get("fed_until")
        if fed_until is not None:
            fed_until = number(fed_until, "fed_until")
        now = self.ctx.clock.time()
        # Damaged or made by hand: the next feed would ask for every day since.
        if fed_until is not None and fed_until < 0:
            raise ValueError("state fed_until is before 1970")
        not_ahead(max(counted_from, fed_until or counted_from), now, "fed_until")
        width = 4 if version == 1 else 5
        seen: dict[int, _Seen] = {}
        for item in list_of(state, "seen"):
            if not (
                isinstance(item, list)
                and len(item) == width
                and is_int(item[0])
                and is_number(item[1])
                and all(isinstance(flag, bool) for flag in item[2:])
            ):
                raise ValueError(f"state seen entry is not [id, BillableTs, {width - 2} bools]")
            # Version 1 never observed a consult: one whose duration was observed then is
            # not observed now, lest an old session land in a new histogram.
            consult = item[4] if version != 1 else item[2]
            seen[item[0]] = _Seen(float(item[1]), item[2], item[3], consult)
        remembered_fits(len(seen), self.ctx.max_remembered_ids)
        # As a feed refuses them: remembered until then, they never left the memory.
        not_ahead(max((s.billable_ts for s in seen.values()), default=now), now, "BillableTs")
        most = self.ctx.max_series_per_account
        sessions = counter_state(state, "sessions", len(self.sessions.labelnames) - 1, most)
        early = (
            counter_state(state, "early_starts", len(self.early_starts.labelnames) - 1, most)
            if version != 1
            else None
        )
        histograms = []
        for key, histogram, bucket_key in self._histograms():
            if version == 1 and key not in ("durations", "waits"):
                continue
            histograms.append(
                (
                    key,
                    histogram,
                    saved_histogram(
                        state,
                        key,
                        len(histogram.labelnames) - 1,
                        histogram.bounds,
                        bucket_key,
                        most,
                    ),
                )
            )

        self._counted_from, self._catch_up_from, self._seen = counted_from, fed_until, seen
        self._start.restored()
        self._seen_journal.unsaved()  # the restored sessions are not journalled
        self._restored_version = version
        self._pruned_below = None
        self.sessions.load_state(sessions)
        if early is not None:
            self.early_starts.load_state(early)
        for labels in self.sessions.values:
            # Restored label values keep their place within the label cap.
            for bounded, value in zip(
                (self._status, self._schedule, self._provider), labels, strict=True
            ):
                bounded(value)
        for key, histogram, items in histograms:
            if items is not None:
                histogram.load_state(items)
            else:
                # The counter carries on; this histogram restarts (a counter reset to
                # Prometheus) rather than mixing counts from two sets of bounds.
                self.ctx.log.warning(
                    "securevideo_buckets_changed",
                    histogram=key,
                    hint="the histogram starts from zero",
                )
        self._zero_fill()

    @property
    def tracked_sessions(self) -> int:
        return len(self._seen)

    def families(self) -> Iterable[Metric]:
        prefix = self._prefix
        families: list[Metric] = [
            self.sessions.family(prefix),
            self.durations.family(prefix),
            self.waits.family(prefix),
            self.consults.family(prefix),
            self.start_delays.family(prefix),
            self.early_starts.family(prefix),
        ]
        if self.in_progress is not None:
            families.append(
                gauge(
                    "securevideo_sessions_in_progress",
                    "SecureVideo sessions in the feed window that are connected (History "
                    "BillableTs set) and whose DurationMinutes is still null; polled in the "
                    "background.",
                    ("account",),
                    {prefix: float(self.in_progress)},
                )
            )
        if self.month is not None:
            families.append(
                gauge(
                    "securevideo_sessions_month",
                    "SecureVideo sessions billable in the current UTC month, by current History "
                    "BillableStatusCd; polled in the background.",
                    ("account", "billable_status"),
                    {(*prefix, status): float(n) for status, n in self.month.items()},
                )
            )
        return families
