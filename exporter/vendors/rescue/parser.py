"""getSession and login replies: bytes in, records out. Pure; raises only `ParseError`.

A getSession reply is a status token (``OK``, ``NOTLOGGEDIN`` ...) and, after ``OK``, a
pipe-delimited table: a header row then data rows, every row ending with ``|``. Real
replies put each row on its own line; the vendor's own doc sample shows one logical
record wrapped across lines at arbitrary points. Both are read, see `_rows`.

The SOAP API (`getSession_V3` on API.asmx) answers the same sessions as XML, read with the
project's one hardened parser (`parse_soap_sessions`) into the same records, its
language-independent ``bStatus`` mapped to the doc's English statuses.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from itertools import repeat
from operator import add, itemgetter
from typing import cast

import msgspec
from lxml import etree

from ...errors import ParseError
from ...parseworker import RecordsInPieces
from ...rejections import handed_back
from ...sanitize import (
    MAX_DIGITS,
    MAX_PLAUSIBLE_SECONDS,
    clean_text,
    plausible_epoch,
    plausible_seconds,
    strict_int,
)
from ...xmlsafe import parse_xml
from .statuses import (
    API_NAMESPACE,
    GET_SESSION_CODES,
    LEAD_VALUES,
    LOGIN_CODES,
    OK,
    SOAP11_NAMESPACE,
    SOAP12_NAMESPACE,
    SOAP_GET_SESSION_CODES,
    SOAP_LOGIN_CODES,
    SOAP_STATUSES,
)

_TOKEN = re.compile(r"\A\s*([A-Z][A-Z_]*)(?=\s|\Z)")
_DIGITS = re.compile(r"\A[0-9]+\Z")
# The doc's getSession_v3 header has 19 columns. A header of millions (a hostile reply of
# `ab|` repeated) took 1-5 s and hundreds of MiB to refuse, read field by field.
MAX_COLUMNS = 256
# The longest return value quoted in an error: the documented ones are shorter.
_QUOTED_TOKEN = 40
_START = re.compile(
    r"\A(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?\Z"
)

# Every column name of getSession, _v2 and _v3, normalised; used to tell a header that
# wrapped onto the next line from a data row (whose first field is a numeric session ID).
KNOWN_COLUMNS = frozenset(
    {
        "id",
        "status",
        "entryid",
        "entry",
        "technicianid",
        "technician",
        "starttime",
        "waitingtime",
        "language",
        "transferredto",
        "transferredcomment",
        "isleadtechnician",
        "handingoff",
    }
    | {f"customfield{i}" for i in range(6)}
)


class Session(msgspec.Struct, frozen=True, gc=False):
    """One row of the table (or one SESSION_V3). A msgspec Struct, as SecureVideo's
    records: a reply makes one per row, and a frozen dataclass costs about eight times as
    much to build (2 us a row, more than the bare `str.split` of the whole table), a
    named tuple four times; unpickled from the parse worker in a quarter of a named
    tuple's time; and untracked by the garbage collector, whose full collections over
    100,000 tracked rows stopped the loop for 50-120 ms."""

    id: str
    status: str
    channel_id: str = ""
    channel: str = ""
    technician_id: str = ""
    technician: str = ""
    start_time: float | None = None
    # Seconds since the session's last status change; None when the vendor left it empty.
    waiting_seconds: int | None = None
    # `Is Lead Technician` / `bIsLead`: one session has a row per technician.
    is_lead: bool = False


@dataclass(frozen=True)
class SessionList(RecordsInPieces):
    """From the parse worker process it travels in pieces: a 100,000-row reply took
    0.45 s to unpickle whole, on the event loop."""

    RECORDS = "sessions"
    PIECE = 1500  # about 0.7 us a row to unpickle

    code: str
    sessions: tuple[Session, ...] = ()
    columns: tuple[str, ...] = ()
    # Rows whose field count differs from the header's (a `|` or line break in a free-text
    # field): skipped, because their columns can no longer be trusted.
    shifted_rows: int = 0
    # Rows of the right width without a numeric ID or with an empty Status: skipped.
    invalid_records: int = 0
    # Unreadable Waiting Time or Start Time: the row is kept, the value is unknown.
    invalid_values: int = 0
    # Waiting Time beyond a week, Start Time outside 2000-2100: the row is kept, the value
    # dropped.
    implausible_values: int = 0
    # (reason, ID) of each of the above whose row has a numeric ID, so that the collector
    # counts it once however many polls return it (`RejectedOnce`).
    rejected_ids: tuple[tuple[str, str], ...] = ()


class TooManyRows(ParseError):
    """The reply lists more sessions than the configured `max_records_per_reply`."""


def parse_sessions(body: bytes, zone: tzinfo = UTC, max_rows: int | None = None) -> SessionList:
    text = _decode(body)
    code, rest = _status(text, GET_SESSION_CODES)
    if code != OK:
        return SessionList(code)
    header, rows, shifted = _rows(rest, max_rows)
    if not header:
        # An empty list still has its header row (the doc's grammar; public clients see
        # `OK` and the header). A reply that stops after `OK` was cut short, and read
        # as no sessions it would end every Waiting session and zero every gauge.
        raise ParseError("reply ends after OK, without the table header (truncated?)")
    return _sessions(header, rows, shifted, zone)


def _shifted_ids(header: list[str], shifted: list[list[str]]) -> list[tuple[str, str]]:
    """("shifted_row", ID) of each shifted row with a numeric ID, where the ID is the
    first column (as in every real header): no field before it can have shifted it."""
    if not shifted or _norm(header[0]) != "id":
        return []
    numbers = (canonical_id(row[0]) for row in shifted)
    return [("shifted_row", number) for number in numbers if number is not None]


def parse_login(body: bytes) -> str:
    """The return value of login.aspx (OK, INVALID, LIMITREACHED, ERROR ...)."""
    code, _ = _status(_decode(body), LOGIN_CODES)
    return code


def parse_start_time(text: str, zone: tzinfo) -> float | None:
    """``M/d/yyyy h:mm AM/PM`` (seconds and a 24-hour clock tolerated) in `zone`."""
    match = _START.match(text.strip())
    if match is None:
        return None
    month, day, year, hour, minute = (int(g) for g in match.groups()[:5])
    second = int(match.group(6) or 0)
    meridiem = (match.group(7) or "").upper()
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "PM" else 0)
    if _is_utc(zone):
        # A row each: UTC needs no zone rules, so the date is looked up once a day and
        # the time added as integers; the same checks as `datetime`, the same float.
        midnight = _utc_midnight(year, month, day)
        if midnight is None or hour > 23 or minute > 59 or second > 59:
            return None
        return float(midnight + hour * 3600 + minute * 60 + second)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=zone).timestamp()
    except ValueError:
        return None


# ZoneInfo names of UTC itself (the config's default timezone is ZoneInfo("UTC")).
_UTC_KEYS = frozenset({"UTC", "Etc/UTC"})


def _is_utc(zone: tzinfo) -> bool:
    """Whether Start Times in `zone` may take the quick UTC readings."""
    return zone is UTC or getattr(zone, "key", None) in _UTC_KEYS


# (year, month, day) -> UTC midnight, or None for no such day. Cleared when full, so odd
# replies with many distinct dates cost only misses, never memory.
_MIDNIGHTS: dict[tuple[int, int, int], int | None] = {}
_MIDNIGHTS_MAX = 1024


# The shape nearly every Start Time has, ``2/14/2026 3:05 PM``, read without a regex:
# each valid ``h:mm AM`` clock (hour with or without its leading zero) -> seconds after
# midnight, and each date string already met -> its UTC midnight.
_CLOCK_SECONDS = {
    f"{hour_text}:{minute:02d} {meridiem}": (hour % 12 + (12 if meridiem == "PM" else 0)) * 3600
    + minute * 60
    for hour in range(1, 13)
    for hour_text in {str(hour), f"{hour:02d}"}
    for minute in range(60)
    for meridiem in ("AM", "PM")
}
_DATES: dict[str, int | None] = {}


def quick_utc_start(text: str) -> float | None:
    """`parse_start_time(text, UTC)` for the common shape, else None: then (and for an
    impossible date) the caller asks `parse_start_time`, the one that decides."""
    date, _, clock = text.partition(" ")
    seconds = _CLOCK_SECONDS.get(clock)
    if seconds is None:
        return None
    try:
        midnight = _DATES[date]
    except KeyError:
        midnight = _DATES[date] = _date_midnight(date)
        if len(_DATES) >= _MIDNIGHTS_MAX:
            _DATES.clear()
    return None if midnight is None else float(midnight + seconds)


def quick_utc_starts(texts: list[str]) -> list[float | None] | None:
    """`quick_utc_start` of each text, a column at a time (every step a C loop); None
    unless every text has the common shape and names a real day. Texts read before, by
    any reply, are looked up: a poll's sessions are mostly the last poll's."""
    remembered = list(map(_STARTS.get, texts))
    if None not in remembered:
        return remembered
    missing = [text for text, value in zip(texts, remembered, strict=True) if value is None]
    read = _read_utc_starts(missing)
    if read is None:
        return None
    # Parse threads share the memo: each reply reads only its own lists, and an entry
    # another thread clears meanwhile is only read again next time.
    if len(missing) <= _STARTS_MAX:  # a reply with more is not remembered at all
        if len(_STARTS) + len(missing) > _STARTS_MAX:
            _STARTS.clear()
        _STARTS.update(zip(missing, cast(list[float], read), strict=True))
    new = iter(read)
    return [next(new) if value is None else value for value in remembered]


# Start Time text -> its UTC reading, for the texts of the common shape: 11 days of
# minutes (5 if each comes in both hour forms); cleared when full.
_STARTS: dict[str, float] = {}
_STARTS_MAX = 16_384


def _read_utc_starts(texts: list[str]) -> list[float | None] | None:
    parts = list(map(str.partition, texts, repeat(" ")))
    seconds = list(map(_CLOCK_SECONDS.get, map(itemgetter(2), parts)))
    if None in seconds:
        return None
    dates = list(map(itemgetter(0), parts))
    # Read from a dict of this reply's own: `_DATES` is shared by parse threads, and
    # another one may clear it between filling and reading (a KeyError).
    known = _DATES.copy()
    for date in set(dates).difference(known):
        known[date] = _DATES[date] = _date_midnight(date)
    midnights = list(map(known.__getitem__, dates))
    if len(_DATES) >= _MIDNIGHTS_MAX:
        _DATES.clear()
    if None in midnights:
        return None
    return list(map(float, map(add, midnights, seconds)))


def _date_midnight(date: str) -> int | None:
    """The UTC midnight of an ASCII ``M/d/yyyy`` date, None for any other text."""
    parts = date.split("/")
    if len(parts) != 3 or not (date.isascii() and "".join(parts).isdigit()):
        return None
    month, day, year = parts
    if not (1 <= len(month) <= 2 and 1 <= len(day) <= 2 and len(year) == 4):
        return None
    return _utc_midnight(int(year), int(month), int(day))


def _utc_midnight(year: int, month: int, day: int) -> int | None:
    key = (year, month, day)
    try:
        return _MIDNIGHTS[key]
    except KeyError:
        pass
    try:
        midnight: int | None = int(datetime(year, month, day, tzinfo=UTC).timestamp())
    except ValueError:
        midnight = None
    if len(_MIDNIGHTS) >= _MIDNIGHTS_MAX:
        _MIDNIGHTS.clear()
    _MIDNIGHTS[key] = midnight
    return midnight


def _decode(body: bytes) -> str:
    if body[:4] in (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE):
        # Before UTF-16's: the UTF-32 LE mark begins with UTF-16 LE's.
        text = body.decode("utf-32", errors="replace")
    elif body[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        # A UTF-16 reply (an IIS setting away): read it rather than call it garbage.
        text = body.decode("utf-16", errors="replace")
    else:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Older ASP.NET deployments answer in the Windows code page.
            text = body.decode("cp1252", errors="replace")
    # NUL never belongs in a status line or a label; anything unencodable is made so.
    return clean_text(text.replace("\x00", "\ufffd"))


def _status(text: str, codes: frozenset[str]) -> tuple[str, str]:
    match = _TOKEN.match(text)
    if match is None:
        raise ParseError("reply does not start with a return value")
    code = match.group(1)
    if code not in codes:
        # A long one is not quoted: cut, a secret straddling the cut was shown in part (a
        # password of capitals, which the token pattern takes in), and the parse worker
        # that may read it knows no secret to scrub. Whole, it is scrubbed where shown.
        quoted = repr(code) if len(code) <= _QUOTED_TOKEN else f"of {len(code)} characters"
        raise ParseError(f"unknown return value {quoted}")
    return code, text[match.end() :]


# What `str.splitlines` also takes for a line end, beyond CR, LF and CRLF.
_OTHER_LINE_ENDS = "\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def _lines(rest: str) -> list[str]:
    """`rest` split at CR, LF and CRLF, and nowhere else: a free-text field may hold a
    form feed or U+2028. `splitlines` when it can be (0.27 ms for 5,000 rows, against
    1.1 ms for the two `replace`s and `split`), eight `in` scans (each a `memchr`) to
    know."""
    if any(map(rest.__contains__, _OTHER_LINE_ENDS)):
        return rest.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return rest.splitlines()


def _logical_lines(rest: str) -> list[str]:
    lines = _lines(rest)
    # `map` and `filter` over str methods: per line in C, for a reply of 100,000 rows.
    # Any trailing white space, a no-break space too: after the final `|` it carries
    # nothing, and left there it made the reply look cut short.
    lines = list(filter(str.strip, map(str.rstrip, lines)))
    if not lines:
        return []
    lines[0] = lines[0].lstrip()
    if not lines[-1].endswith("|"):
        # Without a final `|` the list was cut short; counting the rows that did arrive
        # would report vanished sessions that still exist.
        raise ParseError("reply ends inside a row (truncated?)")
    if all(map(str.endswith, lines, repeat("|"))):
        return lines
    # A line that does not end with `|` continues in the next one: a line break inside a
    # free-text field (the text is not escaped).
    # The pieces of a row are joined once it ends: joined line by line, a row spread
    # over many lines cost time quadratic in its length (a 625 KiB one took 2.1 s).
    logical: list[str] = []
    pending: list[str] = []
    for line in lines:
        pending.append(line)
        if line.endswith("|"):
            logical.append("\n".join(pending))
            pending = []
    return logical


def _fields(line: str) -> list[str]:
    return line[:-1].split("|")


def _norm(name: str) -> str:
    return "".join(name.split()).casefold()


def _check_rows(count: int, max_rows: int | None) -> None:
    if max_rows is not None and count > max_rows:
        raise TooManyRows(f"{count} session rows, more than max_records_per_reply ({max_rows})")


def _rows(
    rest: str, max_rows: int | None = None
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(header, rows of the header's width, rows skipped as shifted)."""
    lines = _logical_lines(rest)
    if not lines:
        return [], [], []
    _check_rows(len(lines) - 1, max_rows)
    if lines[0].count("|") > MAX_COLUMNS:
        raise ParseError(f"table header has more than {MAX_COLUMNS} columns")
    first = _fields(lines[0])
    # Split no further than one field past the header's width: enough to tell (below),
    # and a row of 16 MiB of `|`s became 5.6 million strings (550 MB in the worker).
    width = len(first)
    if len(lines) > 1 and _wraps(first, lines[1][:-1].split("|", width)):
        return _wrapped_rows(lines, max_rows)
    # One row per line: a shifted row is detected by its width and costs only itself.
    # A missing final line end is accepted: the doc's own sample has none, and a reply
    # cut short in transit is caught below us (Content-Length, chunked framing); one
    # with neither is warned of (`RescueClient._unframed`).
    rows = [line[:-1].split("|", width) for line in lines[1:]]  # `_fields`, inline
    if set(map(len, rows)) <= {width}:
        return first, rows, []
    good = [row for row in rows if len(row) == width]
    return first, good, [row for row in rows if len(row) != width]


def _wraps(first: list[str], second: list[str]) -> bool:
    """Whether the header goes on in the second line (the doc sample's shape): it begins
    with a column name, and is not the header again (a repeated header is a row with
    no numeric ID, skipped and counted as such)."""
    return _norm(second[0]) in KNOWN_COLUMNS and list(map(_norm, second)) != list(map(_norm, first))


def _wrapped_rows(
    lines: list[str], max_rows: int | None = None
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    # The doc sample's shape: line ends carry no meaning, so the fields are read as one
    # stream; the header ends where the first numeric session ID begins.
    header = _wrapped_header(lines)
    width = len(header)
    if not width:  # a session ID before any column name: rows of no width
        raise ParseError("wrapped table has no header before its first session ID")
    names = [_norm(name) for name in header]
    if len(set(names)) != len(names):
        # A header read twice over (repeated, then wrapped): rows of twice its width
        # would each hide a session.
        raise ParseError("wrapped table header lists a column twice")
    # Every line ends with `|`: its fields are its `|`s. Counted before any is made, so
    # that a reply of millions is refused by its row count at the cost of a scan.
    values = sum(map(str.count, lines, repeat("|"))) - width
    if values % width:
        raise ParseError(f"wrapped table does not split into rows of {width} fields")
    # One wrapped line may hold many rows: the limit counts rows, not lines.
    _check_rows(values // width, max_rows)
    fields = [f.replace("\n", " ") for line in lines for f in _fields(line)][width:]
    rows = [fields[i : i + width] for i in range(0, values, width)]
    return header, rows, []


def _wrapped_header(lines: list[str]) -> list[str]:
    """The fields of a wrapped table before its first numeric session ID (all of them
    when there is none), looked for among the first `MAX_COLUMNS` only."""
    header: list[str] = []
    for line in lines:
        room = MAX_COLUMNS + 1 - len(header)
        for field in line[:-1].split("|", room)[:room]:
            field = field.replace("\n", " ")
            if _DIGITS.match(field.strip()):
                return header
            header.append(field)
        if len(header) > MAX_COLUMNS:
            raise ParseError(f"wrapped table header has more than {MAX_COLUMNS} columns")
    return header


# The columns read, by their normalised name (`_norm`), as the document names them.
_READ_COLUMNS = {
    _name.replace(" ", "").casefold(): _name
    for _name in (
        "ID",
        "Status",
        "Waiting Time",
        "Start Time",
        "Entry ID",
        "Entry",
        "Technician ID",
        "Technician",
        "Is Lead Technician",
    )
}


def _sessions(
    header: list[str], rows: list[list[str]], shifted: list[list[str]], zone: tzinfo
) -> SessionList:
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        if index.setdefault(_norm(name), i) != i and _norm(name) in _READ_COLUMNS:
            # Which of the two holds the value is anybody's guess, for every row: a
            # reply read from the wrong one would count every session wrong, silently.
            raise ParseError(f"table header names the {_READ_COLUMNS[_norm(name)]} column twice")
    if "id" not in index or "status" not in index:
        raise ParseError("table header has no ID or Status column")

    # Column positions looked up once, not per row and cell; -1 for an absent column.
    columns = [
        index.get(name, -1)
        for name in (
            "id",
            "status",
            "waitingtime",
            "starttime",
            "entryid",
            "entry",
            "technicianid",
            "technician",
            "isleadtechnician",
        )
    ]

    names = tuple(h.strip() for h in header)
    clean = _clean_columns(rows, columns, zone)
    if clean is not None:
        return SessionList(
            code=OK,
            sessions=clean,
            columns=names,
            shifted_rows=len(shifted),
            rejected_ids=handed_back(_shifted_ids(header, shifted)),
        )
    builder = _Builder(zone)
    for row in rows:
        (
            session_id,
            status,
            waiting_text,
            start_text,
            channel_id,
            channel,
            technician_id,
            technician,
            lead,
        ) = [row[i].strip() if i >= 0 else "" for i in columns]
        builder.add(
            session_id,
            status,
            waiting_text,
            start_text,
            channel_id,
            channel,
            technician_id,
            technician,
            lead.casefold() in LEAD_VALUES,
        )
    builder.rejected_ids[:0] = _shifted_ids(header, shifted)
    return builder.result(names, len(shifted))


def _clean_columns(
    rows: list[list[str]], columns: list[int], zone: tzinfo
) -> tuple[Session, ...] | None:
    """The sessions of a table whose every row `_Builder` would take without a count, read
    a column at a time; None for any other table, which `_Builder` then reads (and counts)
    row by row. A column at a time because each check then runs in C over the whole
    column (`map`, `str.join`, `min`/`max`) or once per distinct value (Start Times,
    lead flags): 0.64-0.65x of `_Builder`'s time on bench/ingest.py's 5,000 rows, whose
    Start Times are nearly all distinct. `tests/test_fast_paths.py` holds the two to the
    same records."""
    count = len(rows)
    if not count:
        return ()
    table = list(zip(*rows, strict=True))  # every row has the header's width (`_rows`)
    blank = ("",) * count

    def column(position: int) -> tuple[str, ...]:
        return table[position] if position >= 0 else blank

    (
        id_at,
        status_at,
        waiting_at,
        start_at,
        channel_id_at,
        channel_at,
        technician_id_at,
        technician_at,
        lead_at,
    ) = columns
    ids = _number_column(column(id_at))
    if ids is None:
        return None
    statuses = _Repeated(column(status_at))
    if not all(statuses.distinct.values()):
        return None
    waits = _waiting_column(column(waiting_at))
    if waits is None:
        return None
    starts = _start_column(list(map(str.strip, column(start_at))), zone)
    if starts is None:
        return None
    leads = _Repeated(column(lead_at))
    is_lead = {raw: text.casefold() in LEAD_VALUES for raw, text in leads.distinct.items()}
    return tuple(
        map(
            Session,
            ids,
            statuses.values(),
            _Repeated(column(channel_id_at)).values(),
            _Repeated(column(channel_at)).values(),
            _Repeated(column(technician_id_at)).values(),
            _Repeated(column(technician_at)).values(),
            starts,
            waits,
            map(is_lead.__getitem__, leads.texts),
        )
    )


class _Repeated:
    """A column of few distinct texts (statuses, channels, technicians), each stripped
    once: one pass to find them (`dict.fromkeys`, no call a cell) and one to map them, in
    place of a strip and a share a cell. Each distinct text is one string object, as
    `_Builder` shares them."""

    def __init__(self, texts: tuple[str, ...]) -> None:
        self.texts = texts
        self.distinct = {text: text.strip() for text in dict.fromkeys(texts)}

    def values(self) -> list[str]:
        return list(map(self.distinct.__getitem__, self.texts))


def _number_column(texts: tuple[str, ...]) -> list[str] | None:
    """`texts` as `canonical_id` makes them, if `strict_int` takes every one; else None.
    Tried unstripped first: all digits, they have nothing to strip."""
    if not _all_numbers(texts):
        texts = tuple(map(str.strip, texts))
        if not _all_numbers(texts):
            return None
    # One C scan for a leading zero, which real IDs never have.
    if "|0" in "|" + "|".join(texts):
        return [str(int(text)) for text in texts]
    return list(texts)


def canonical_id(text: str) -> str | None:
    """A session ID as the number it is (`0001001` is `1001`, as SOAP's integer `iID`
    reads it): the text keys the session's wait and its rejections, so two spellings of
    one number must not be two sessions. None where `strict_int` refuses it."""
    number = strict_int(text)
    return None if number is None else str(number)


def _all_numbers(texts: Sequence[str]) -> bool:
    """Whether every one of `texts`, as it is, is what `strict_int` takes: none empty,
    none longer than MAX_DIGITS, all ASCII digits (so none has white space to strip)."""
    if not texts:
        return True
    joined = "".join(texts)
    return (
        joined.isascii()
        and joined.isdigit()
        and min(map(len, texts)) > 0
        and max(map(len, texts)) <= MAX_DIGITS
    )


def _waiting_column(texts: Sequence[str]) -> list[int | None] | None:
    """Waiting Times (None for an empty one), or None unless each is empty or a number
    `plausible_seconds` takes. Stripped only if need be, as `_number_column`."""
    present = list(filter(None, texts))
    if not _all_numbers(present):
        texts = list(map(str.strip, texts))
        present = list(filter(None, texts))
        if not _all_numbers(present):
            return None
    numbers = list(map(int, present))
    if numbers and max(numbers) > MAX_PLAUSIBLE_SECONDS:
        return None
    if len(present) == len(texts):
        return list(numbers)
    taken = iter(numbers)
    return [next(taken) if text else None for text in texts]


def _start_column(texts: list[str], zone: tzinfo) -> list[float | None] | None:
    """Start Times (None for an empty one), each distinct text read once, or None unless
    each is empty or a plausible time."""
    distinct = dict.fromkeys(texts)
    distinct.pop("", None)
    values = quick_utc_starts(list(distinct)) if _is_utc(zone) else None
    if values is None:
        values = list(map(_Builder(zone).start_time, distinct))
    if None in values:
        return None
    times = cast(list[float], values)
    # Our own arithmetic's floats, never NaN: the bounds of the extremes bound them all.
    if times and not (plausible_epoch(min(times)) and plausible_epoch(max(times))):
        return None
    starts: dict[str, float | None] = dict(zip(distinct, values, strict=True))
    starts[""] = None
    return list(map(starts.__getitem__, texts))


class _Builder:
    """Checks each row's values the same way for both APIs and counts what it refuses."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self.sessions: list[Session] = []
        # Start Times have minute resolution, so one reply repeats the same few strings:
        # each is parsed once per reply (the parse is most of a row's cost).
        self._starts: dict[str, float | None] = {}
        # Statuses, channels and technicians repeat too: one string object each per
        # reply, so that a 100,000-row reply is quicker to pickle from the parse worker
        # and to free on the loop (there, freeing it whole took 47 ms with a copy each).
        self._shared: dict[str, str] = {}
        self._utc = _is_utc(zone)
        self.invalid_records = self.invalid_values = self.implausible_values = 0
        self.rejected_ids: list[tuple[str, str]] = []

    def start_time(self, text: str) -> float | None:
        if self._utc:
            start = quick_utc_start(text)
            if start is not None:
                return start
        return parse_start_time(text, self.zone)

    def add(
        self,
        session_id: str,
        status: str,
        waiting_text: str,
        start_text: str,
        channel_id: str,
        channel: str,
        technician_id: str,
        technician: str,
        is_lead: bool,
    ) -> None:
        number = canonical_id(session_id)
        if number is None or not status:
            self.invalid_records += 1
            self.rejected(session_id, "invalid_record")  # an ID without a Status
            return
        session_id = number
        # Strictly ASCII digits of bounded length: 5,000 digits are a counted bad value,
        # never a ValueError from Python's int conversion limit.
        waiting = strict_int(waiting_text) if waiting_text else None
        start = None
        if start_text:
            # `in`, not try/except KeyError: a miss is common (a reply spanning days), and
            # raising costs more than the second lookup of a hit.
            if start_text in self._starts:
                start = self._starts[start_text]
            else:
                start = self._starts[start_text] = self.start_time(start_text)
        if waiting_text != "" and waiting is None:
            self.invalid_value(session_id)
        if start_text != "" and start is None:
            self.invalid_value(session_id)
        # An absurd value is dropped, not the session: what Rescue counts is sessions by
        # status, and an Offline session may well sit for more than a week.
        if waiting is not None and not plausible_seconds(waiting):
            self.implausible_values += 1
            self.rejected(session_id, "implausible_value")
            waiting = None
        if start is not None and not plausible_epoch(start):
            self.implausible_values += 1
            self.rejected(session_id, "implausible_value")
            start = None
        shared = self._shared.setdefault
        # Positional, in the field order: keywords cost a third more per row.
        self.sessions.append(
            Session(
                session_id,
                shared(status, status),
                shared(channel_id, channel_id),
                shared(channel, channel),
                shared(technician_id, technician_id),
                shared(technician, technician),
                start,
                waiting,
                is_lead,
            )
        )

    def invalid_value(self, session_id: str) -> None:
        self.invalid_values += 1
        self.rejected(session_id, "invalid_value")

    def rejected(self, session_id: str, reason: str) -> None:
        """Note a rejection of the row of `session_id`, if that is a numeric ID."""
        number = canonical_id(session_id)
        if number is not None:
            self.rejected_ids.append((reason, number))

    def result(self, columns: tuple[str, ...], shifted: int = 0) -> SessionList:
        return SessionList(
            code=OK,
            sessions=tuple(self.sessions),
            columns=columns,
            shifted_rows=shifted,
            invalid_records=self.invalid_records,
            invalid_values=self.invalid_values,
            implausible_values=self.implausible_values,
            rejected_ids=handed_back(self.rejected_ids),
        )


# -- SOAP (API.asmx) ---------------------------------------------------------------------

_ENVELOPES = frozenset({SOAP11_NAMESPACE, SOAP12_NAMESPACE})
_API = f"{{{API_NAMESPACE}}}"
# SESSION_V3 children -> the text header's column names, so both APIs report one shape.
SOAP_COLUMNS = {
    "iID": "ID",
    "bStatus": "Status",
    "iEntry": "Entry ID",
    "sEntry": "Entry",
    "iTechnician": "Technician ID",
    "sTechnician": "Technician",
    "sStartTime": "Start Time",
    "iWaitingTimeInSec": "Waiting Time",
    "bIsLead": "Is Lead Technician",
}
_SOAP_READ = frozenset([*SOAP_COLUMNS, "sStatus"])


def parse_soap_sessions(
    body: bytes, zone: tzinfo = UTC, max_rows: int | None = None
) -> SessionList:
    """A SOAP 1.1 or 1.2 `getSession_V3Response` into the records the text API gives."""
    response = _soap_response(body, "getSession_V3")
    code = SOAP_GET_SESSION_CODES.get(_child_text(response, "getSession_V3Result"))
    if code is None:
        raise ParseError("unknown getSession_V3Result")
    if code != OK:
        return SessionList(code)
    rows, others = _soap_rows(response)
    _check_rows(len(rows), max_rows)
    builder = _Builder(zone)
    builder.invalid_records += others
    for row in rows:
        values: dict[str, str] = {}
        doubts = 0
        for e in row:
            if isinstance(e.tag, str) and e.tag.startswith(_API):
                name, text = etree.QName(e).localname, clean_text((e.text or "").strip())
                if values.setdefault(name, text) != text and name in _SOAP_READ:
                    # The first is taken, as from a text table, and the doubt counted.
                    doubts += 1
        for _ in range(doubts):
            builder.invalid_value(values.get("iID", ""))
        enum = values.get("bStatus", "")
        # The enum is the language-independent truth; an enum value we have not placed is
        # kept verbatim (and counted as unrecognised by the collector), and only a missing
        # one falls back to the display string.
        status = SOAP_STATUSES.get(enum, enum) if enum else values.get("sStatus", "")
        builder.add(
            values.get("iID", ""),
            status,
            values.get("iWaitingTimeInSec", ""),
            values.get("sStartTime", ""),
            values.get("iEntry", ""),
            values.get("sEntry", ""),
            values.get("iTechnician", ""),
            values.get("sTechnician", ""),
            values.get("bIsLead", "").casefold() in LEAD_VALUES,
        )
    return builder.result(tuple(SOAP_COLUMNS.values()))


def _soap_rows(response: etree._Element) -> tuple[list[etree._Element], int]:
    """The response's `SESSION_V3` elements, and how many other elements `aSessions`
    holds (skipped, counted as invalid records). A reply whose sessions all come under
    another name or namespace is refused, not read as no sessions: every Waiting
    session would seem to have ended."""
    container = response.find(f"{_API}aSessions")
    if container is None:
        if any(
            isinstance(e.tag, str) and etree.QName(e).localname == "aSessions" for e in response
        ):
            raise ParseError("aSessions is not in the API namespace")
        # No aSessions is no sessions (ASMX leaves a null array out), unless sessions
        # came under another name: read as none, every Waiting one ended (probe 13).
        if any(etree.QName(e).localname == "SESSION_V3" for e in _elements(response)):
            raise ParseError("SESSION_V3 elements outside aSessions")
        return [], 0
    elements = [e for e in container if isinstance(e.tag, str)]
    rows = [e for e in elements if e.tag == f"{_API}SESSION_V3"]
    if elements and not rows:
        raise ParseError(
            f"aSessions holds {len(elements)} elements, none a SESSION_V3 in the API namespace"
        )
    return rows, len(elements) - len(rows)


def _elements(root: etree._Element) -> Iterator[etree._Element]:
    """Every element below `root`, not its comments or processing instructions."""
    return (e for e in root.iterdescendants() if isinstance(e.tag, str))


def parse_soap_login(body: bytes) -> str:
    """The `loginResult` of a SOAP login, as the text login's return value."""
    result = _child_text(_soap_response(body, "login"), "loginResult")
    code = SOAP_LOGIN_CODES.get(result)
    if code is None:
        raise ParseError("unknown loginResult")
    return code


def _soap_response(body: bytes, operation: str) -> etree._Element:
    body_element, fault = _soap_body(body)
    if fault is not None:
        raise ParseError(fault)
    response = body_element.find(f"{_API}{operation}Response")
    if response is None:
        raise ParseError(f"SOAP Body without {operation}Response in the API namespace")
    return response


# The longest fault text quoted, whole: scrubbed and cut where it is shown.
_FAULT_TEXT = 4096
# Larger error bodies are not read for a fault: parsed on the loop, 16 MiB of XML would
# hold it for seconds.
_MAX_FAULT_BODY = 65536


def soap_fault_detail(body: bytes) -> str | None:
    """What the fault of an error reply says ("SOAP fault: ..."), or None when the body
    is no SOAP fault. SOAP over HTTP sends its faults with status 500 (the ASMX services
    do): shown as "HTTP 500" alone, the service's own words were lost."""
    if len(body) > _MAX_FAULT_BODY:
        return None
    try:
        return _soap_body(body)[1]
    except ParseError:
        return None


def _soap_body(body: bytes) -> tuple[etree._Element, str | None]:
    """The envelope's Body, and what its fault says ("SOAP fault: ...") if it is one."""
    root = parse_xml(body)
    envelope = etree.QName(root)
    if envelope.namespace not in _ENVELOPES or envelope.localname != "Envelope":
        raise ParseError("not a SOAP envelope")
    soap = f"{{{envelope.namespace}}}"
    body_element = root.find(f"{soap}Body")
    if body_element is None:
        raise ParseError("SOAP envelope without a Body")
    fault = body_element.find(f"{soap}Fault")
    return body_element, None if fault is None else f"SOAP fault: {_fault_text(fault, soap)}"


def _fault_text(fault: etree._Element, soap: str) -> str:
    """The words of a SOAP 1.1 (`faultstring`) or 1.2 (`Reason/Text`) fault, whole, or
    "(no reason given)". Never cut or changed here: the parse worker that may read a
    big reply knows no secret, and a secret cut there, or its spaces joined, would not
    be scrubbed where the words are shown. A longer text is not quoted."""
    text = fault.findtext("faultstring") or fault.findtext(f"{soap}Reason/{soap}Text") or ""
    text = text.strip()
    if len(text) > _FAULT_TEXT:
        return f"(a reason of {len(text)} characters)"
    return text or "(no reason given)"


def _child_text(element: etree._Element, name: str) -> str:
    child = element.find(f"{_API}{name}")
    return "" if child is None else (child.text or "").strip()
