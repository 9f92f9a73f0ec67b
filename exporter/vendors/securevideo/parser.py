"""History JSON -> `HistoryRecord`s. Pure: bytes in, records out, only `ParseError` out.

One bad record (a field of the wrong type, an impossible timestamp) is skipped and
counted, so that a single odd session cannot hide all the others; `implausible` says how
many of them carried a number or date outside its plausible range (a WaitTime of 1e308,
NaN or -1, a BillableTs in the year 9999). A reply that is not a JSON array at all fails
as a whole; one with more than `max_records` records is not turned into records
(`over_limit`). Every string is made encodable (`clean_text`): a lone surrogate is valid
JSON but not UTF-8.

Most replies are decoded by msgspec straight into typed records (`_parse_typed`): the
types and ranges below are checked in C. Whatever it does not take (one odd record, a
lone surrogate, NaN, a byte-order mark) is parsed again by the general path, which
decides, skips and counts exactly as it always did.

The month query needs three fields per session, so `MonthCounter` counts a reply as it
streams in, one record at a time, without building records or holding the body.
"""

from __future__ import annotations

import codecs
import json
import operator
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Annotated, Any

import msgspec

from ...errors import ParseError
from ...parseworker import RecordsInPieces
from ...rejections import handed_back, skipped_reason
from ...sanitize import MAX_PLAUSIBLE_SECONDS, clean_text, plausible_epoch, printable

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
# The default for direct callers; the client passes `max_records_per_reply`.
MAX_RECORDS = 100_000
# Minutes a session can last or wait (the plausible range is 0 to 7 days).
_MAX_MINUTES = MAX_PLAUSIBLE_SECONDS / 60


class HistoryRecord(msgspec.Struct, frozen=True, gc=False):
    """One session. A msgspec Struct rather than a dataclass: a tenth of the cost to
    create, and cheap to pickle when a worker process parses the reply."""

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
class HistoryPage(RecordsInPieces):
    """Parsed in the parse worker process, a page travels in pieces so that unpickling it
    never holds the event loop for long."""

    records: tuple[HistoryRecord, ...]
    skipped: int = 0  # every skipped record, implausible ones included
    # The first skipped record's problem, for a debug log line; never contains body text.
    first_problem: str | None = None
    implausible: int = 0  # of `skipped`: a number or date outside its plausible range
    # The record count when it exceeds max_records (max_records + 1 when the decoding
    # stopped at the cap: at least that many).
    over_limit: int | None = None
    # (reason, SessionId) of each skipped record with a usable SessionId, so that the
    # collector counts it once however many replies hold it (`RejectedOnce`).
    rejected_ids: tuple[tuple[str, int], ...] = ()


class _BadRecord(Exception):
    pass


class _Implausible(_BadRecord):
    pass


class _TooMany(Exception):
    """More array elements than the records a reply may hold: decoding stopped there."""


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
        raise ParseError("History reply is not UTF-8, UTF-16 or UTF-32 text") from None
    except ValueError as exc:
        # JSONDecodeError's text names a position, never the body's content.
        raise ParseError(f"History reply is not JSON ({exc})") from None


def _load_fast(body: bytes, max_items: int | None = None) -> Any:
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
        data = _load_items(body, max_items) if len(body) >= ITEMWISE_BYTES else json.loads(body)
    except (RecursionError, ValueError):
        return _load(body)
    return data if isinstance(data, list) else _load(body)


# Replies at least this large are decoded one record at a time (`_load_items`).
ITEMWISE_BYTES = 1 << 20
_PLAIN = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def _load_items(body: bytes, max_items: int | None = None) -> list[Any]:
    """`json.loads` of a JSON array, one element at a time by the same C scanner.

    One `json.loads` of a 20 MB reply holds the GIL for its whole 200 ms, so even in a
    worker thread it stops the event loop (and every scrape) that long; decoding record
    by record hands the GIL back between records. Anything else than a well-formed array
    raises ValueError, and the caller redoes it with `_load` for the exact error. More
    than `max_items` elements raise `_TooMany` there: 16 MiB of `{}` records took 3.6 s
    and 478 MiB to decode whole before the count refused them."""
    text = body.decode("utf-8-sig")
    space = _SPACE.match
    pos = space(text, 0).end()  # type: ignore[union-attr]
    if text[pos : pos + 1] != "[":
        raise ValueError("not an array")
    pos = space(text, pos + 1).end()  # type: ignore[union-attr]
    items: list[Any] = []
    if text[pos : pos + 1] == "]":
        pos += 1
    else:
        while True:
            item, pos = _PLAIN.raw_decode(text, pos)
            items.append(item)
            if max_items is not None and len(items) > max_items:
                raise _TooMany
            pos = space(text, pos).end()  # type: ignore[union-attr]
            char = text[pos : pos + 1]
            if char == "]":
                pos += 1
                break
            if char != ",":
                raise ValueError("records are not separated by commas")
            pos = space(text, pos + 1).end()  # type: ignore[union-attr]
    if space(text, pos).end() != len(text):  # type: ignore[union-attr]
        raise ValueError("text after the array")
    return items


def parse_timestamp(text: str) -> float:
    """UTC seconds since the epoch for a History timestamp; ValueError if malformed.

    A History reply carries two timestamps a record, so the common shapes take a fast
    path (slicing, integer arithmetic, the date part cached); whatever it does not
    accept goes to `_parse_timestamp_strict`, which accepts or rejects it exactly as
    before. The fast path returns only values the strict one would return too.
    """
    end = len(text) - (text[-1:] == "Z")
    if (
        19 <= end <= 27
        and text.isascii()
        and text[13] == ":"
        and text[16] == ":"
        and (end == 19 or text[19] == ".")
    ):
        prefix = text[:11]
        day = _DAYS.get(prefix)
        if day is None:
            day = _day_seconds(prefix)
        clock, fraction = text[11:13] + text[14:16] + text[17:19], text[20:end]
        if day is not None and clock.isdigit() and (end == 19 or (end > 20 and fraction.isdigit())):
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
    if not (
        prefix[4] == prefix[7] == "-"
        and prefix[10] == "T"
        and (prefix[:4] + prefix[5:7] + prefix[8:10]).isdigit()
    ):
        return None
    try:
        day = int(
            datetime(int(prefix[:4]), int(prefix[5:7]), int(prefix[8:10]), tzinfo=UTC).timestamp()
        )
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


def _session_id(value: Any) -> int | None:
    """A SessionId: a whole number of at least 0, as the ids of the other vendors (ASCII
    digits). A negative one was counted as a session (probe 13)."""
    session_id = _int(value, "SessionId")
    if session_id is not None and session_id < 0:
        raise _BadRecord("SessionId is negative")
    return session_id


def _minutes(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if (type(value) is not float and type(value) is not int) or (
        type(value) is int and abs(value) >= _INT_LIMIT
    ):
        raise _BadRecord(f"{name} is not a number")
    if not 0 <= value <= _MAX_MINUTES:  # NaN fails this too
        raise _Implausible(f"{name} is not between 0 and 7 days")
    return float(value)


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        return clean_text(value)
    raise _BadRecord(f"{name} is not a string")


def _time(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if type(value) is not str:
        raise _BadRecord(f"{name} is not a string")
    try:
        when = parse_timestamp(value)
    except (ValueError, OverflowError):
        raise _BadRecord(f"{name} is not a valid UTC timestamp") from None
    if not plausible_epoch(when):
        raise _Implausible(f"{name} is not between the years 2000 and 2100")
    return when


def _record(item: Any) -> HistoryRecord:
    if not isinstance(item, dict):
        raise _BadRecord("is not a JSON object")
    get = item.get
    session_id = _session_id(get("SessionId"))
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


# The checks of `_int` and `_minutes`, as msgspec constraints: a value outside them makes
# the typed decoder give up on the reply, and the general path decides.
_Id = Annotated[int, msgspec.Meta(gt=-_INT_LIMIT, lt=_INT_LIMIT)]
_SessionId = Annotated[int, msgspec.Meta(ge=0, lt=_INT_LIMIT)]
_Minutes = Annotated[float, msgspec.Meta(ge=0, le=_MAX_MINUTES)]


class _Wire(msgspec.Struct, frozen=True, gc=False):
    """A History record as the typed decoder takes it; unknown fields are ignored, as
    `_record` ignores them."""

    SessionId: _SessionId
    ScheduleTs: str | None = None
    BillableTs: str | None = None
    DurationMinutes: _Minutes | None = None
    WaitTime: _Minutes | None = None
    BillableStatusCd: str | None = None
    ScheduleType: str | None = None
    UserId: _Id | None = None
    ReportableMeetingProvider: str | None = None


_TYPED = msgspec.json.Decoder(list[_Wire])
# One getter a field, each read down the whole list: a getter of all nine at once made a
# tuple a record, and 50,000 tuples alive at once set off the garbage collector again
# and again (a fifth of the parse).
_COLUMNS = tuple(map(operator.attrgetter, _Wire.__struct_fields__))


def _parse_typed(body: bytes, max_records: int) -> HistoryPage | None:
    """The common case, at C speed: every record well-formed and plausible. None when
    anything is not (msgspec rejects lone surrogates, NaN and a byte-order mark too),
    and `parse_history` does the whole reply the general way, so that what is skipped,
    counted and reported never depends on which path ran.

    The records are built a column at a time, each step a C loop over the column."""
    try:
        wires = _TYPED.decode(body)
    # ValidationError is a DecodeError. UnicodeDecodeError: msgspec before 0.23 raises it
    # for bytes that are not UTF-8 inside a string (0.18.0-0.22.0; 0.23.0 raises DecodeError).
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if len(wires) > max_records:
        return HistoryPage((), over_limit=len(wires))
    if not wires:
        return HistoryPage(())
    ids, schedules, billables, durations, waits, statuses, kinds, users, providers = (
        list(map(column, wires)) for column in _COLUMNS
    )
    try:
        schedule_ts, billable_ts = stamp_column(schedules), stamp_column(billables)
    except (ValueError, OverflowError):
        return None
    if not (_plausible_column(schedule_ts) and _plausible_column(billable_ts)):
        return None
    # Statuses, types and providers are a handful of values: one string object each, so
    # that a page of 50,000 records is a third fewer objects to build, send and free.
    texts: dict[str | None, str | None] = {None: None}
    text = texts.setdefault
    return HistoryPage(
        tuple(
            map(
                HistoryRecord,
                ids,
                schedule_ts,
                billable_ts,
                durations,
                waits,
                map(text, statuses, statuses),
                map(text, kinds, kinds),
                users,
                map(text, providers, providers),
            )
        )
    )


def _plausible_column(stamps: Sequence[float | None]) -> bool:
    present = [stamp for stamp in stamps if stamp is not None]
    return not present or (plausible_epoch(min(present)) and plausible_epoch(max(present)))


# -- a column of timestamps at once ---------------------------------------------------

_EPOCH = datetime(1970, 1, 1)  # naive, as `fromisoformat` reads these shapes
_AS_ZERO = str.maketrans("123456789", "000000000")
# The shapes `datetime.fromisoformat` reads exactly as `parse_timestamp` does: no zone,
# at most six fractional digits (it drops a seventh). Anything else, a "Z" included,
# goes through `parse_timestamp` one value at a time.
_ISO_SHAPES = frozenset(
    ["0000-00-00T00:00:00", *("0000-00-00T00:00:00." + "0" * n for n in range(1, 7))]
)


def stamp_column(texts: Sequence[str | None]) -> list[float | None]:
    """`parse_timestamp` of each text, None kept as None; ValueError if one is malformed.

    A History page carries two timestamps a record, and one Python call each was a
    third of its parse. When every text has one of `_ISO_SHAPES`, the column is read by
    `datetime.fromisoformat` in a C loop instead; that is the same float, because both
    are one exact division of the same number of ticks. Hour 24 is left to
    `parse_timestamp`, which refuses it (newer Pythons read it as the next midnight)."""
    present = [text for text in texts if text is not None]
    joined = "\n".join(present)
    if (
        joined.isascii()
        and joined.count("\n") == len(present) - 1
        and "T24" not in joined
        and _ISO_SHAPES.issuperset(joined.translate(_AS_ZERO).split("\n"))
    ):
        seconds: list[float] = list(
            map(
                timedelta.total_seconds,
                map(operator.sub, map(datetime.fromisoformat, present), repeat(_EPOCH)),
            )
        )
    else:
        seconds = list(map(parse_timestamp, present))
    if len(present) == len(texts):
        whole: list[float | None] = list(seconds)
        return whole
    values = iter(seconds)
    return [None if text is None else next(values) for text in texts]


def parse_history(body: bytes, max_records: int = MAX_RECORDS) -> HistoryPage:
    """Parse a History JSON reply: an array of session objects."""
    typed = _parse_typed(body, max_records)
    if typed is not None:
        return typed
    return _parse_general(body, max_records)


def too_many_containers(body: bytes, max_records: int) -> bool:
    """Whether `body` holds more JSON objects and arrays (by its `{` and `[`, strings
    included) than a reply of `max_records` records can: each record is one flat object,
    in one array. 16 MiB of `{}` records, flat or nested in one record, took 0.9-3.6 s
    and 480 MiB to decode before the record count refused them. Only the general path
    asks (12 ms for 12 MB): the typed decoder skips unknown fields without building
    them and stops at the first record it cannot take. Bodies under `ITEMWISE_BYTES`
    cannot hold enough to matter and are not scanned."""
    if len(body) < ITEMWISE_BYTES:
        return False
    return body.count(b"{") + body.count(b"[") > 2 * max_records + 1


# An array of arrays (or of numbers...) is no History reply: read as one of skipped
# records, it was a success that emptied every gauge (probe 13).
_NO_RECORDS = "History reply is an array of {} items, none of them a JSON object (a record)"


def _parse_general(body: bytes, max_records: int = MAX_RECORDS) -> HistoryPage:
    """Record by record, each bad one skipped and counted, with the first problem."""
    if too_many_containers(body, max_records):
        return HistoryPage((), over_limit=max_records + 1)  # at least
    try:
        data = _load_fast(body, max_records)
    except _TooMany:
        return HistoryPage((), over_limit=max_records + 1)  # at least
    if not isinstance(data, list):
        raise ParseError(f"History reply is a JSON {type(data).__name__}, not an array")
    if len(data) > max_records:
        return HistoryPage((), over_limit=len(data))
    if data and not any(isinstance(item, dict) for item in data):
        raise ParseError(_NO_RECORDS.format(len(data)))
    records: list[HistoryRecord] = []
    skipped, implausible, first_problem = 0, 0, None
    rejected: list[tuple[str, int]] = []
    for index, item in enumerate(data):
        try:
            records.append(_record(item))
        except _BadRecord as exc:
            skipped += 1
            implausible += isinstance(exc, _Implausible)
            _note_rejected(rejected, exc, item)
            if first_problem is None:
                first_problem = f"record {index}: {exc}"
    return HistoryPage(
        tuple(records), skipped, first_problem, implausible, rejected_ids=handed_back(rejected)
    )


def _note_rejected(rejected: list[tuple[str, int]], exc: _BadRecord, item: Any) -> None:
    """Add a skipped record's reason and SessionId, if it has a usable one."""
    if not isinstance(item, dict):
        return
    try:
        session_id = _int(item.get("SessionId"), "SessionId")
    except _BadRecord:
        return
    if session_id is not None:
        rejected.append((skipped_reason(isinstance(exc, _Implausible)), session_id))


# -- the month query: counted as it streams ---------------------------------------------

_WHITESPACE = re.compile(r"[ \t\n\r]*")
# One History record is a few hundred characters; a "record" this long is no record.
MAX_RECORD_CHARS = 1 << 20
# A 200 carrying an error object instead of the array is read up to this size.
_MAX_ERROR_OBJECT = 65536
# Status codes longer than this are cut, and more distinct ones than this in one month
# is no billing system but a hostile reply. Longer than the longest label value (1,024)
# by more than any credential: the label is scrubbed whole and then cut, and a
# credential this cut split (here, in the parse worker, which knows none) lies beyond.
_MAX_STATUS_CHARS = 2048
MAX_STATUSES = 1024


@dataclass(frozen=True)
class MonthCounts:
    """Distinct sessions with a BillableTs in a month reply, by BillableStatusCd (None
    when null or absent), the last row of a session winning."""

    counts: dict[str | None, int] = field(default_factory=dict)
    skipped: int = 0
    implausible: int = 0
    first_problem: str | None = None
    over_limit: int | None = None  # more distinct sessions than max_sessions
    vendor_message: str | None = None  # the `Message` of a 200 that carried an error
    rejected_ids: tuple[tuple[str, int], ...] = ()  # as `HistoryPage.rejected_ids`


class MonthCounter:
    """Counts a month reply chunk by chunk: each record is decoded (by the C JSON
    scanner), its SessionId, BillableTs and BillableStatusCd checked exactly as
    `parse_history` checks them, and dropped. Memory is one chunk, one record and a
    SessionId -> status map of at most `max_sessions` entries; `feed` raises only
    `ParseError`."""

    def __init__(self, max_sessions: int, latest: float | None = None) -> None:
        self.max_sessions = max_sessions
        # A BillableTs after this is implausible, as the feed finds it (its now and a
        # day): the month counted sessions billed next year that the feed skipped.
        self.latest = latest
        # Made once the first four bytes tell the encoding, as `json.loads` tells it
        # (`parse_history`): a UTF-16 or UTF-32 reply was read by the feed and refused
        # here, so the month gauges stood still.
        self._decoder: codecs.IncrementalDecoder | None = None
        self._head = b""
        self._json = json.JSONDecoder(parse_int=_parse_int)
        self._buffer = ""
        # An unfinished record is decoded again once it is this long: twice what the last
        # try saw, so a record arriving in tiny chunks costs a few tries, not one a chunk
        # (each from the record's start: quadratic, 0.3 s for 1 MiB in 1 KiB chunks).
        self._retry_at = 0
        self._waiting: list[str] = []  # text come since, not yet joined to `_buffer`
        self._waiting_chars = 0
        self._state = "start"  # start, first, item, sep, end, object, over
        self._index = 0
        self._objects = 0  # items that were JSON objects
        self._status: dict[int, str | None] = {}
        self._statuses: dict[str, str] = {}
        self._skipped = self._implausible = 0
        self._first_problem: str | None = None
        self._rejected: list[tuple[str, int]] = []

    @property
    def over_limit(self) -> bool:
        return self._state == "over"

    def feed(self, chunk: bytes) -> None:
        if self._state == "over":
            return
        text = self._decode(chunk, final=False)
        self._waiting.append(text)
        self._waiting_chars += len(text)
        if len(self._buffer) + self._waiting_chars < self._retry_at:
            return  # joined later, once: joined a chunk at a time, copying was quadratic
        self._join_waiting()
        self._scan(final=False)

    def _join_waiting(self) -> None:
        self._buffer += "".join(self._waiting)
        self._waiting.clear()
        self._waiting_chars = 0

    def finish(self) -> MonthCounts:
        if self._state == "over":
            return MonthCounts(over_limit=len(self._status))
        self._join_waiting()
        self._buffer += self._decode(b"", final=True)
        self._scan(final=True)
        if self._state == "object":
            message = parse_error_message(self._buffer.encode("utf-8", "surrogatepass"))
            if message is None:
                raise ParseError("History reply is a JSON object, not an array")
            return MonthCounts(vendor_message=message)
        if self._state == "start":
            raise ParseError("History reply is empty")
        if self._state != "end":
            raise ParseError("History reply ends before its closing ]")
        if self._index and not self._objects:
            raise ParseError(_NO_RECORDS.format(self._index))
        counts: dict[str | None, int] = {}
        for status in self._status.values():
            counts[status] = counts.get(status, 0) + 1
        return MonthCounts(
            counts,
            self._skipped,
            self._implausible,
            self._first_problem,
            rejected_ids=handed_back(self._rejected),
        )

    def _decode(self, chunk: bytes, final: bool) -> str:
        if self._decoder is None:
            self._head += chunk
            if len(self._head) < 4 and not final:
                return ""
            encoding = json.detect_encoding(self._head)
            # `surrogatepass`, as `json.loads` decodes: a lone surrogate is read (and made
            # encodable where a string is taken, `_text`), not refused.
            self._decoder = codecs.getincrementaldecoder(encoding)("surrogatepass")
            chunk, self._head = self._head, b""
        try:
            return self._decoder.decode(chunk, final)
        except UnicodeDecodeError:
            raise ParseError("History reply is not UTF-8, UTF-16 or UTF-32 text") from None

    def _scan(self, final: bool) -> None:  # noqa: C901 - one scanner loop, its states side by side
        text, pos, state = self._buffer, 0, self._state
        size = len(text)
        while state not in ("object", "over"):
            pos = _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]
            if pos >= size:
                break
            char = text[pos]
            if state == "start":
                if char == "[":
                    state, pos = "first", pos + 1
                    continue
                if char == "{":
                    state = "object"
                    break
                raise ParseError("History reply is not a JSON array")
            if state == "end":
                raise ParseError("History reply goes on after its closing ]")
            if char == "]" and state in ("first", "sep"):
                state, pos = "end", pos + 1
                continue
            if state == "sep":
                if char != ",":
                    raise ParseError("History records are not separated by commas")
                state, pos = "item", pos + 1
                continue
            if not final and size - pos < self._retry_at:
                break  # the rest of the record is still on its way
            try:
                item, end = self._json.raw_decode(text, pos)
            except RecursionError:
                raise ParseError(f"History record {self._index} is nested too deeply") from None
            except ValueError:
                if final:
                    raise ParseError(f"History record {self._index} is not JSON") from None
                if size - pos > MAX_RECORD_CHARS:
                    # Valid JSON, maybe, but no History record is that long: said so,
                    # where "is not JSON" sent a reader looking for a syntax error.
                    raise ParseError(
                        f"History record {self._index} does not end within "
                        f"{MAX_RECORD_CHARS >> 20} MiB (the month query's bound of a record)"
                    ) from None
                self._retry_at = min(2 * (size - pos), MAX_RECORD_CHARS + 1)
                break  # the rest of the record is still on its way
            if end >= size and not final:
                self._retry_at = size - pos + 1
                break  # a number may go on in the next chunk: decode it again then
            self._retry_at = 0
            self._count(item)
            state, pos = "sep", end
            if len(self._status) > self.max_sessions:
                state = "over"
        self._state = state
        if state == "object":
            if size - pos > _MAX_ERROR_OBJECT:
                raise ParseError("History reply is a JSON object, not an array")
            self._buffer = text[pos:]
        elif state == "over":
            self._buffer = ""
        else:
            self._buffer = text[pos:]

    def _count(self, item: Any) -> None:
        index = self._index
        self._index += 1
        try:
            if not isinstance(item, dict):
                raise _BadRecord("is not a JSON object")
            self._objects += 1
            session_id = _session_id(item.get("SessionId"))
            if session_id is None:
                raise _BadRecord("has no SessionId")
            billable = _time(item.get("BillableTs"), "BillableTs")
            status = _text(item.get("BillableStatusCd"), "BillableStatusCd")
            if billable is not None and self.latest is not None and billable > self.latest:
                raise _Implausible("BillableTs more than a day after now")
        except _BadRecord as exc:
            self._skipped += 1
            self._implausible += isinstance(exc, _Implausible)
            _note_rejected(self._rejected, exc, item)
            if self._first_problem is None:
                self._first_problem = f"record {index}: {exc}"
            return
        if billable is None:
            return  # never connected: not a session of the month
        if status is not None:
            status = status[:_MAX_STATUS_CHARS]
            known = self._statuses.get(status)
            if known is None:
                if len(self._statuses) >= MAX_STATUSES:
                    raise ParseError(
                        f"more than {MAX_STATUSES} distinct BillableStatusCd values in one month"
                    )
                known = self._statuses[status] = status
            status = known
        self._status[session_id] = status


def count_month(
    body: bytes, max_sessions: int = 1_000_000, latest: float | None = None
) -> MonthCounts:
    """A whole month reply counted at once (tests, tools)."""
    counter = MonthCounter(max_sessions, latest)
    counter.feed(body)
    return counter.finish()


def parse_error_message(body: bytes) -> str | None:
    """The `Message` (and `MessageDetail`) of a SecureVideo error body, made safe to log:
    every known secret masked, control characters blanked, truncated. None when the
    body is not such an object, or larger than any error object (decoded whole, 16 MiB of
    integers held the event loop for 1.3 s, every cycle)."""
    if len(body) > _MAX_ERROR_OBJECT:
        return None
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
    # Scrubbed before it is cut, so that no prefix of a secret survives at the cut: every
    # configured secret in every encoding, the Basic token too (`scrub.register_basic`).
    message = printable(message).strip()
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3] + "..."
    return message
