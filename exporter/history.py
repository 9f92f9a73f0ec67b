"""What each account's recent cycles did: requests, records, rejections, the error.

The status page, the per-account detail and the probe read this; nothing here is a
metric. Memory is bounded: a ring of the last `CYCLES_KEPT` cycles per account, and at
most `REQUESTS_KEPT` requests per cycle (the rest are counted, not kept). Every text
kept here is scrubbed and cut, because it is shown on a web page.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sized
from dataclasses import dataclass

import msgspec

from . import scrub
from .sanitize import printable

CYCLES_KEPT = 10
REQUESTS_KEPT = 50
MESSAGE_LIMIT = 300  # characters of an error message kept for display
# Further than this between our clock and a vendor's Date header is worth a hint.
CLOCK_SKEW_LIMIT = 300.0


def safe_text(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Vendor-derived text fit for display: encodable, scrubbed, control characters
    blanked (`printable`), cut. An lxml error quoting a hostile namespace carried U+202E
    and C1 controls to the pages."""
    return scrub.excerpt(printable(text), limit)


# The records are msgspec Structs untracked by the garbage collector: an account keeps
# up to `CYCLES_KEPT` cycles of requests, so 2,000 accounts keep over 100,000 of them,
# and every full collection would walk each one (none holds a reference back).


class RequestRecord(msgspec.Struct, gc=False):
    operation: str
    method: str
    status: int | None  # None when no HTTP reply arrived (timeout, refused, TLS)
    bytes: int
    duration: float  # seconds
    reason: str | None = None  # failure reason, None when the request succeeded
    error: str | None = None  # scrubbed, capped message
    records: int | None = None  # records the parser returned, when it ran
    clock_skew: float | None = None  # vendor Date header minus our clock, seconds


@dataclass(frozen=True, slots=True)
class Failure:
    operation: str
    reason: str
    message: str  # scrubbed, capped
    hint: str | None
    at: float  # wall time the cycle ended


class CycleRecord(msgspec.Struct, gc=False):
    started: float  # wall time
    duration: float | None = None  # None while running
    ok: bool | None = None  # None while running
    requests: list[RequestRecord] = msgspec.field(default_factory=list)
    requests_dropped: int = 0  # beyond REQUESTS_KEPT
    rejected: dict[str, int] = msgspec.field(default_factory=dict)
    failure: Failure | None = None
    hint: str | None = None  # for a failure, or for what a successful cycle saw

    @property
    def request_count(self) -> int:
        return len(self.requests) + self.requests_dropped

    @property
    def records_parsed(self) -> int:
        return sum(r.records or 0 for r in self.requests)

    @property
    def largest_clock_skew(self) -> float | None:
        skews = [r.clock_skew for r in self.requests if r.clock_skew is not None]
        return max(skews, key=abs) if skews else None


def count_records(result: object) -> int | None:
    """How many records a parser returned, without knowing the vendor: a sized result
    counts itself; a dataclass counts its `records` or `sessions` sequence."""
    if isinstance(result, str | bytes):
        return None
    if isinstance(result, Sized):
        return len(result)
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        for name in ("records", "sessions"):
            value = getattr(result, name, None)
            if isinstance(value, list | tuple):
                return len(value)
    return None


class AccountHistory:
    """One account's last cycles, fed by the loop (cycles, rejections) and by `Upstream`
    (requests, parsed records)."""

    def __init__(self, limit: int = CYCLES_KEPT) -> None:
        self.cycles: deque[CycleRecord] = deque(maxlen=limit)
        self.current: CycleRecord | None = None
        self.last_failure: Failure | None = None
        self.next_poll: float | None = None

    def begin(self, at: float) -> None:
        self.current = CycleRecord(started=at)

    def request(self, record: RequestRecord) -> None:
        cycle = self.current
        if cycle is None:
            return
        if len(cycle.requests) < REQUESTS_KEPT:
            cycle.requests.append(record)
        else:
            cycle.requests_dropped += 1

    def parsed(self, operation: str, records: int | None) -> None:
        """How many records the latest reply to `operation` held."""
        cycle = self.current
        if cycle is None:
            return
        for request in reversed(cycle.requests):
            if request.operation == operation:
                request.records = records
                return

    def failed(self, operation: str, reason: str, message: str) -> None:
        """A reply the client refused after the request itself succeeded (an error code
        in the body, an unreadable body): marked on the latest such request of
        `operation`. A failure with no request of its own (limit_exceeded, a cycle
        timeout) is shown by the cycle's failure alone."""
        cycle = self.current
        if cycle is None:
            return
        for request in reversed(cycle.requests):
            if request.operation == operation and request.reason is None:
                request.reason, request.error = reason, safe_text(message)
                return

    def rejected(self, reason: str, count: int) -> None:
        cycle = self.current
        if cycle is not None and count:
            cycle.rejected[reason] = cycle.rejected.get(reason, 0) + count

    def end(
        self, at: float, duration: float, failure: Failure | None, hint: str | None
    ) -> CycleRecord:
        cycle = self.current or CycleRecord(started=at - duration)
        cycle.duration, cycle.ok, cycle.failure, cycle.hint = (
            duration,
            failure is None,
            failure,
            hint,
        )
        if failure is not None:
            self.last_failure = failure
        self.cycles.append(cycle)
        self.current = None
        return cycle

    @property
    def last(self) -> CycleRecord | None:
        return self.cycles[-1] if self.cycles else None
