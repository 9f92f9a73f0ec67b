"""History API requests over the core's `Upstream`: Basic auth, UTC day windows, errors.

Credentials travel only in the Authorization header, never in the URL; error messages
carry the status and SecureVideo's `Message`, with the credentials masked.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from functools import partial

from ...http import Upstream
from ...sanitize import MAX_AHEAD
from ..base import CollectorContext
from .config import SecureVideoAccount
from .parser import (
    HistoryPage,
    MonthCounter,
    MonthCounts,
    parse_error_message,
    parse_history,
)

FEED = "history"
MONTH = "history_month"
# The month reply is streamed and counted, never held: its size is bounded by the
# sessions it may hold (`max_month_sessions`, i.e. max_remembered_ids) at this many
# bytes each, far above a real History record (about 400 bytes).
MAX_BYTES_PER_SESSION = 4096


def _first_byte(chunks: tuple[bytes, ...]) -> bytes:
    """The first byte that is not JSON whitespace, without joining a big body."""
    for chunk in chunks:
        for start in range(0, len(chunk), 4096):
            rest = chunk[start : start + 4096].lstrip()
            if rest:
                return rest[:1]
    return b""


def utc_day(now: float) -> date:
    return datetime.fromtimestamp(now, UTC).date()


def month_start(now: float) -> date:
    return utc_day(now).replace(day=1)


def feed_window(now: float, feed_days: int) -> tuple[date, date]:
    """The UTC days the feed covers: `feed_days` days ending today."""
    today = utc_day(now)
    return today - timedelta(days=feed_days - 1), today


def day_start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


class HistoryClient:
    def __init__(self, account: SecureVideoAccount, ctx: CollectorContext) -> None:
        self.account = account
        # One reply's records, and the month's sessions (bounded like dedupe memory).
        self.max_records = ctx.max_records_per_reply
        self.max_month_sessions = ctx.max_remembered_ids
        base = account.common.base_url
        self.url = (
            f"{base}/history"
            if account.host_user_id is None
            else f"{base}/history/{account.host_user_id}"
        )
        # Sent as a header rather than aiohttp.BasicAuth, which aiohttp 3.14 deprecates;
        # the header is the same bytes either way (RFC 7617, UTF-8).
        pair = f"{account.api_key.reveal()}:{account.api_secret.reveal()}".encode()
        token = base64.b64encode(pair).decode("ascii")
        # The key, the secret and this token are known to the scrubber (config registers
        # them, the token by `scrub.register_basic`): a vendor quoting them shows none.
        self._headers = {"Authorization": "Basic " + token, "Accept": "application/json"}

    def _filters(self) -> dict[str, str]:
        email = self.account.participant_email
        return {"participantEmail": email} if email else {}

    def feed_params(self, now: float, start: date | None = None) -> dict[str, str]:
        """The rolling window, or from `start` when a restarted exporter catches up."""
        default_start, end = feed_window(now, self.account.feed_days)
        start = default_start if start is None else min(start, default_start)
        return {"startDt": start.isoformat(), "endDt": end.isoformat(), **self._filters()}

    def month_params(self, now: float) -> dict[str, str]:
        return {"month": month_start(now).isoformat(), **self._filters()}

    async def feed(self, upstream: Upstream, now: float, start: date | None = None) -> HistoryPage:
        return await self._get(upstream, FEED, self.feed_params(now, start))

    async def month(self, upstream: Upstream, now: float) -> MonthCounts:
        """The current month's sessions counted by status as the reply streams in: a
        month far bigger than `max_body_bytes` or `max_records_per_reply` still counts."""
        limit = self.max_month_sessions

        async def count(chunks: AsyncIterator[bytes]) -> MonthCounts:
            counter = MonthCounter(limit, latest=now + MAX_AHEAD)
            async for chunk in chunks:
                counter.feed(chunk)
                if counter.over_limit:
                    break  # stop reading: the reply is refused anyway
                # Chunks already buffered come without a pause: one chunk per loop step
                # (a few milliseconds of counting), so that scrapes go in between.
                await asyncio.sleep(0)
            return counter.finish()

        counts = await upstream.stream(
            MONTH,
            self.url,
            count,
            max_bytes=max(upstream.max_body_bytes, limit * MAX_BYTES_PER_SESSION),
            params=self.month_params(now),
            headers=self._headers,
            error_detail=lambda body: parse_error_message(body),
        )
        if counts.vendor_message is not None:
            raise upstream.error(MONTH, "vendor_error", f"HTTP 200: {counts.vendor_message}")
        if counts.over_limit is not None:
            raise upstream.error(
                MONTH,
                "limit_exceeded",
                f"the month holds more than {limit} sessions "
                "(max_remembered_ids); the month gauge keeps its last value",
            )
        return counts

    async def _get(self, upstream: Upstream, operation: str, params: dict[str, str]) -> HistoryPage:
        reply = await upstream.fetch(
            operation,
            "GET",
            self.url,
            params=params,
            headers=self._headers,
            error_detail=lambda body: parse_error_message(body),
        )
        if _first_byte(reply.chunks) == b"{":
            # A 200 carrying an error object instead of the array of sessions.
            message = parse_error_message(reply.body)
            if message is not None:
                raise upstream.error(operation, "vendor_error", f"HTTP 200: {message}")
        limit = self.max_records
        # A partial, not a lambda: it must pickle to reach the parse worker process.
        page = await upstream.parse_off_loop(
            operation, partial(parse_history, max_records=limit), reply.chunks
        )
        if page.over_limit is not None:
            raise upstream.too_many_records(operation, page.over_limit, limit)
        return page
