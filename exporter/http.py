"""Upstream HTTP: one shared ClientSession, a body-size cap, and failures mapped to reasons.

Vendor clients call `Upstream.fetch` and never see aiohttp's exceptions: every failure
arrives as an `UpstreamError` with a fixed `reason`, counted once in the self-metrics.
Messages are built from status codes and operation names only, never from URLs or
bodies, because those may carry credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import TypeVar
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDictProxy

from .admission import Admission
from .contentcoding import ACCEPT_ENCODING, BodyDecoder, CutShort, Undecodable
from .errors import ParseError, UpstreamError
from .history import AccountHistory, RequestRecord, count_records, safe_text
from .logs import get_logger
from .parseworker import PROCESS_BYTES, ParseWorker, WorkerFailed, picklable
from .sanitize import strict_int
from .scrub import first_line_excerpt
from .selfmetrics import SelfMetrics

T = TypeVar("T")

# Replies at least this large are parsed in a worker thread (`Upstream.parse_off_loop`),
# and from `PROCESS_BYTES` in the parse worker process when there is one. Parsing 32 KiB
# takes one to three milliseconds here, about an idle scrape; a 200 KiB Glance page parsed
# on the loop stopped scrapes for 8-17 ms (bench/scrape_under_ingest.py, 48 pages).
OFF_LOOP_BYTES = 32 * 1024

log = get_logger(component="upstream")
# Set while `fetch` runs a request: its failures are recorded with the request itself.
_in_fetch: ContextVar[bool] = ContextVar("_in_fetch", default=False)


@dataclass(frozen=True)
class Reply:
    """A reply as it arrived: its body in the chunks read. Joining 20 MB into one bytes
    object costs tens of milliseconds of page faults on the event loop, so a big body is
    joined only if someone asks for `body`; the parse worker takes the chunks as they are."""

    status: int
    chunks: tuple[bytes, ...]
    headers: CIMultiDictProxy[str]

    @classmethod
    def of(cls, status: int, body: bytes, headers: CIMultiDictProxy[str]) -> Reply:
        return cls(status, (body,), headers)

    @cached_property
    def body(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)

    @property
    def size(self) -> int:
        return sum(map(len, self.chunks))


def new_client_session() -> aiohttp.ClientSession:
    """The one session every account shares: pooled connections, no shared cookies
    (two accounts of one vendor must never see each other's login cookie)."""
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(),
        # No pool-wide cap: the per-vendor admissions bound concurrency, and a global cap
        # would make one busy vendor's accounts wait on another's.
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300),
        # Bodies are decoded by `contentcoding`, a bounded piece at a time, their end
        # checked: aiohttp took a cut gzip stream for a whole body.
        headers={"User-Agent": "session-exporter", "Accept-Encoding": ACCEPT_ENCODING},
        auto_decompress=False,
    )


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Characters of a refused reply's body quoted in its error (`first_line_excerpt`).
ERROR_EXCERPT = 200


def form_body(
    fields: Mapping[str, str], headers: Mapping[str, str] | None
) -> tuple[bytes, dict[str, str]]:
    """A form as the bytes aiohttp would send, and its Content-Type. Encoded here
    because aiohttp builds a multipart writer (and draws a random boundary) for every
    dict it is given, form or not: a cost on the loop for each request."""
    return (
        urlencode(fields).encode("ascii"),
        {"Content-Type": FORM_CONTENT_TYPE, **(headers or {})},
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


def _connection_lost(exc: aiohttp.ClientError | OSError) -> str:
    """What ended a connection after it was made, never `str(exc)` (it may name the
    URL): a bare "ClientOSError" told nobody that the vendor had reset it (probe 13)."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "ServerDisconnectedError: the vendor closed the connection before its reply"
    if isinstance(exc, OSError) and exc.errno:
        return f"{type(exc).__name__}: {os.strerror(exc.errno)}"
    return type(exc).__name__


def _os_reason(error: OSError) -> str:
    # From the errno ("Connection refused"): asyncio's strerror adds the address.
    if error.errno:
        return os.strerror(error.errno)
    return type(error).__name__


def _clock_skew(date_header: str | None, now: float) -> float | None:
    """The vendor's Date header minus our clock, seconds (HTTP dates have 1 s steps)."""
    if not date_header or len(date_header) > 64:
        return None
    try:
        when = parsedate_to_datetime(date_header.strip()).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when - now if math.isfinite(when) else None


_CONTENT_ENCODING = re.compile(r"content-encoding: (\w+)", re.IGNORECASE)


def _undecodable(exc: aiohttp.ClientError) -> str | None:
    """What to say when aiohttp could not decompress a body (a gzip header on a plain
    body was "cut short"; a brotli one, sent though we never ask for it, was "bad HTTP
    reply (400)", from a vendor that had sent 200)."""
    match = _CONTENT_ENCODING.search(str(exc))
    if match is None:
        return None
    return f"reply body cannot be decoded as its Content-Encoding says ({match.group(1)})"


_CANCELLED = (
    "stopped before the reply was read: the cycle's deadline passed, or the exporter is stopping"
)
_UNREADABLE_HTTP = (
    "reply is not readable HTTP: its status line, headers or chunked framing are "
    "malformed or too large"
)


def reason_for_status(status: int) -> str:
    """The failure reason of a status the caller did not expect."""
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "http_5xx"
    if status >= 400:
        return "http_4xx"
    if status >= 300:
        return "http_3xx"  # never followed: a login page, or a base_url gone elsewhere
    return "vendor_error"  # a 1xx or 2xx this request does not take (204 for a list)


_UNBOUNDED = contextlib.nullcontext()


class Upstream:
    """One account's door to its vendor: timeout, concurrency bound, size cap, counting."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        vendor: str,
        account: str,
        timeout: float,
        admission: Admission,
        metrics: SelfMetrics,
        account_semaphore: asyncio.Semaphore | None = None,
        max_body_bytes: int,
        wall_time: Callable[[], float],
        history: AccountHistory | None = None,
        parse_worker: ParseWorker | None = None,
    ) -> None:
        self._session = session
        self._parse_worker = parse_worker
        self.vendor = vendor
        self.account = account
        self._timeout = timeout
        self._admission = admission  # the vendor's request slots, shared by its accounts
        # When this account's current cycle began (its scheduler sets it): the vendor's
        # slots go to the oldest cycle first.
        self.cycle_started = 0.0
        # This account's own bound (None: only the vendor's), taken first: an account at
        # its bound waits without holding one of its vendor's slots.
        self._account_semaphore = account_semaphore or _UNBOUNDED
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._wall_time = wall_time
        self.history = history  # where each request is recorded for the status page
        # The vendor's Date header minus our clock at the last reply that had one, and
        # how many replies had one (so a collector can tell a skew measured just now).
        self.clock_skew: float | None = None
        self.dated_replies = 0

    @property
    def max_body_bytes(self) -> int:
        """The cap on one reply body (global `max_body_bytes`), for parsers that check it too."""
        return self._max_body

    def error(
        self, operation: str, reason: str, message: str, retry_after: float | None = None
    ) -> UpstreamError:
        """Count a failure and return the exception for the caller to raise."""
        self._metrics.upstream_failure(self.vendor, self.account, operation, reason)
        err = UpstreamError(operation, reason, message, retry_after)
        if self.history is not None and not _in_fetch.get():
            # A client refusing a reply it got (an error code in a 200): shown on that
            # request. Inside fetch, `_note` records the request with its error itself.
            self.history.failed(operation, reason, err.message)
        return err

    def too_many_records(self, operation: str, count: int, limit: int) -> UpstreamError:
        """Count and return the failure of a reply with more records than
        `max_records_per_reply`: nothing of it is used."""
        return self.error(
            operation,
            "limit_exceeded",
            (
                f"reply holds more than max_records_per_reply ({limit}) records, or more "
                "objects and arrays than that many records would"
                if count == limit + 1
                else f"reply holds {count} records, more than max_records_per_reply ({limit})"
            )
            + "; nothing of it was used",
        )

    def parse(self, operation: str, parser: Callable[[bytes], T], body: bytes) -> T:
        try:
            result = parser(body)
        except ParseError as exc:
            raise self.error(operation, "parse", str(exc)) from None
        if self.history is not None:
            self.history.parsed(operation, count_records(result))
        return result

    async def parse_off_loop(
        self, operation: str, parser: Callable[[bytes], T], body: bytes | tuple[bytes, ...]
    ) -> T:
        """`parse` away from the event loop for large replies, so that scrapes are served
        while a big reply is read (parsers are pure, so this is safe): in the parse
        worker process from `PROCESS_BYTES` (when the parser can travel there), else in a
        thread; inline for small ones, where either would cost more than it saves."""
        chunks = (body,) if isinstance(body, bytes) else body
        size = sum(map(len, chunks))
        if size < OFF_LOOP_BYTES:
            return self.parse(operation, parser, b"".join(chunks))
        try:
            result = await self._parse_away(operation, parser, chunks, size)
        except ParseError as exc:
            raise self.error(operation, "parse", str(exc)) from None
        if self.history is not None:
            self.history.parsed(operation, count_records(result))
        return result

    async def _parse_away(
        self, operation: str, parser: Callable[[bytes], T], chunks: tuple[bytes, ...], size: int
    ) -> T:
        worker = self._parse_worker
        pickled = picklable(parser) if worker is not None and size >= PROCESS_BYTES else None
        if worker is not None and pickled is not None:
            try:
                result: T = await worker.parse(pickled, chunks)
            except WorkerFailed as exc:
                # The reply is not lost: parsed in a thread as before the worker existed.
                log.warning(
                    "parse worker failed; parsing in a thread",
                    vendor=self.vendor,
                    account=self.account,
                    operation=operation,
                    error=str(exc),
                )
            else:
                return result
        return await asyncio.to_thread(lambda: parser(b"".join(chunks)))

    async def fetch(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ok_statuses: tuple[int, ...] = (200,),
        error_detail: Callable[[bytes], str | None] | None = None,
    ) -> Reply:
        """One request. A status outside `ok_statuses` raises; `error_detail` may turn
        the error body into a short, secret-free text for the log line."""
        read = self._reader(operation)
        return await self._counted(
            operation, method, url, read, data, params, headers, ok_statuses, error_detail
        )

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
        read = self._reader(operation)
        result: list[T] = []

        async def handle(response: aiohttp.ClientResponse) -> Reply:
            if response.status != 200:
                return await read(response)
            result.append(await consume(self._chunks(operation, response, max_bytes)))
            return Reply.of(200, b"", response.headers)

        await self._counted(
            operation, "GET", url, handle, None, params, headers, (200,), error_detail
        )
        return result[0]

    async def _counted(
        self,
        operation: str,
        method: str,
        url: str,
        handle: Callable[[aiohttp.ClientResponse], Awaitable[Reply]],
        data: Mapping[str, str] | bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        ok_statuses: tuple[int, ...],
        error_detail: Callable[[bytes], str | None] | None,
    ) -> Reply:
        """The one path of every request: counted, timed, its status checked, recorded
        in the account's history, every failure an `UpstreamError` with its reason."""
        self._metrics.upstream_request(self.vendor, self.account, operation)
        started = time.monotonic()
        token = _in_fetch.set(True)
        try:
            try:
                reply = await self._exchange(operation, method, url, handle, data, params, headers)
            except UpstreamError as exc:
                self._note(operation, method, started, None, exc.reason, exc.message)
                raise
            except asyncio.CancelledError:
                # Counted as sent above: shown too, or the page had no trace of a reply
                # still dripping in when the cycle's deadline stopped it (probe 8).
                self._note(operation, method, started, None, "cancelled", _CANCELLED)
                raise
            if reply.status not in ok_statuses:
                retry_after = parse_retry_after(reply.headers.get("Retry-After"), self._wall_time())
                # The vendor's own words where it gave some: what the vendor's reader
                # makes of the body, else its first line (an HTML page's title).
                detail = error_detail(reply.body) if error_detail is not None else None
                detail = detail or first_line_excerpt(reply.body, ERROR_EXCERPT) or None
                message = f"HTTP {reply.status}" + (f": {detail}" if detail else "")
                reason = reason_for_status(reply.status)
                self._note(operation, method, started, reply, reason, message)
                raise self.error(operation, reason, message, retry_after)
        finally:
            _in_fetch.reset(token)
        self._note(operation, method, started, reply, None, None)
        return reply

    def _reader(self, operation: str) -> Callable[[aiohttp.ClientResponse], Awaitable[Reply]]:
        async def read(response: aiohttp.ClientResponse) -> Reply:
            body = await self._read_capped(operation, response)
            return Reply(response.status, body, response.headers)

        return read

    async def _exchange(
        self,
        operation: str,
        method: str,
        url: str,
        handle: Callable[[aiohttp.ClientResponse], Awaitable[Reply]],
        data: Mapping[str, str] | bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> Reply:
        """Send, let `handle` read the response, and map every aiohttp failure."""
        if data is not None and not isinstance(data, bytes):
            data, headers = form_body(data, headers)
        try:
            async with self._account_semaphore, self._admission.slot(self.cycle_started):
                async with asyncio.timeout(self._timeout):
                    async with self._session.request(
                        method,
                        url,
                        data=data,
                        params=params,
                        headers=headers,
                        allow_redirects=False,
                    ) as response:
                        return await handle(response)
        except TimeoutError:
            raise self.error(operation, "timeout", f"no reply within {self._timeout:g}s") from None
        except ParseError as exc:  # from a streaming consumer
            raise self.error(operation, "parse", str(exc)) from None
        except aiohttp.ClientPayloadError as exc:
            message = _undecodable(exc) or "reply body was cut short"
            raise self.error(operation, "connection", message) from None
        except aiohttp.ClientHttpProxyError as exc:
            raise self.error(
                operation, "connection", f"proxy refused the tunnel (HTTP {exc.status})"
            ) from None
        except aiohttp.ClientResponseError as exc:
            # aiohttp's own status for a reply it could not read, not the vendor's: "bad
            # HTTP reply (400)" read as if the vendor had sent a 400 (probe 8: a 1 MB
            # header, 20,000 headers, a bad chunk size).
            message = _undecodable(exc) or _UNREADABLE_HTTP
            raise self.error(operation, "connection", message) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            # Named apart from other connection failures: the fix (clock, CA bundle, an
            # intercepting proxy) is not the network's.
            problem = getattr(exc.certificate_error, "verify_message", None) or "verify failed"
            raise self.error(
                operation, "connection", f"TLS certificate not accepted: {problem}"
            ) from None
        except aiohttp.ClientSSLError as exc:
            problem = getattr(exc.os_error, "reason", None) or type(exc.os_error).__name__
            raise self.error(operation, "connection", f"TLS handshake failed: {problem}") from None
        except aiohttp.ClientProxyConnectionError as exc:
            raise self.error(
                operation, "connection", f"cannot reach the proxy: {_os_reason(exc.os_error)}"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            # The errno's text only ("Connection refused"): str(exc) would name the URL.
            raise self.error(
                operation, "connection", f"{type(exc).__name__}: {_os_reason(exc.os_error)}"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise self.error(operation, "connection", _connection_lost(exc)) from None

    def _note(
        self,
        operation: str,
        method: str,
        started: float,
        reply: Reply | None,
        reason: str | None,
        message: str | None,
    ) -> None:
        """Tell the account's history about one request (the status page shows it)."""
        skew = None
        if reply is not None:
            skew = _clock_skew(reply.headers.get("Date"), self._wall_time())
            if skew is not None:
                self.clock_skew = skew
                self.dated_replies += 1
        if self.history is None:
            return
        self.history.request(
            RequestRecord(
                operation=operation,
                method=method,
                status=reply.status if reply is not None else None,
                bytes=reply.size if reply is not None else 0,
                duration=time.monotonic() - started,
                reason=reason,
                error=safe_text(message) if message is not None else None,
                clock_skew=skew,
            )
        )

    async def _read_capped(
        self,
        operation: str,
        response: aiohttp.ClientResponse,
    ) -> tuple[bytes, ...]:
        declared = response.content_length
        if declared is not None and declared > self._max_body:
            raise self.error(operation, "body_too_large", f"reply declares {declared} bytes")
        return tuple([chunk async for chunk in self._chunks(operation, response, self._max_body)])

    async def _chunks(
        self, operation: str, response: aiohttp.ClientResponse, max_bytes: int
    ) -> AsyncIterator[bytes]:
        """The body as it arrives, decoded (`contentcoding`), at most `max_bytes` of it."""
        size = 0
        try:
            decoder = BodyDecoder(response.headers.get("Content-Encoding"))
            async for chunk in response.content.iter_chunked(65536):
                for count, piece in enumerate(decoder.feed(chunk)):
                    if count:
                        await asyncio.sleep(0)  # a piece inflated: scrapes go in between
                    size += len(piece)
                    if size > max_bytes:
                        raise self.error(
                            operation, "body_too_large", f"reply exceeds {max_bytes} bytes"
                        )
                    yield piece
            decoder.finish()
        except Undecodable as exc:
            raise self.error(
                operation,
                "connection",
                f"reply body cannot be decoded as its Content-Encoding says ({exc.coding})",
            ) from None
        except CutShort as exc:
            raise self.error(
                operation,
                "connection",
                f"reply body was cut short (its {exc.coding} stream ends early)",
            ) from None
