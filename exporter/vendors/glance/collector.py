"""One Glance account's metric state, refreshed once per cycle from the Activity Service."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Hashable, Iterable
from contextlib import aclosing
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client.core import Metric

from ...dedupe import DedupeFull, SeenRecords
from ...errors import UpstreamError
from ...families import CounterSet, HistogramSet, LabelValues, gauge
from ...http import Upstream
from ...outcomes import ABANDONED, ANSWERED, OTHER, OUTCOMES, TIMED_OUT
from ...sanitize import plausible_start
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
from ...vendorclock import (
    AHEAD_TOLERANCE,
    StartOnVendorClock,
    believed_skew,
    vendor_latest,
    vendor_now,
)
from ..base import AccountCollector, CollectorContext
from .client import (
    COMPLETED,
    COMPLETED_ENDING,
    MAX_WINDOW,
    FeedPosition,
    GlanceClient,
    PageBudget,
    PagesSpent,
)
from .config import GlanceAccount
from .parser import Counts, Session

SESSION_TYPES = ("C", "G", "V")
STATUSES = ("A", "C", "D", "E", "J", "K", "L", "Q", "T", "U", "W", "X")
CURRENT_STATUSES = ("A", "W")
COUNTED_BY = ("start", "end")
# A session id is forgotten only once the feed's next read starts this long after the
# end of the shortest read that returned it (the session ended by then): more than any
# plausible clock skew between Glance and us. Not its startTime plus duration: a
# duration an hour short counted sessions twice after a catch-up.
SKEW_MARGIN = 3600.0
# Ids are kept this much past the margin (SeenRecords' slack). A backfill id seen again
# moves its expiry in steps of this much, so it is saved about once, not every cycle;
# a feed id's expiry never moves later (`add_shortest`).
SEEN_SLACK = 600.0
# A completed session whose start plus duration is further than this outside the range
# of the read that returned it is not in that range: skipped (`implausible_value`).
# Wide, as Glance's durations have been an hour short.
OUT_OF_RANGE = 86400.0
# PartnerUserSessions needs a start range: in-progress sessions started in the last day.
USER_LOOKBACK = 86400.0
USER_LOOKAHEAD = 3600.0
# `glance_feed_falling_behind` at most this often: it is true for every cycle of a feed
# that cannot keep up.
FALLING_BEHIND_LOGGED_EVERY = 3600.0
# Bump when the shape of `state()` changes: an older or newer state is then ignored.
# Version 1 (no outcome label, no wait histogram) is still read: its feed position and
# counts carry on, its duration histogram restarts.
# Version 2 (and 1) keyed every series with the account name; 3 keys without it, as the
# other vendors do, so a renamed account's restored series carry its new name.
STATE_VERSION = 3

# The one outcome vocabulary of every vendor (issue 14), and Glance's final statuses in
# it: C (completed) and X are sessions an agent answered; Q is a visitor who gave up
# waiting; T one that timed out. Glance has no transfers; the label is zero-filled anyway.
# Glance's final statuses onto the one outcome vocabulary; every other status is `other`.
OUTCOME_OF_STATUS = {"C": ANSWERED, "X": ANSWERED, "Q": ABANDONED, "T": TIMED_OUT}

POLLED = "polled from the Glance Activity Service in the background"


def utc_text(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")


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
        self.client = client or GlanceClient(account, ctx)
        self._name = account.common.name
        self._zone = account.zone
        self._types = ctx.label(SESSION_TYPES)
        self._statuses = ctx.label(STATUSES)

        # The feed starts when we did (restart never recounts) unless asked to look back.
        # With --storage.path a restored state replaces both: the feed then resumes where
        # the previous process left it.
        self._began = ctx.started_at
        # From the first whole second after: Glance's times are whole seconds, and a read
        # is widened to them, so a feed from the start's own second counted sessions that
        # had ended before it (probe 12: one ending at S, for a start at S + 0.02 s).
        self._origin: float = math.ceil(ctx.started_at - account.lookback)
        self.cursor: float = self._origin
        self._backfill_pending = account.lookback > 0
        # Ids are pruned against the next window's start, not the wall clock: while the
        # feed fails its window stays open and nothing is forgotten, so recovering from a
        # long outage cannot recount.
        self.seen = SeenRecords(SKEW_MARGIN, limit=ctx.max_remembered_ids, slack=SEEN_SLACK)
        self._once = ctx.rejected_once()
        # Reads of the feed (and of the backfill) that an earlier cycle did not finish:
        # the page budget ran out, a page failed or the cycle deadline passed. The next
        # cycle carries on from there instead of paging the same range again.
        self._feed_position: FeedPosition | None = None
        # How long the feed's reads may be: one 31-day window, or less once a read held
        # more sessions than can be remembered (`_halve`), until the feed is caught up.
        self._read_span = MAX_WINDOW - 1.0
        # How far behind now the feed's cursor was when the last cycle ran out of pages;
        # None once it caught up (`_catching_up`).
        self._behind: float | None = None
        # When `glance_feed_falling_behind` was last logged (monotonic): at most hourly.
        self._warned_behind: float | None = None
        self._backfill_position: FeedPosition | None = None
        # No read starts before this: ids of sessions that ended earlier may be forgotten
        # (`_forgot_until`).
        self._forgotten_below = float("-inf")
        # The feed's start is on our clock until the vendor's Date headers say where it
        # was on theirs (or it is restored).
        self._start = StartOnVendorClock(ctx.clock.time(), ctx.clock.monotonic())

        self._current: dict[LabelValues, float] | None = None
        self._guests: dict[LabelValues, float] = {}
        self._oldest_wait: dict[LabelValues, float] = {}
        self._today_count: dict[LabelValues, float] | None = None
        self._today_avg: dict[LabelValues, float] = {}
        self._today: tuple[float, float] | None = None  # the local day they are of
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
            "PartnerCompletedSessionsEnding), observed once per session, by outcome of the "
            "final `status` (C, X answered; Q abandoned; T timed_out; others other); "
            + POLLED
            + ".",
            ("account", "session_type", "outcome"),
            account.duration_buckets,
        )
        self.waits = HistogramSet(
            "glance_session_wait_seconds",
            "Wait of completed Glance sessions, observed once per session: for C and X "
            "(answered) the first agent guest's `startTime` minus the first visitor guest's; "
            "for Q (abandoned) and T (timed_out) the session `duration`; from "
            "PartnerCompletedSessionsEnding; " + POLLED + ".",
            ("account", "session_type", "outcome"),
            account.wait_buckets,
        )
        self._zero_fill()

    # -- one cycle -------------------------------------------------------------------

    async def collect(self, upstream: Upstream) -> None:
        now = self.ctx.clock.time()
        dated = upstream.dated_replies
        try:
            await _all(
                self._collect_active(upstream, now),
                self._collect_today(upstream, now),
                self._collect_users(upstream, now),
                self._collect_feed(upstream, now),
            )
        finally:
            # A skew measured in an earlier cycle says nothing of a clock stepped since.
            fresh = upstream.dated_replies != dated
            self._keep_to_vendor_clock(upstream.clock_skew if fresh else None)

    async def _collect_active(self, upstream: Upstream, now: float) -> None:
        reply = await self.client.active_sessions(upstream)
        self._rejected_records(
            reply.skipped, reply.implausible, reply.invalid_values, ("active", reply.rejected_ids)
        )
        current: dict[LabelValues, float] = {
            (t, s): 0.0 for t in SESSION_TYPES for s in CURRENT_STATUSES
        }
        guests: dict[LabelValues, float] = {(t,): 0.0 for t in SESSION_TYPES}
        oldest: dict[LabelValues, float] = {}
        seen: set[int] = set()
        twice: list[tuple[str, int]] = []
        implausible: list[tuple[str, int]] = []
        for session in reply.records:
            if session.id in seen:
                twice.append(("active", session.id))  # listed twice: counted once
                continue
            seen.add(session.id)
            # Listed at every poll while it lasts: its labels reported once (`record`).
            record = ("active", session.id)
            session_type = self._types(session.type, record=record)
            status = self._statuses(session.status, record=record)
            key = (session_type, status)
            current[key] = current.get(key, 0.0) + 1
            per_type = (session_type,)
            guests[per_type] = guests.get(per_type, 0.0) + session.nguests
            start = session.start_time
            if session.status == "W" and start is not None:
                if not plausible_start(start, now):
                    # A wait of years, or one yet to begin, would page someone for
                    # nothing: the session counts, its start does not.
                    implausible.append(("active", session.id))
                    continue
                oldest[per_type] = min(oldest.get(per_type, start), start)
        self._once.reject("invalid_record", twice, now)
        self._once.reject("implausible_value", implausible, now)
        self._current, self._guests, self._oldest_wait = current, guests, oldest

    async def _collect_today(self, upstream: Upstream, now: float) -> None:
        start, end = day_range(now, self._zone)
        if (start, end) != self._today:
            # Yesterday's totals must not pose as today's while today's calls fail.
            self._today_count, self._today_avg, self._today = None, {}, (start, end)
        replies: list[tuple[str, Counts]] = []
        for status in self.account.today_statuses:
            reply = await self.client.session_counts(upstream, status, start, end)
            replies.append(("start", reply))
        replies.append(("end", await self.client.session_counts_ending(upstream, start, end)))

        counts: dict[LabelValues, float] = {
            (t, "C", by): 0.0 for t in SESSION_TYPES for by in COUNTED_BY
        }
        weighted: dict[LabelValues, tuple[float, float]] = {}
        fed: set[LabelValues] = set()  # the keys a row of this cycle gave
        refused: list[LabelValues] = []  # the keys of rows skipped
        for counted_by, reply in replies:
            # A bad row of today's counts is one record until the day changes.
            kind = f"counts {counted_by} {start}"
            self._rejected_records(reply.skipped, reply.implausible, 0, (kind, reply.rejected_ids))
            for _, (row_type, row_status) in reply.rejected_ids:
                row = (kind, row_type, row_status)
                refused.append(
                    (
                        self._types(row_type, record=row),
                        self._statuses(row_status, record=row),
                        counted_by,
                    )
                )
            for record in reply.records:
                row = (kind, record.type, record.status)  # a row of the day, once a day
                key = (
                    self._types(record.type, record=row),
                    self._statuses(record.status, record=row),
                    counted_by,
                )
                fed.add(key)
                counts[key] = counts.get(key, 0.0) + record.count
                if record.average_duration is not None and record.count > 0:
                    total, n = weighted.get(key, (0.0, 0.0))
                    weighted[key] = (
                        total + record.average_duration * record.count,
                        n + record.count,
                    )
        averages = {key: total / n for key, (total, n) in weighted.items()}
        # A skipped row keeps its last value of the day (the last good data), where no
        # row of this cycle gave its key: zero-filled, a count of 10^18 showed as 0.
        last_counts, last_averages = self._today_count or {}, self._today_avg
        for kept in refused:
            if kept not in fed and kept in last_counts:
                counts[kept] = last_counts[kept]
                if kept in last_averages:
                    averages[kept] = last_averages[kept]
        # Applied only when every call of the day succeeded, so the set stays consistent.
        self._today_count = counts
        self._today_avg = averages

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
                self.ctx.log.warning(
                    "glance_user_not_valid", user=user, hint="check the partnerUserId in the config"
                )
            return
        if user in self._invalid_users:
            self._invalid_users.discard(user)
            self.ctx.log.info("glance_user_valid_again", user=user)
        self._rejected_records(
            reply.skipped, reply.implausible, reply.invalid_values, ("user", reply.rejected_ids)
        )
        counts = dict.fromkeys(SESSION_TYPES, 0.0)
        seen: set[int] = set()
        twice: list[tuple[str, str, int]] = []
        for session in reply.sessions:
            if session.id in seen:
                twice.append(("user", user, session.id))  # listed twice: counted once
                continue
            seen.add(session.id)
            session_type = self._types(session.type, record=("user", user, session.id))
            counts[session_type] = counts.get(session_type, 0.0) + 1
        self._once.reject("invalid_record", twice, now)
        self._user_counts[user] = counts

    async def _collect_feed(self, upstream: Upstream, now: float) -> None:
        error: UpstreamError | None = None
        budget = PageBudget(self.ctx.max_pages_per_cycle)
        # The skew measured in an earlier cycle, until a reply of this one tells it anew.
        dated = upstream.dated_replies
        now = vendor_now(now, upstream.clock_skew)
        try:
            while True:
                position = self._feed_position
                if position is None:
                    start = self._next_read_start()
                    # One window a read, so that each moves the cursor and lets the ids
                    # of the reads before it go.
                    end = min(now, start + self._read_span)
                    if end < start:
                        # The vendor's now is before the next read starts (our clock
                        # stepped back since the skew was measured): nothing to read yet.
                        break
                    position = self._feed_position = FeedPosition(start, end)
                try:
                    await self._read_feed(upstream, COMPLETED_ENDING, position, budget, now)
                except DedupeFull as exc:
                    if self._backfill_pending:
                        # Nothing is forgotten while the backfill may return it: give
                        # the backfill up, forget what has passed, read the page again.
                        self._give_up_backfill()
                        continue
                    if not self._halve(position):
                        raise self._remembered_too_many(upstream, COMPLETED_ENDING, exc) from None
                    continue  # what was counted stays remembered: the shorter read skips it
                self._feed_position = None
                # A finished read moves the cursor to its end, but never past the vendor's
                # now as this cycle's replies date it: what ends after it has not been
                # recorded yet. One an earlier cycle left unfinished, or a read of a long
                # catch-up, ends before now: the rest is read next. (`now` itself stays
                # as the cycle began: refreshed, time spent reading made the feed read
                # the same range again, four times in a cycle of the accounts bench.)
                reached = position.end
                if upstream.dated_replies != dated:
                    reached = min(reached, vendor_now(self.ctx.clock.time(), upstream.clock_skew))
                self.cursor = max(self.cursor, reached)
                self._forget_passed()
                if position.end >= now:
                    self._read_span, self._behind = MAX_WINDOW - 1.0, None
                    break
        except PagesSpent:
            self._catching_up(now)
        except UpstreamError as exc:
            error = exc  # what was counted stays counted; the retry is deduplicated
        if self._backfill_pending and budget.left > 0:
            backfill_error = await self._collect_backfill(upstream, budget, now)
            error = error or backfill_error
        self._forget_passed()
        if error is not None:
            raise error

    async def _collect_backfill(
        self, upstream: Upstream, budget: PageBudget, now: float
    ) -> UpstreamError | None:
        # Its ids are kept past the latest Glance may have recorded: with our clock behind
        # Glance's, the feed reached a long session's end only after its id was forgotten,
        # and counted it a second time.
        now = max(now, vendor_latest(self.ctx.clock.time(), upstream.clock_skew))
        began = self._began
        position = self._backfill_position
        if position is None:
            position = FeedPosition(began - self.account.lookback, began)
            self._backfill_position = position
        try:
            await self._read_feed(upstream, COMPLETED, position, budget, now)
            self._backfill_pending, self._backfill_position = False, None
        except DedupeFull:
            self._give_up_backfill()
        except PagesSpent:
            pass  # the backfill carries on next cycle
        except UpstreamError as exc:
            return exc
        return None

    def _give_up_backfill(self) -> None:
        """Stop the `lookback` backfill for good: it, or the feed's catch-up beside it,
        holds more sessions than can be remembered. While it was pending nothing could be
        forgotten, so the feed and the backfill both stopped at the bound, every cycle.
        The Ending feed starts `lookback` early and counts every session that ended
        since; what is given up is only what PartnerCompletedSessions lists and the
        Ending feed does not."""
        self._backfill_pending, self._backfill_position = False, None
        self.ctx.log.warning(
            "glance_backfill_given_up",
            hint="the lookback (or the feed's catch-up beside it) holds more sessions than "
            "max_remembered_ids; the feed from PartnerCompletedSessionsEnding still counts "
            "those that ended in it",
        )
        self._forget_passed()

    def _catching_up(self, now: float) -> None:
        """The page budget ran out with the feed behind: the cycle still succeeds (all it
        read was good), and the next carries on. Failing it backed the account off
        (60 s, 120 s, 240 s...) and, once stale_after passed, took every one of its
        series out of /metrics during the catch-up, the current gauges too. A feed
        further behind than at the last such cycle never catches up: a warning, at most
        hourly (it came every cycle, a minute apart, for as long as it lasted)."""
        behind, before = now - self.cursor, self._behind
        self._behind = behind
        monotonic, warned = self.ctx.clock.monotonic(), self._warned_behind
        if (
            before is not None
            and behind > before
            and (warned is None or monotonic - warned >= FALLING_BEHIND_LOGGED_EVERY)
        ):
            self._warned_behind = monotonic
            self.ctx.log.warning(
                "glance_feed_falling_behind",
                behind_hours=round(behind / 3600, 2),
                hint="more sessions end than max_pages_per_cycle pages hold: raise it. If "
                "one window pages on without end (Glance always naming a new nextId), "
                "raising it does not help: a vendor_error 'pagination did not end' follows",
            )
            return
        self.ctx.log.info(
            "glance_feed_catching_up",
            behind_hours=round(behind / 3600, 2),
            hint="the feed reads max_pages_per_cycle pages a cycle and carries on in the next",
        )

    def _next_read_start(self) -> float:
        """An overlap before the cursor, and never where a forgotten id could come again."""
        return max(self._origin, self.cursor - self.account.feed_overlap, self._forgotten_below)

    def _forget_passed(self) -> None:
        """Forget the ids of sessions that ended before the next read's start: it cannot
        return them. Not while a backfill is pending: it may return any of them."""
        if not self._backfill_pending:
            latest = self.seen.prune(max(self._origin, self.cursor - self.account.feed_overlap))
            if latest is not None:
                self._forgot_until(latest)

    def _forgot_until(self, expiry: float) -> None:
        """Ids kept until `expiry` or earlier are gone: a session a read returned ended
        by that read's end, and its id was kept `SKEW_MARGIN` (and slack) past it (past
        our now, for the backfill's). So no read may start at or before that end again,
        even with the cursor moved back."""
        forgotten = expiry - SKEW_MARGIN - SEEN_SLACK + 1.0
        self._forgotten_below = max(self._forgotten_below, forgotten)

    def _keep_to_vendor_clock(self, skew: float | None) -> None:
        """Keep the feed to Glance's clock: `skew` as this cycle's replies measured it, or
        None when none had a Date (our clock is all there is).

        Once two dated cycles of a fresh start agree that our clock was ahead of
        Glance's when this collector was made: the start, the origin and the cursor by
        that skew, so that what ended since we started on Glance's clock, and the
        lookback before it, is read (again: what was counted is remembered). Until they
        agree, nothing is moved. Later, a cursor ahead of Glance's
        clock (a restored one, Glance's clock stepped back, ours more than a day ahead
        for a while) comes back to Glance's now, never before the origin, with a
        warning; `_next_read_start` keeps the next read clear of forgotten ids."""
        wall, monotonic = self.ctx.clock.time(), self.ctx.clock.monotonic()
        if not self._start.settled and skew is not None:
            shift = self._start.observe(wall, monotonic, skew)
            if shift is None:
                return  # one cycle's word is not enough to move the start
            if shift < -AHEAD_TOLERANCE:
                self._began += shift
                self._origin += shift
                self.cursor = self._origin
                self._feed_position = self._backfill_position = None
                self._backfill_pending = self.account.lookback > 0  # its range moved too
                self.ctx.log.info(
                    "glance_feed_started_on_vendor_clock",
                    behind_seconds=round(-shift),
                    hint="this host's clock was ahead of Glance's (its Date header)",
                )
                return
        # Glance's now by its Date, either way within a day. With its clock stepped back
        # the cursor, set by its earlier now, is ahead of it; against our clock it never
        # was, and what ended in a step longer than feed_overlap was lost unseen
        # (probe 13).
        ahead = self.cursor - (vendor_latest(wall, skew) + believed_skew(skew))
        back_to = max(self._origin, vendor_now(wall, skew))
        if ahead <= AHEAD_TOLERANCE or back_to >= self.cursor:
            return
        self.cursor = back_to
        self._feed_position = None
        self.ctx.log.warning(
            "glance_feed_ahead_of_vendor",
            ahead_seconds=round(ahead),
            next_read_from=utc_text(self._next_read_start()),
            hint="the feed's cursor was ahead of Glance's clock (its Date header, or ours "
            "without one or when it is not believed): it reads on from there, and no "
            "earlier, since the sessions that ended before may have been counted and "
            "forgotten",
        )

    def _shortest_read(self) -> float:
        """The ids of a read are forgotten once the next one ends `SKEW_MARGIN` (and
        slack) past it; a read shorter than this, with its overlap, never gets there."""
        return 2 * self.account.feed_overlap + SKEW_MARGIN + SEEN_SLACK

    def _halve(self, position: FeedPosition) -> bool:
        """Read the first half of `position` instead, from its first page (the feed's
        ids come in no order of end time), and read no more than that at a time until
        the feed is caught up; False when it is as short as a read can usefully be.

        The sessions counted so far stay remembered: those the shorter read returns
        again are skipped, and kept only as long as it asks (`add_shortest`), so that
        the reads after it can forget them."""
        span = position.end - position.start
        if span <= self._shortest_read():
            return False
        self._read_span = max(span / 2, self._shortest_read())
        position.end = position.start + self._read_span
        position.next_id, position.pages, position.sent = 0, 0, set()
        self.ctx.log.info(
            "glance_feed_read_halved",
            hint="more sessions ended in the feed's read than max_remembered_ids",
            hours=round(self._read_span / 3600, 1),
        )
        return True

    def _remembered_too_many(
        self, upstream: Upstream, operation: str, exc: DedupeFull
    ) -> UpstreamError:
        # Sessions not remembered cannot be counted without risking a second count later:
        # the feed stops here, and this page is read again next cycle.
        return upstream.error(
            operation,
            "limit_exceeded",
            f"{exc}; the feed resumes here once max_remembered_ids is above twice the "
            f"sessions ending in {self._shortest_read() / 3600:.1f} hours",
        )

    def _room(self, operation: str, position: FeedPosition) -> int | None:
        """How many ids a read of the feed may fill the memory to. Half of it while the
        read can still be halved: a read's ids are forgotten only once the next read
        ends, so a finished one that filled the memory left the next no room at any
        length (a quiet month, then a busy day). The whole of it for the shortest read
        and for the backfill."""
        if operation != COMPLETED_ENDING or position.end - position.start <= self._shortest_read():
            return None
        return self.ctx.max_remembered_ids // 2

    async def _read_feed(
        self,
        upstream: Upstream,
        operation: str,
        position: FeedPosition,
        budget: PageBudget,
        now: float,
    ) -> None:
        """Count the sessions of `position` not counted before; raises `DedupeFull` at
        the first page whose new ids cannot be remembered, counting none of it.

        The feed by end time returns a session only in reads whose range holds its end,
        so its id is kept past the end of the shortest read that returned it
        (`add_shortest`). The backfill, by start time, says nothing of when its sessions
        ended: kept past now, never for less."""
        pages = self.client.completed(
            upstream, operation, position.start, position.end, position=position, budget=budget
        )
        async with aclosing(pages):
            async for page in pages:
                # Whole pages or none: a page is one range of ids (nextId), and Glance's
                # ids appear to grow as sessions begin, so what a full memory stops at
                # is the read's earliest sessions, which a shorter read holds (`_halve`).
                self.seen.make_room((s.id for s in page.sessions), self._room(operation, position))
                self._rejected_records(
                    page.skipped,
                    page.implausible,
                    page.invalid_values,
                    ("completed", page.rejected_ids),
                )
                # Session types whose zero-filled series this page has made exist: ten
                # series a type, touched once per page rather than once per session.
                touched: set[str] = set()
                if operation == COMPLETED_ENDING:
                    end = position.end
                    # Read as Glance dates it, a session ends by its start plus duration:
                    # one that ended a day outside the range asked for was returned by
                    # mistake, and remembered only as long as this read asks, it was
                    # counted again every 70 minutes when every read returned it.
                    earliest, latest = position.start - OUT_OF_RANGE, end + OUT_OF_RANGE
                    outside: list[tuple[str, int]] = []
                    for session in page.sessions:
                        start, duration = session.start_time, session.duration
                        if start is None or duration is None:
                            # Undated: taken as ending in the read. Kept longer (up to
                            # the week a session may last), a catch-up of sessions
                            # without durations filled max_remembered_ids for good.
                            new = self.seen.add_shortest(session.id, end)
                        else:
                            ended = start + duration
                            if not earliest <= ended <= latest:
                                outside.append(("completed", session.id))
                                continue
                            if position.start <= ended <= end:
                                new = self.seen.add_shortest(session.id, end)
                            else:
                                # A read that does not hold its end returned it: later
                                # reads may too (a cached reply did, each read) until
                                # they are a day past that end, where it is refused
                                # above. Kept until then, however it came first, or it
                                # was counted again each time it was forgotten (probe 13).
                                new = self.seen.add(session.id, max(end, ended + OUT_OF_RANGE))
                        if new:
                            self._count(session, touched)
                    if outside:
                        self._once.reject("implausible_value", outside, self.ctx.clock.time())
                else:
                    for session in page.sessions:
                        if self.seen.add(session.id, now):
                            self._count(session, touched)

    def _count(self, session: Session, touched: set[str]) -> None:
        session_type = self._types(session.type)
        status = self._statuses(session.status)
        outcome = outcome_of(session.status)
        if session_type not in touched:
            self._touch_type(session_type)
            touched.add(session_type)
        self.completed.inc((session_type, status))
        if session.duration is None:
            self._rejected("missing_duration", 1)
        else:
            self.durations.observe((session_type, outcome), session.duration)
        wait = wait_of(session)
        if wait is not None:
            self.waits.observe((session_type, outcome), wait)

    def _zero_fill(self) -> None:
        for session_type in SESSION_TYPES:
            self.completed.values.setdefault((session_type, "C"), 0.0)
            self._touch_type(session_type)

    def _touch_type(self, session_type: str) -> None:
        """Every outcome exists for every session type, so rates and ratios never miss a
        series that has not happened yet."""
        for outcome in OUTCOMES:
            self.durations.touch((session_type, outcome))
            self.waits.touch((session_type, outcome))

    # -- durable state (--storage.path) ------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {**self._small_state(), "seen": self.seen.to_state()}

    def saved_state(self) -> SavedState:
        # Dedupe ids are most of the state: only those added, refreshed or forgotten.
        return SavedState(self._small_state(), {"seen": self.seen.changes()})

    def state_unsaved(self) -> None:
        self.seen.unsaved()

    def restored_from_store(self) -> None:
        self.seen.journal.in_store()  # `restore` loads the saved ids as they are

    def _small_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            # A renamed account keeps its state; a different group must not inherit it.
            "partner_id": self.account.partner_id,
            "began": self._began,
            "origin": self._origin,
            "cursor": self.cursor,
            "backfill_pending": self._backfill_pending,
            "completed": self.completed.to_state(),
            "durations": self.durations.to_state(),
            "duration_buckets": list(self.durations.bounds),
            "waits": self.waits.to_state(),
            "wait_buckets": list(self.waits.bounds),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume the feed at the saved cursor with the saved dedupe keys and counts.

        Everything is checked before anything is applied: a state that does not fit
        raises ValueError and leaves the fresh collector as it was."""
        version = state_version(state, (1, 2, STATE_VERSION))
        # Up to version 2 every saved series began with the account name: dropped here.
        keyed = version < STATE_VERSION
        if state.get("partner_id") != self.account.partner_id:
            raise ValueError("state partner_id does not match the account")
        began, origin, cursor = (number(state.get(k), k) for k in ("began", "origin", "cursor"))
        # A cursor of -1e11 (the year -1199) crashed every cycle when written as a date,
        # and one earlier still made millions of windows.
        if min(began, origin, cursor) < 0:
            raise ValueError("state began, origin or cursor is before 1970")
        if not origin <= cursor:
            raise ValueError("state cursor is before the feed origin")
        # A cursor ahead of now made every cycle fail for good (a window that ends
        # before it begins), and a save comes only after a success.
        now = self.ctx.clock.time()
        not_ahead(max(began, cursor), now, "cursor")
        backfill = state.get("backfill_pending")
        if not isinstance(backfill, bool):
            raise ValueError("state backfill_pending is not a boolean")
        seen = list_of(state, "seen")
        for item in seen:
            if not (
                isinstance(item, list) and len(item) == 2 and is_int(item[0]) and is_number(item[1])
            ):
                raise ValueError("state seen entry is not [session id, expiry]")
        remembered_fits(len(seen), self.ctx.max_remembered_ids)
        not_ahead(
            max((e for _, e in seen), default=now),
            now,
            "seen expiry",
            self.seen.retention + self.seen.slack,
        )
        completed = _unkeyed(
            counter_state(
                state,
                "completed",
                len(self.completed.labelnames) - (not keyed),
                self.ctx.max_series_per_account,
            ),
            keyed,
        )
        histograms: list[tuple[HistogramSet, list[Any]]] = []
        warnings: list[str] = []
        if version >= 2:
            for key, histogram in (("durations", self.durations), ("waits", self.waits)):
                entries = saved_histogram(
                    state,
                    key,
                    len(histogram.labelnames) - (not keyed),
                    histogram.bounds,
                    f"{key[:-1]}_buckets",
                    self.ctx.max_series_per_account,
                )
                if entries is None:
                    # The counter carries on; the histogram restarts.
                    warnings.append(f"glance_{key[:-1]}_buckets_changed")
                    continue
                histograms.append((histogram, _unkeyed(entries, keyed)))
        else:
            # Version 1 had no outcome label: its duration histogram cannot be split.
            warnings.append("glance_state_upgraded")

        self._began, self._origin, self.cursor = began, origin, cursor
        self._backfill_pending = backfill
        # The process that saved this state may have forgotten ids up to its horizon.
        self._start.restored()
        self._forgotten_below = float("-inf")
        self._forgot_until(max(origin, cursor - self.account.feed_overlap))
        self.seen.load_state(seen)
        self.completed.load_state(completed)
        for labels in self.completed.values:
            self._types(labels[0])  # restored label values keep their place in the cap
            self._statuses(labels[1])
        for histogram, items in histograms:
            histogram.load_state(items)
        for histogram in (self.durations, self.waits):
            for series_labels, _, _ in histogram.to_state():
                self._touch_type(series_labels[0])
        for event in warnings:
            self.ctx.log.warning(event, hint="the histogram starts from zero")
        self._zero_fill()

    # -- helpers -----------------------------------------------------------------------

    def _rejected_records(
        self,
        skipped: int,
        implausible: int,
        invalid_values: int = 0,
        ids: tuple[str, tuple[tuple[str, Hashable], ...]] = ("", ()),
    ) -> None:
        """Count one reply's rejections; those of `ids` (what the reply was, and the
        parser's `rejected_ids`) once however many replies of that kind hold them."""
        totals = {
            "invalid_record": skipped - implausible,
            "implausible_value": implausible,
            "invalid_value": invalid_values,
        }
        self._once.reply(ids[0], totals, ids[1], self.ctx.clock.time())

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
            self._keyed(self._current or {}),
        )
        yield gauge(
            "glance_session_guests_current",
            "Guests in current Glance sessions, the sum of `nguests` of PartnerActiveSessions "
            "by session `type`; " + POLLED + ".",
            ("account", "session_type"),
            self._keyed(self._guests if self._current is not None else {}),
        )
        yield gauge(
            "glance_waiting_session_oldest_start_timestamp_seconds",
            "Start time (Unix seconds, `startTime` of PartnerActiveSessions) of the oldest "
            "Waiting (W) Glance session, absent when none waits; " + POLLED + ".",
            ("account", "session_type"),
            self._keyed(self._oldest_wait if self._current is not None else {}),
        )
        yield gauge(
            "glance_sessions_today",
            "Glance sessions of the current local day, the `count` of PartnerSessionCounts "
            "(counted_by=start) and PartnerSessionCountsEnding (counted_by=end); " + POLLED + ".",
            ("account", "session_type", "status", "counted_by"),
            self._keyed(self._today_count or {}),
        )
        yield gauge(
            "glance_session_average_duration_seconds",
            "Average duration of the current local day's Glance sessions, `averageDuration` "
            "of PartnerSessionCounts (counted_by=start) and PartnerSessionCountsEnding "
            "(counted_by=end); " + POLLED + ".",
            ("account", "session_type", "status", "counted_by"),
            self._keyed(self._today_avg if self._today_count is not None else {}),
        )
        yield gauge(
            "glance_completed_feed_timestamp_seconds",
            "End (Unix seconds) of the PartnerCompletedSessionsEnding range read whole so "
            "far: sessions that ended before it are in glance_sessions_completed_total. "
            "Behind now by about the interval, and by more during a catch-up; " + POLLED + ".",
            ("account",),
            {(self._name,): self.cursor},
        )
        prefix = (self._name,)
        yield self.completed.family(prefix)
        yield self.durations.family(prefix)
        yield self.waits.family(prefix)
        yield gauge(
            "glance_user_sessions_current",
            "In-progress Glance sessions of each configured user (`partnerUserId`), from "
            "PartnerUserSessions with status A over the last 24 hours, by session `type`; "
            + POLLED
            + ".",
            ("account", "user", "session_type"),
            {
                (self._name, user, session_type): value
                for user, counts in self._user_counts.items()
                for session_type, value in counts.items()
            },
        )

    def _keyed(self, values: dict[LabelValues, float]) -> dict[LabelValues, float]:
        """The account label goes first, at render, as in every vendor."""
        return {(self._name, *labels): value for labels, value in values.items()}


def _unkeyed(entries: list[Any], keyed: bool) -> list[Any]:
    """Saved series without the account name that states up to version 2 began with."""
    return [[entry[0][1:], *entry[1:]] for entry in entries] if keyed else entries


def outcome_of(status: str) -> str:
    return OUTCOME_OF_STATUS.get(status, OTHER)


def wait_of(session: Session) -> float | None:
    """How long the visitor waited for an agent, or None when the record cannot say.

    Answered (C, X) and other statuses: the first agent guest's start minus the first
    visitor guest's (0 when the agent was there first); without both there is no wait,
    and nothing is guessed. Abandoned (Q) and timed out (T): the whole session was the
    wait, its `duration`."""
    if session.status in ("Q", "T"):
        return session.duration
    if session.agent_start is None or session.visitor_start is None:
        return None
    return max(0.0, session.agent_start - session.visitor_start)


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
