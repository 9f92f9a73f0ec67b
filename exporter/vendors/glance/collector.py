"""One Glance account's metric state, refreshed once per cycle from the Activity Service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client.core import Metric

from ...dedupe import SeenRecords
from ...errors import UpstreamError
from ...families import OTHER, BoundedLabel, CounterSet, HistogramSet, LabelValues, gauge
from ...http import Upstream
from ...statecheck import counter_state, histogram_state, is_int, is_number, list_of, number
from ..base import AccountCollector, CollectorContext
from .client import COMPLETED, COMPLETED_ENDING, GlanceClient
from .config import GlanceAccount
from .parser import Counts, Session

SESSION_TYPES = ("C", "G", "V")
STATUSES = ("A", "C", "D", "E", "J", "K", "L", "Q", "T", "U", "W", "X")
CURRENT_STATUSES = ("A", "W")
COUNTED_BY = ("start", "end")
# A session id is forgotten only once the feed's next window starts this long after we
# last saw it: more than any plausible clock skew between Glance and us.
SKEW_MARGIN = 3600.0
# PartnerUserSessions needs a start range: in-progress sessions started in the last day.
USER_LOOKBACK = 86400.0
USER_LOOKAHEAD = 3600.0
# Bump when the shape of `state()` changes: an older or newer state is then ignored.
STATE_VERSION = 1

POLLED = "polled from the Glance Activity Service in the background"


def day_range(now: float, zone: ZoneInfo) -> tuple[float, float]:
    """Local midnight today and tomorrow, as Unix times (23 or 25 hours apart on DST days)."""
    today = datetime.fromtimestamp(now, zone).date()
    start = datetime.combine(today, time(), zone)
    end = datetime.combine(today + timedelta(days=1), time(), zone)
    return start.timestamp(), end.timestamp()


class GlanceCollector(AccountCollector):
    def __init__(
        self,
        account: GlanceAccount,
        ctx: CollectorContext,
        *,
        client: GlanceClient | None = None,
    ) -> None:
        self.account = account
        self.ctx = ctx
        self.client = client or GlanceClient(
            account.common.base_url, account.partner_id, account.api_key
        )
        self._name = account.common.name
        self._zone = account.zone
        self._types = BoundedLabel(SESSION_TYPES, ctx.label_value_limit)
        self._statuses = BoundedLabel(STATUSES, ctx.label_value_limit)

        # The feed starts when we did (restart never recounts) unless asked to look back.
        # With --storage.path a restored state replaces both: the feed then resumes where
        # the previous process left it.
        self._began = ctx.started_at
        self._origin = ctx.started_at - account.lookback
        self.cursor = self._origin
        self._backfill_pending = account.lookback > 0
        # Ids are pruned against the next window's start, not the wall clock: while the
        # feed fails its window stays open and nothing is forgotten, so recovering from a
        # long outage cannot recount.
        self.seen = SeenRecords(SKEW_MARGIN)

        self._current: dict[LabelValues, float] | None = None
        self._guests: dict[LabelValues, float] = {}
        self._oldest_wait: dict[LabelValues, float] = {}
        self._today_count: dict[LabelValues, float] | None = None
        self._today_avg: dict[LabelValues, float] = {}
        self._user_counts: dict[str, dict[str, float]] = {}
        self._invalid_users: set[str] = set()

        self.completed = CounterSet(
            "glance_sessions_completed_total",
            "Completed Glance sessions by session type and final status (`type`, `status` of "
            "PartnerCompletedSessionsEnding), each session counted once; " + POLLED + ".",
            ("account", "session_type", "status"),
        )
        self.durations = HistogramSet(
            "glance_session_duration_seconds",
            "Duration of completed Glance sessions (`duration` of "
            "PartnerCompletedSessionsEnding), observed once per session; " + POLLED + ".",
            ("account", "session_type"),
            account.duration_buckets,
        )
        for session_type in SESSION_TYPES:
            self.completed.values.setdefault((self._name, session_type, "C"), 0.0)
            self.durations.touch((self._name, session_type))

    # -- one cycle -------------------------------------------------------------------

    async def collect(self, upstream: Upstream) -> None:
        now = self.ctx.clock.time()
        await _all(
            self._collect_active(upstream),
            self._collect_today(upstream, now),
            self._collect_users(upstream, now),
            self._collect_feed(upstream, now),
        )

    async def _collect_active(self, upstream: Upstream) -> None:
        reply = await self.client.active_sessions(upstream)
        self._rejected("unusable_record", reply.skipped)
        current: dict[LabelValues, float] = {
            (self._name, t, s): 0.0 for t in SESSION_TYPES for s in CURRENT_STATUSES
        }
        guests: dict[LabelValues, float] = {(self._name, t): 0.0 for t in SESSION_TYPES}
        oldest: dict[LabelValues, float] = {}
        for session in reply.records:
            session_type = self._label(self._types, session.type)
            status = self._label(self._statuses, session.status)
            key = (self._name, session_type, status)
            current[key] = current.get(key, 0.0) + 1
            per_type = (self._name, session_type)
            guests[per_type] = guests.get(per_type, 0.0) + session.nguests
            if session.status == "W" and session.start_time is not None:
                oldest[per_type] = min(oldest.get(per_type, session.start_time),
                                       session.start_time)
        self._current, self._guests, self._oldest_wait = current, guests, oldest

    async def _collect_today(self, upstream: Upstream, now: float) -> None:
        start, end = day_range(now, self._zone)
        replies: list[tuple[str, Counts]] = []
        for status in self.account.today_statuses:
            reply = await self.client.session_counts(upstream, status, start, end)
            replies.append(("start", reply))
        replies.append(("end", await self.client.session_counts_ending(upstream, start, end)))

        counts: dict[LabelValues, float] = {
            (self._name, t, "C", by): 0.0 for t in SESSION_TYPES for by in COUNTED_BY
        }
        weighted: dict[LabelValues, tuple[float, float]] = {}
        for counted_by, reply in replies:
            self._rejected("unusable_record", reply.skipped)
            for record in reply.records:
                key = (self._name, self._label(self._types, record.type),
                       self._label(self._statuses, record.status), counted_by)
                counts[key] = counts.get(key, 0.0) + record.count
                if record.average_duration is not None and record.count > 0:
                    total, n = weighted.get(key, (0.0, 0.0))
                    weighted[key] = (total + record.average_duration * record.count,
                                     n + record.count)
        # Applied only when every call of the day succeeded, so the set stays consistent.
        self._today_count = counts
        self._today_avg = {key: total / n for key, (total, n) in weighted.items()}

    async def _collect_users(self, upstream: Upstream, now: float) -> None:
        configured = set(self.account.users)
        for user in [u for u in self._user_counts if u not in configured]:
            del self._user_counts[user]
        await _all(*(self._collect_user(upstream, user, now) for user in self.account.users))

    async def _collect_user(self, upstream: Upstream, user: str, now: float) -> None:
        reply = await self.client.user_sessions(
            upstream, user, "A", now - USER_LOOKBACK, now + USER_LOOKAHEAD
        )
        if not reply.valid_user:
            self._user_counts.pop(user, None)
            if user not in self._invalid_users:
                self._invalid_users.add(user)
                self.ctx.log.warning("glance_user_not_valid", user=user,
                                     hint="check the partnerUserId in the config")
            return
        if user in self._invalid_users:
            self._invalid_users.discard(user)
            self.ctx.log.info("glance_user_valid_again", user=user)
        self._rejected("unusable_record", reply.skipped)
        counts = dict.fromkeys(SESSION_TYPES, 0.0)
        for session in reply.sessions:
            session_type = self._label(self._types, session.type)
            counts[session_type] = counts.get(session_type, 0.0) + 1
        self._user_counts[user] = counts

    async def _collect_feed(self, upstream: Upstream, now: float) -> None:
        error: UpstreamError | None = None
        start = max(self._origin, self.cursor - self.account.feed_overlap)
        try:
            await self._read_feed(upstream, COMPLETED_ENDING, start, now, now)
            self.cursor = max(self.cursor, now)
        except UpstreamError as exc:
            error = exc  # what was counted stays counted; the retry is deduplicated
        if self._backfill_pending:
            began = self._began
            try:
                await self._read_feed(upstream, COMPLETED, began - self.account.lookback, began,
                                      now)
                self._backfill_pending = False
            except UpstreamError as exc:
                error = error or exc
        if not self._backfill_pending:
            # Nothing ended before the next window's start can come back in it.
            self.seen.prune(max(self._origin, self.cursor - self.account.feed_overlap))
        if error is not None:
            raise error

    async def _read_feed(
        self, upstream: Upstream, operation: str, start: float, end: float, now: float
    ) -> None:
        async for page in self.client.completed(upstream, operation, start, end):
            self._rejected("unusable_record", page.skipped)
            for session in page.sessions:
                if self.seen.add(session.id, now):
                    self._count(session)

    def _count(self, session: Session) -> None:
        session_type = self._label(self._types, session.type)
        status = self._label(self._statuses, session.status)
        self.completed.inc((self._name, session_type, status))
        if session.duration is None:
            self._rejected("missing_duration", 1)
        else:
            self.durations.observe((self._name, session_type), session.duration)

    # -- durable state (--storage.path) ------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            # A renamed account keeps its state; a different group must not inherit it.
            "partner_id": self.account.partner_id,
            "began": self._began,
            "origin": self._origin,
            "cursor": self.cursor,
            "backfill_pending": self._backfill_pending,
            "seen": self.seen.to_state(),
            "completed": self.completed.to_state(),
            "durations": self.durations.to_state(),
            "duration_buckets": list(self.durations.bounds),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume the feed at the saved cursor with the saved dedupe keys and counts.

        Everything is checked before anything is applied: a state that does not fit
        raises ValueError and leaves the fresh collector as it was."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r}, expected {STATE_VERSION}")
        if state.get("partner_id") != self.account.partner_id:
            raise ValueError("state belongs to another partner_id")
        began, origin, cursor = (number(state.get(k), k) for k in ("began", "origin", "cursor"))
        if not origin <= cursor:
            raise ValueError("state cursor is before the feed origin")
        backfill = state.get("backfill_pending")
        if not isinstance(backfill, bool):
            raise ValueError("state backfill_pending is not a boolean")
        seen = list_of(state, "seen")
        for item in seen:
            if not (isinstance(item, list) and len(item) == 2 and is_int(item[0])
                    and is_number(item[1])):
                raise ValueError("state seen entry is not [session id, expiry]")
        completed = counter_state(state, "completed", len(self.completed.labelnames))
        same_buckets = state.get("duration_buckets") == list(self.durations.bounds)
        durations = histogram_state(state, "durations", len(self.durations.labelnames),
                                     len(self.durations.bounds) + 1 if same_buckets else None)

        self._began, self._origin, self.cursor = began, origin, cursor
        self._backfill_pending = backfill
        self.seen.load_state(seen)
        self.completed.load_state(completed)
        for labels in self.completed.values:
            self._types(labels[1])  # restored label values keep their place in the cap
            self._statuses(labels[2])
        if same_buckets:
            self.durations.load_state(durations)
        else:
            # The counter carries on; the histogram restarts, which Prometheus reads as a
            # counter reset, rather than mixing counts from two sets of bounds.
            self.ctx.log.warning("glance_duration_buckets_changed",
                                 hint="the duration histogram starts from zero")
        for session_type in SESSION_TYPES:
            self.completed.values.setdefault((self._name, session_type, "C"), 0.0)
            self.durations.touch((self._name, session_type))

    # -- helpers -----------------------------------------------------------------------

    def _label(self, bound: BoundedLabel, raw: str) -> str:
        value = bound(raw)
        if value == OTHER and raw != OTHER:
            self._rejected("label_overflow", 1)
        return value

    def _rejected(self, reason: str, count: int) -> None:
        if count:
            self.ctx.reject(reason, count)

    # -- exposition --------------------------------------------------------------------

    def families(self) -> Iterable[Metric]:
        yield gauge(
            "glance_sessions_current",
            "Glance sessions now Active (A) or Waiting (W), by session `type` and `status` "
            "of PartnerActiveSessions; " + POLLED + ".",
            ("account", "session_type", "status"),
            self._current or {},
        )
        yield gauge(
            "glance_session_guests_current",
            "Guests in current Glance sessions, the sum of `nguests` of PartnerActiveSessions "
            "by session `type`; " + POLLED + ".",
            ("account", "session_type"),
            self._guests if self._current is not None else {},
        )
        yield gauge(
            "glance_waiting_session_oldest_start_timestamp_seconds",
            "Start time (Unix seconds, `startTime` of PartnerActiveSessions) of the oldest "
            "Waiting (W) Glance session, absent when none waits; " + POLLED + ".",
            ("account", "session_type"),
            self._oldest_wait if self._current is not None else {},
        )
        yield gauge(
            "glance_sessions_today",
            "Glance sessions of the current local day, the `count` of PartnerSessionCounts "
            "(counted_by=start) and PartnerSessionCountsEnding (counted_by=end); "
            + POLLED + ".",
            ("account", "session_type", "status", "counted_by"),
            self._today_count or {},
        )
        yield gauge(
            "glance_session_average_duration_seconds",
            "Average duration of the current local day's Glance sessions, `averageDuration` "
            "of PartnerSessionCounts (counted_by=start) and PartnerSessionCountsEnding "
            "(counted_by=end); " + POLLED + ".",
            ("account", "session_type", "status", "counted_by"),
            self._today_avg if self._today_count is not None else {},
        )
        yield self.completed.family()
        yield self.durations.family()
        yield gauge(
            "glance_user_sessions_current",
            "In-progress Glance sessions of each configured user (`partnerUserId`), from "
            "PartnerUserSessions with status A over the last 24 hours, by session `type`; "
            + POLLED + ".",
            ("account", "user", "session_type"),
            {
                (self._name, user, session_type): value
                for user, counts in self._user_counts.items()
                for session_type, value in counts.items()
            },
        )


async def _all(*steps: Awaitable[None]) -> None:
    """Run independent steps to the end, then raise the first failure.

    One failing operation must not stop the others from refreshing their metrics.
    """
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    for failure in failures:
        if not isinstance(failure, UpstreamError):
            raise failure
    if failures:
        raise failures[0]








