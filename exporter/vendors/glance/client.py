"""Requests to the Glance Activity Service, over the core's `Upstream`.

Every call is an HTTPS POST of a form to ``{base_url}/services/activityservice.asmx/{Op}``
with ``partnerId`` and ``apiKey`` in the body, so credentials never reach a URL that a
proxy or a log might keep.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

from ...config import Secret
from ...http import Upstream
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

T = TypeVar("T")

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
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


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


class GlanceClient:
    def __init__(
        self,
        base_url: str,
        partner_id: int,
        api_key: Secret,
        *,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
    ) -> None:
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError("page_size must be between 1 and 1000")
        self.base_url = base_url.rstrip("/")
        self._partner_id = str(partner_id)
        self._api_key = api_key
        self.page_size = page_size
        self.max_pages = max_pages

    def url(self, operation: str) -> str:
        return f"{self.base_url}/services/activityservice.asmx/{operation}"

    async def call(
        self,
        upstream: Upstream,
        operation: str,
        params: Mapping[str, str],
        parser: Callable[[bytes], T],
    ) -> T:
        form = {"partnerId": self._partner_id, "apiKey": self._api_key.reveal(), **params}
        reply = await upstream.fetch(
            operation, "POST", self.url(operation), data=form, ok_statuses=(200, 500)
        )
        if reply.status == 500:
            text = self._excerpt(reply.body)
            reason = "auth" if _AUTH_HINT.search(text) else "http_5xx"
            raise upstream.error(operation, reason, f"HTTP 500: {text or '(empty body)'}")
        return upstream.parse(operation, parser, reply.body)

    def _excerpt(self, body: bytes) -> str:
        """The first line of an ASMX error, for the log, with the key scrubbed out."""
        text = body[:2048].decode("utf-8", "replace")
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        first = _CONTROL.sub(" ", first)
        secret = self._api_key.reveal()
        if secret:
            first = first.replace(secret, "<redacted>")
        return first[:200]

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
        self, upstream: Upstream, operation: str, start: float, end: float
    ) -> AsyncIterator[GroupSessions]:
        """Every page of a completed-sessions feed over [start, end], window by window.

        The docs do not say how the last page is marked, so any of these ends a window:
        a page with no sessions, no (or a zero) nextId, or a nextId already sent.
        """
        if operation not in (COMPLETED, COMPLETED_ENDING):
            raise ValueError(f"{operation} is not a completed-sessions feed")
        for lo, hi in windows(start, end):
            sent: set[int] = set()
            next_id = 0
            for _ in range(self.max_pages):
                sent.add(next_id)
                params = {
                    "startRange": utc(lo),
                    "endRange": utc(hi),
                    "sessionKey": "",
                    "nResults": str(self.page_size),
                    "nextId": str(next_id),
                }
                page = await self.call(upstream, operation, params, parse_group_sessions)
                yield page
                if not page.sessions and not page.skipped:
                    break
                if page.next_id is None or page.next_id <= 0 or page.next_id in sent:
                    break
                next_id = page.next_id
            else:
                raise upstream.error(
                    operation,
                    "vendor_error",
                    f"pagination did not end after {self.max_pages} pages",
                )
