"""History JSON -> `HistoryRecord`s. Pure: bytes in, records out, only `ParseError` out.

One bad record (a field of the wrong type, an impossible timestamp) is skipped and
counted, so that a single odd session cannot hide all the others; a reply that is not a
JSON array at all fails as a whole.
"""

from __future__ import annotations

import json
import math
import re
import sys
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
# The same bound as a magnitude, for integers json converted itself (see `_load_fast`).
_INT_LIMIT = 10**_MAX_INT_DIGITS
# With CPython's own cap on integer literals at most this long (the default is 4300),
# letting json convert integers itself costs microseconds even for hostile input.
_SAFE_INT_MAX_STR_DIGITS = 10_000
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


def _load_fast(body: bytes) -> Any:
    """`_load` without the `parse_int` hook, which costs a Python call per integer (a
    third of the bare `json.loads` time on a History reply).

    Used only where the result is provably the same: every integer the records use is
    range-checked against `_INT_LIMIT` in `_int`/`_minutes`, which is what the hook's
    digit count decides, and anything unusual (a JSON error, an integer over CPython's
    digit cap, a non-array reply whose error message names the type) is redone by
    `_load`, which decides and words it exactly as before.
    """
    limit = sys.get_int_max_str_digits()
    if limit == 0 or limit > _SAFE_INT_MAX_STR_DIGITS:
        return _load(body)  # uncapped integers: only the hook keeps json linear
    try:
        data = json.loads(body)
    except (RecursionError, ValueError):
        return _load(body)
    return data if isinstance(data, list) else _load(body)


def parse_timestamp(text: str) -> float:
    """UTC seconds since the epoch for a History timestamp; ValueError if malformed.

    A History reply carries two timestamps a record, so the common shapes take a fast
    path (slicing, integer arithmetic, the date part cached); whatever it does not
    accept goes to `_parse_timestamp_strict`, which accepts or rejects it exactly as
    before. The fast path returns only values the strict one would return too.
    """
    end = len(text) - (text[-1:] == "Z")
    if (
        19 <= end <= 27 and text.isascii()
        and text[13] == ":" and text[16] == ":" and (end == 19 or text[19] == ".")
    ):
        prefix = text[:11]
        day = _DAYS.get(prefix)
        if day is None:
            day = _day_seconds(prefix)
        clock, fraction = text[11:13] + text[14:16] + text[17:19], text[20:end]
        if (day is not None and clock.isdigit()
                and (end == 19 or (end > 20 and fraction.isdigit()))):
            hhmmss = int(clock)
            hour, minute, second = hhmmss // 10000, hhmmss // 100 % 100, hhmmss % 100
            if hour < 24 and minute < 60 and second < 60:
                whole = day + hour * 3600 + minute * 60 + second
                return (whole * 10**7 + int(fraction.ljust(7, "0"))) / 10**7
    return _parse_timestamp_strict(text)


# "yyyy-mm-ddT" -> UTC midnight, for the fast path. Cleared when full, so a hostile reply
# with many distinct dates costs only cache misses, never memory.
_DAYS: dict[str, int] = {}
_DAYS_MAX = 1024


def _day_seconds(prefix: str) -> int | None:
    """UTC midnight of a "yyyy-mm-ddT" prefix (ASCII already checked), None if it is not
    one or names no real day (the strict path then raises)."""
    if not (prefix[4] == prefix[7] == "-" and prefix[10] == "T"
            and (prefix[:4] + prefix[5:7] + prefix[8:10]).isdigit()):
        return None
    try:
        day = int(datetime(int(prefix[:4]), int(prefix[5:7]), int(prefix[8:10]),
                           tzinfo=UTC).timestamp())
    except (ValueError, OverflowError):
        return None
    if len(_DAYS) >= _DAYS_MAX:
        _DAYS.clear()
    _DAYS[prefix] = day
    return day


def _parse_timestamp_strict(text: str) -> float:
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError("not a yyyy-mm-ddThh:mm:ss[.fffffff] timestamp")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    whole = int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())
    # One exact division (rather than whole + fraction) rounds once, so "…16.1" is the
    # same float as 1478209576100 / 1000 computed anywhere else.
    ticks = whole * 10**7 + int((match.group(7) or "").ljust(7, "0"))
    return ticks / 10**7


# The field checks take the value rather than the record (one dict lookup a field), and
# test `type(...) is` first: json only ever makes exact ints, floats, strs and dicts, and
# the isinstance chain is the slow path for the rare odd value.


def _int(value: Any, name: str) -> int | None:
    if type(value) is int and -_INT_LIMIT < value < _INT_LIMIT:
        return value
    if value is None:
        return None
    # A bool is an int to isinstance; an over-long integer (see `_load_fast`) is no id.
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= _INT_LIMIT:
        raise _BadRecord(f"{name} is not a whole number")
    return value


def _minutes(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if ((type(value) is not float and type(value) is not int)
            or (type(value) is int and abs(value) >= _INT_LIMIT)):
        raise _BadRecord(f"{name} is not a number")
    if not math.isfinite(value) or value < 0:
        raise _BadRecord(f"{name} is not a finite, non-negative number")
    return float(value)


def _text(value: Any, name: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise _BadRecord(f"{name} is not a string")


def _time(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if type(value) is not str:
        raise _BadRecord(f"{name} is not a string")
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError):
        raise _BadRecord(f"{name} is not a valid UTC timestamp") from None


def _record(item: Any) -> HistoryRecord:
    if not isinstance(item, dict):
        raise _BadRecord("is not a JSON object")
    get = item.get
    session_id = _int(get("SessionId"), "SessionId")
    if session_id is None:
        raise _BadRecord("has no SessionId")
    # Keyword order is the check order: a record's first problem is the one reported.
    return HistoryRecord(
        session_id=session_id,
        schedule_ts=_time(get("ScheduleTs"), "ScheduleTs"),
        billable_ts=_time(get("BillableTs"), "BillableTs"),
        duration_minutes=_minutes(get("DurationMinutes"), "DurationMinutes"),
        wait_minutes=_minutes(get("WaitTime"), "WaitTime"),
        billable_status=_text(get("BillableStatusCd"), "BillableStatusCd"),
        schedule_type=_text(get("ScheduleType"), "ScheduleType"),
        user_id=_int(get("UserId"), "UserId"),
        provider=_text(get("ReportableMeetingProvider"), "ReportableMeetingProvider"),
    )


def parse_history(body: bytes) -> HistoryPage:
    """Parse a History JSON reply: an array of session objects."""
    data = _load_fast(body)
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
