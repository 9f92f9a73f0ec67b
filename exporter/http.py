"""Upstream HTTP: one shared ClientSession, a body-size cap, and failures mapped to reasons.

Vendor clients call `Upstream.fetch` and never see aiohttp's exceptions: every failure
arrives as an `UpstreamError` with a fixed `reason`, counted once in the self-metrics.
Messages are built from status codes and operation names only, never from URLs or
bodies, because those may carry credentials.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

import aiohttp
from multidict import CIMultiDictProxy

from .errors import ParseError, UpstreamError
from .sanitize import strict_int
from .selfmetrics import SelfMetrics

T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: CIMultiDictProxy[str]


def new_client_session() -> aiohttp.ClientSession:
    """The one session every account shares: pooled connections, no shared cookies
    (two accounts of one vendor must never see each other's login cookie)."""
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(),
        # No pool-wide cap: the per-vendor semaphores bound concurrency, and a global cap
        # would make one busy vendor's accounts wait on another's.
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300),
        headers={"User-Agent": "session-exporter"},
        auto_decompress=True,
    )


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds (ASCII digits only: ``'²'`` is a digit to `str.isdigit`) or an HTTP date;
    None for anything else, which then leaves the backoff as it is."""
    if not value or len(value) > 64:
        return None
    seconds = strict_int(value)
    if seconds is not None:
        return float(seconds)
    try:
        when = parsedate_to_datetime(value.strip()).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - now) if math.isfinite(when) else None


def reason_for_status(status: int) -> str:
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "http_5xx"
    return "http_4xx"


class Upstream:
    """One account's door to its vendor: timeout, concurrency bound, size cap, counting."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        vendor: str,
        account: str,
        timeout: float,
        semaphore: asyncio.Semaphore,
        metrics: SelfMetrics,
        max_body_bytes: int,
        wall_time: Callable[[], float],
    ) -> None:
        self._session = session
        self.vendor = vendor
        self.account = account
        self._timeout = timeout
        self._semaphore = semaphore
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._wall_time = wall_time

    @property
    def max_body_bytes(self) -> int:
        """The cap on one reply body (global `max_body_bytes`), for parsers that check it too."""
        return self._max_body

    def error(
        self, operation: str, reason: str, message: str, retry_after: float | None = None
    ) -> UpstreamError:
        """Count a failure and return the exception for the caller to raise."""
        self._metrics.upstream_failure(self.vendor, self.account, operation, reason)
        return UpstreamError(operation, reason, message, retry_after)

    def parse(self, operation: str, parser: Callable[[bytes], T], body: bytes) -> T:
        try:
            return parser(body)
        except ParseError as exc:
            raise self.error(operation, "parse", str(exc)) from None

    async def fetch(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ok_statuses: tuple[int, ...] = (200,),
        error_detail: Callable[[bytes], str | None] | None = None,
    ) -> Reply:
        """One request. A status outside `ok_statuses` raises; `error_detail` may turn
        the error body into a short, secret-free text for the log line."""
        self._metrics.upstream_request(self.vendor, self.account, operation)
        try:
            async with self._semaphore:
                async with asyncio.timeout(self._timeout):
                    async with self._session.request(
                        method,
                        url,
                        data=data,
                        params=params,
                        headers=headers,
                        allow_redirects=False,
                    ) as response:
                        body = await self._read_capped(operation, response)
                        reply = Reply(response.status, body, response.headers)
        except TimeoutError:
            raise self.error(operation, "timeout", f"no reply within {self._timeout:g}s") from None
        except aiohttp.ClientPayloadError:
            raise self.error(operation, "connection", "reply body was cut short") from None
        except aiohttp.ClientResponseError as exc:
            raise self.error(operation, "connection", f"bad HTTP reply ({exc.status})") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise self.error(operation, "connection", type(exc).__name__) from None
        if reply.status not in ok_statuses:
            retry_after = parse_retry_after(reply.headers.get("Retry-After"), self._wall_time())
            detail = error_detail(reply.body) if error_detail is not None else None
            message = f"HTTP {reply.status}" + (f": {detail}" if detail else "")
            raise self.error(operation, reason_for_status(reply.status), message, retry_after)
        return reply

    async def _read_capped(self, operation: str, response: aiohttp.ClientResponse) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self._max_body:
            raise self.error(
                operation, "body_too_large", f"reply declares {declared} bytes"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > self._max_body:
                raise self.error(
                    operation, "body_too_large", f"reply exceeds {self._max_body} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def stream(
        self,
        operation: str,
        url: str,
        consume: Callable[[AsyncIterator[bytes]], Awaitable[T]],
        *,
        max_bytes: int,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        error_detail: Callable[[bytes], str | None] | None = None,
    ) -> T:
        """One GET whose 200 body goes to `consume` chunk by chunk and is never held whole:
        for replies that can be reduced as they arrive (a month of SecureVideo sessions is
        counted, not kept), so their size is bounded by `max_bytes` instead of
        `max_body_bytes`. Other statuses fail exactly as in `fetch`; a `ParseError` out of
        `consume` is a `parse` failure."""
        self._metrics.upstream_request(self.vendor, self.account, operation)
        try:
            async with self._semaphore:
                async with asyncio.timeout(self._timeout):
                    async with self._session.request(
                        "GET", url, params=params, headers=headers, allow_redirects=False
                    ) as response:
                        if response.status == 200:
                            return await consume(self._chunks(operation, response, max_bytes))
                        body = await self._read_capped(operation, response)
                        reply = Reply(response.status, body, response.headers)
        except TimeoutError:
            raise self.error(operation, "timeout", f"no reply within {self._timeout:g}s") from None
        except ParseError as exc:
            raise self.error(operation, "parse", str(exc)) from None
        except aiohttp.ClientPayloadError:
            raise self.error(operation, "connection", "reply body was cut short") from None
        except aiohttp.ClientResponseError as exc:
            raise self.error(operation, "connection", f"bad HTTP reply ({exc.status})") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise self.error(operation, "connection", type(exc).__name__) from None
        retry_after = parse_retry_after(reply.headers.get("Retry-After"), self._wall_time())
        detail = error_detail(reply.body) if error_detail is not None else None
        message = f"HTTP {reply.status}" + (f": {detail}" if detail else "")
        raise self.error(operation, reason_for_status(reply.status), message, retry_after)

    async def _chunks(
        self, operation: str, response: aiohttp.ClientResponse, max_bytes: int
    ) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > max_bytes:
                raise self.error(operation, "body_too_large", f"reply exceeds {max_bytes} bytes")
            yield chunk
