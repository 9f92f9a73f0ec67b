"""History JSON -> `HistoryRecord`s. Pure: bytes in, records out, only `ParseError` out.

One bad record (a field of the wrong type, an impossible timestamp) is skipped and
counted, so that a single odd session cannot hide all the others; a reply that is not a
JSON array at all fails as a whole.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ...errors import ParseError

# SecureVideo writes .NET-style UTC times without an offset, with 0-7 fractional digits
# ("2016-11-03T21:46:16.1", "2016-11-03T22:00:00"); a trailing Z is accepted too.
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?Z?", re.ASCII
)
# Longer integers cannot be a session id or a count of minutes; refusing them here also
# keeps json from spending quadratic time converting a megabyte of digits.
_MAX_INT_DIGITS = 18
_MESSAGE_LIMIT = 200


@dataclass(frozen=True)
class HistoryRecord:
    session_id: int
    schedule_ts: float | None = None
    billable_ts: float | None = None
    duration_minutes: float | None = None
    wait_minutes: float | None = None
    billable_status: str | None = None
    schedule_type: str | None = None
    user_id: int | None = None
    provider: str | None = None


@dataclass(frozen=True)
class HistoryPage:
    records: tuple[HistoryRecord, ...]
    skipped: int = 0
    # The first skipped record's problem, for a debug log line; never contains body text.
    first_problem: str | None = None


class _BadRecord(Exception):
    pass


class _TooLong:
    """Stands in for an integer literal too long to be meaningful; fails every type check."""


def _parse_int(text: str) -> int | _TooLong:
    digits = text.lstrip("-")
    return int(text) if len(digits) <= _MAX_INT_DIGITS else _TooLong()


def _load(body: bytes) -> Any:
    try:
        return json.loads(body, parse_int=_parse_int)
    except RecursionError:
        raise ParseError("History JSON is nested too deeply") from None
    except UnicodeDecodeError:
        raise ParseError("History reply is not UTF-8 text") from None
    except ValueError as exc:
        # JSONDecodeError's text names a position, never the body's content.
        raise ParseError(f"History reply is not JSON ({exc})") from None


def parse_timestamp(text: str) -> float:
    """UTC seconds since the epoch for a History timestamp; ValueError if malformed."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError("not a yyyy-mm-ddThh:mm:ss[.fffffff] timestamp")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    whole = int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())
    # One exact division (rather than whole + fraction) rounds once, so "…16.1" is the
    # same float as 1478209576100 / 1000 computed anywhere else.
    ticks = whole * 10**7 + int((match.group(7) or "").ljust(7, "0"))
    return ticks / 10**7


def _int(record: dict[str, Any], name: str) -> int | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadRecord(f"{name} is not a whole number")
    return value


def _minutes(record: dict[str, Any], name: str) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadRecord(f"{name} is not a number")
    if not math.isfinite(value) or value < 0:
        raise _BadRecord(f"{name} is not a finite, non-negative number")
    return float(value)


def _text(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BadRecord(f"{name} is not a string")
    return value


def _time(record: dict[str, Any], name: str) -> float | None:
    value = _text(record, name)
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError):
        raise _BadRecord(f"{name} is not a valid UTC timestamp") from None


def _record(item: Any) -> HistoryRecord:
    if not isinstance(item, dict):
        raise _BadRecord("is not a JSON object")
    session_id = _int(item, "SessionId")
    if session_id is None:
        raise _BadRecord("has no SessionId")
    return HistoryRecord(
        session_id=session_id,
        schedule_ts=_time(item, "ScheduleTs"),
        billable_ts=_time(item, "BillableTs"),
        duration_minutes=_minutes(item, "DurationMinutes"),
        wait_minutes=_minutes(item, "WaitTime"),
        billable_status=_text(item, "BillableStatusCd"),
        schedule_type=_text(item, "ScheduleType"),
        user_id=_int(item, "UserId"),
        provider=_text(item, "ReportableMeetingProvider"),
    )


def parse_history(body: bytes) -> HistoryPage:
    """Parse a History JSON reply: an array of session objects."""
    data = _load(body)
    if not isinstance(data, list):
        raise ParseError(f"History reply is a JSON {type(data).__name__}, not an array")
    records: list[HistoryRecord] = []
    skipped, first_problem = 0, None
    for index, item in enumerate(data):
        try:
            records.append(_record(item))
        except _BadRecord as exc:
            skipped += 1
            if first_problem is None:
                first_problem = f"record {index}: {exc}"
    return HistoryPage(tuple(records), skipped, first_problem)


def parse_error_message(body: bytes, redact: tuple[str, ...] = ()) -> str | None:
    """The `Message` (and `MessageDetail`) of a SecureVideo error body, made safe to log:
    the `redact` strings masked, control characters blanked, truncated. None when the
    body is not such an object."""
    try:
        data = json.loads(body, parse_int=_parse_int)
    except (RecursionError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("Message"), str):
        return None
    message: str = data["Message"]
    detail = data.get("MessageDetail")
    if isinstance(detail, str) and detail:
        message = f"{message} ({detail})"
    # Mask before cutting, so that no prefix of a secret survives at the cut.
    for secret in redact:
        if secret:
            message = message.replace(secret, "<redacted>")
    message = message[: _MESSAGE_LIMIT + 1]
    printable = "".join(c if c.isprintable() else " " for c in message).strip()
    if len(printable) > _MESSAGE_LIMIT:
        printable = printable[: _MESSAGE_LIMIT - 3] + "..."
    return printable
