"""Requests to the Glance Activity Service, over the core's `Upstream`.

Every call is an HTTPS POST of a form to ``{base_url}/services/activityservice.asmx/{Op}``
with ``partnerId`` and ``apiKey`` in the body, so credentials never reach a URL that a
proxy or a log might keep.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from ... import scrub
from ...config import Secret
from ...http import ERROR_EXCERPT, Upstream
from ..base import CollectorContext
from .config import GlanceAccount
from .parser import (
    ActiveSessions,
    Counts,
    GroupSessions,
    UserSessions,
    parse_active_sessions,
    parse_group_sessions,
    parse_session_counts,
    parse_user_sessions,
)

T = TypeVar("T", bound="_Reply")


class _Reply(Protocol):
    @property
    def over_limit(self) -> int | None: ...


ACTIVE = "PartnerActiveSessions"
COUNTS = "PartnerSessionCounts"
COUNTS_ENDING = "PartnerSessionCountsEnding"
COMPLETED = "PartnerCompletedSessions"
COMPLETED_ENDING = "PartnerCompletedSessionsEnding"
USER_SESSIONS = "PartnerUserSessions"
OPERATIONS = (ACTIVE, COUNTS, COUNTS_ENDING, COMPLETED, COMPLETED_ENDING, USER_SESSIONS)

MAX_WINDOW = 31 * 86400  # "The maximum range is 31 days."
PAGE_SIZE = 1000  # nResults "must be between 1 and 1000"
MAX_PAGES = 1000  # per window: a feed that never ends is a vendor bug, not a reason to spin
# An ASMX service reports a bad apiKey as HTTP 500 with a text message; these words tell
# it apart from a crash. "partnerUserId" must not match: that is a per-user problem.
_AUTH_HINT = re.compile(
    r"api\s*key|authenticat|unauthori[sz]ed|credential|invalid\s+partner|partner\s*id", re.I
)


def utc(timestamp: float) -> str:
    """Explicit UTC: Glance reads a date without a zone as US East time."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def windows(start: float, end: float, span: int = MAX_WINDOW) -> list[tuple[int, int]]:
    """[start, end] widened to whole seconds and cut into pieces of at most `span`."""
    lo, hi = math.floor(start), max(math.ceil(end), math.floor(start))
    pieces = []
    while True:
        top = min(lo + span, hi)
        pieces.append((lo, top))
        if top >= hi:
            return pieces
        lo = top


@dataclass
class FeedPosition:
    """How far one read of a completed-sessions feed over [start, end] has got: the
    31-day window beginning at `start` is being paged and `next_id` is the nextId to send
    next (None once the whole read is done). A read cut short by the page budget, a
    failure or the cycle deadline carries on from here in the next cycle."""

    start: float
    end: float
    next_id: int | None = 0
    pages: int = 0  # pages read in the current window
    sent: set[int] = field(default_factory=set)  # nextIds sent in the current window

    @property
    def done(self) -> bool:
        return self.next_id is None


class PagesSpent(Exception):
    """The cycle's page budget is spent: the read carries on from its position in the
    next cycle. Not a failure: the feed is behind, and every page it read was good."""


@dataclass
class PageBudget:
    """Pages one cycle may still read (`max_pages_per_cycle`), across every feed."""

    left: int


class GlanceClient:
    def __init__(
        self,
        account: GlanceAccount,
        ctx: CollectorContext,
        *,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
    ) -> None:
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError("page_size must be between 1 and 1000")
        self.base_url = account.common.base_url.rstrip("/")
        self._partner_id = str(account.partner_id)
        self._api_key: Secret = account.api_key
        self.page_size = page_size
        self.max_pages = max_pages
        # global.max_records_per_reply bounds every reply, as in the other vendors.
        self.max_records = ctx.max_records_per_reply
        self._log = ctx.log
        self._warned_paging = False

    def _paging_back(self, operation: str, ended: bool) -> None:
        """Say once that a page named a nextId below the one just sent. Repeating the one
        just sent, or naming one on an empty page, is how a last page may be marked (the
        document does not say); going back is not. Paging follows a lower nextId not sent
        before; one already sent ends the window, and if Glance meant more, that window's
        later sessions are not read (probe 9)."""
        if self._warned_paging:
            return
        self._warned_paging = True
        self._log.warning(
            "glance_feed_paging_went_back",
            operation=operation,
            hint="a page named a nextId below the one sent, and one already sent: the "
            "window was taken as ended there, and sessions after it may not be read"
            if ended
            else "a page named a nextId below the one sent; paging went on from it",
        )

    def url(self, operation: str) -> str:
        return f"{self.base_url}/services/activityservice.asmx/{operation}"

    async def call(
        self,
        upstream: Upstream,
        operation: str,
        params: Mapping[str, str],
        parser: Callable[[bytes, int, int], T],
    ) -> T:
        form = {"partnerId": self._partner_id, "apiKey": self._api_key.reveal(), **params}
        reply = await upstream.fetch(
            operation, "POST", self.url(operation), data=form, ok_statuses=(200, 500)
        )
        if reply.status == 500:
            text = scrub.first_line_excerpt(reply.body, ERROR_EXCERPT)
            reason = "auth" if _AUTH_HINT.search(text) else "http_5xx"
            raise upstream.error(operation, reason, f"HTTP 500: {text or '(empty body)'}")
        max_body, max_records = upstream.max_body_bytes, self.max_records
        result = await upstream.parse_off_loop(
            operation, lambda body: parser(body, max_body, max_records), reply.body
        )
        if result.over_limit is not None:
            raise upstream.too_many_records(operation, result.over_limit, max_records)
        return result

    async def active_sessions(self, upstream: Upstream) -> ActiveSessions:
        return await self.call(upstream, ACTIVE, {}, parse_active_sessions)

    async def session_counts(
        self, upstream: Upstream, status: str, start: float, end: float
    ) -> Counts:
        params = {"type": "", "status": status, "startRange": utc(start), "endRange": utc(end)}
        return await self.call(upstream, COUNTS, params, parse_session_counts)

    async def session_counts_ending(self, upstream: Upstream, start: float, end: float) -> Counts:
        params = {"type": "", "startRange": utc(start), "endRange": utc(end)}
        return await self.call(upstream, COUNTS_ENDING, params, parse_session_counts)

    async def user_sessions(
        self, upstream: Upstream, user: str, status: str, start: float, end: float
    ) -> UserSessions:
        params = {
            "partnerUserId": user,
            "startRange": utc(start),
            "endRange": utc(end),
            "status": status,
            "sessionKey": "",
        }
        return await self.call(upstream, USER_SESSIONS, params, parse_user_sessions)

    async def completed(
        self,
        upstream: Upstream,
        operation: str,
        start: float,
        end: float,
        *,
        position: FeedPosition | None = None,
        budget: PageBudget | None = None,
    ) -> AsyncGenerator[GroupSessions, None]:
        """Every page of a completed-sessions feed over [start, end], window by window,
        from `position` when one is given (a read an earlier cycle did not finish).

        The docs do not say how the last page is marked, so any of these ends a window:
        a page with no sessions, no (or a zero) nextId, or a nextId already sent.
        `position` moves past a page only once the consumer asks for the next one, so a
        page whose processing failed is read again. With `budget` spent, the read stops
        with `PagesSpent` and `position` says where to carry on.
        """
        if operation not in (COMPLETED, COMPLETED_ENDING):
            raise ValueError(f"{operation} is not a completed-sessions feed")
        pos = position if position is not None else FeedPosition(start, end)
        while pos.next_id is not None:
            if budget is not None and budget.left <= 0:
                raise PagesSpent(operation)
            lo, hi = windows(pos.start, pos.end)[0]
            if pos.pages >= self.max_pages:
                # Read again, the window paged on as endlessly each time and the feed
                # never got past it: the rest of it is given up, the failure says so.
                self._next_window(pos, hi)
                raise upstream.error(
                    operation,
                    "vendor_error",
                    f"pagination did not end after {self.max_pages} pages; the rest of "
                    f"{utc(lo)}..{utc(hi)} is skipped",
                )
            next_id = pos.next_id
            pos.sent.add(next_id)
            params = {
                "startRange": utc(lo),
                "endRange": utc(hi),
                "sessionKey": "",
                "nResults": str(self.page_size),
                "nextId": str(next_id),
            }
            if budget is not None:
                budget.left -= 1
            page = await self.call(upstream, operation, params, parse_group_sessions)
            yield page
            pos.pages += 1
            ended = (
                (not page.sessions and not page.skipped)
                or page.next_id is None
                or page.next_id <= 0
                or page.next_id in pos.sent
            )
            if page.next_id is not None and 0 < page.next_id < next_id:
                self._paging_back(operation, ended)
            if not ended:
                pos.next_id = page.next_id
            else:
                self._next_window(pos, hi)

    @staticmethod
    def _next_window(pos: FeedPosition, hi: int) -> None:
        """Move `pos` past its current window, which ends at `hi`."""
        if hi >= math.ceil(pos.end):
            pos.next_id = None
        else:
            pos.start, pos.next_id, pos.pages, pos.sent = hi, 0, 0, set()
