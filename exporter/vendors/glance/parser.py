"""Glance Activity Service replies -> typed records. Pure: bytes in, records out.

Whole-document problems (malformed XML, a DTD, the wrong root element or namespace) raise
`ParseError`. A single unusable record (no id, a count that is not a number) is skipped
and counted in `skipped`, so one odd row does not hide all the others; `implausible` says
how many of those were skipped for a number or date outside its plausible range (a
duration of 1e308 s, a start in the year 9999). A reply with more records than
`max_records` is not turned into records at all: `over_limit` says so, and the caller
refuses it. Every vendor string is made encodable (`clean_text`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from lxml import etree

from ...errors import ParseError
from ...rejections import handed_back, skipped_reason
from ...sanitize import (
    MAX_PLAUSIBLE_COUNT,
    clean_text,
    plausible_epoch,
    plausible_seconds,
    strict_int,
)
from ...xmlsafe import parse_xml

NS = "http://www.glancenetworks.com/services"
# Defaults for direct callers; the client passes the configured `max_body_bytes` and
# `max_records_per_reply`.
MAX_BYTES = 16 * 1024 * 1024
MAX_RECORDS = 100_000


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


@dataclass(frozen=True)
class SessionCount:
    type: str
    status: str
    count: int
    average_duration: float | None  # seconds; None when the vendor gave none


@dataclass(frozen=True)
class ActiveSession:
    id: int
    type: str
    status: str
    start_time: float | None
    partner_user_id: str
    nguests: int


class Session(msgspec.Struct, frozen=True, gc=False):
    """One completed or in-progress session. A msgspec Struct, as every vendor's records:
    a page makes one per session, and a frozen dataclass costs several times as much to
    build; untracked by the garbage collector."""

    id: int
    type: str
    status: str
    start_time: float | None
    duration: float | None  # seconds
    partner_user_id: str
    # The earliest `startTime` of the session's visitor and agent guests; None when the
    # session lists no such guest (or its time is unreadable).
    visitor_start: float | None = None
    agent_start: float | None = None


@dataclass(frozen=True)
class Counts:
    records: list[SessionCount]
    skipped: int = 0
    implausible: int = 0
    over_limit: int | None = None  # the record count when it exceeds max_records
    # (reason, (type, status)) of each skipped row that has both: a row's identity.
    rejected_ids: tuple[tuple[str, tuple[str, str]], ...] = ()


@dataclass(frozen=True)
class ActiveSessions:
    records: list[ActiveSession]
    skipped: int = 0
    implausible: int = 0
    over_limit: int | None = None
    invalid_values: int = 0  # fields unreadable in records kept (a startTime)
    rejected_ids: tuple[tuple[str, int], ...] = ()  # `_Tally.rejected_ids`


@dataclass(frozen=True)
class GroupSessions:
    """One page of PartnerCompletedSessions(Ending)."""

    next_id: int | None
    sessions: list[Session]
    skipped: int = 0
    invalid_users: list[str] = field(default_factory=list)
    implausible: int = 0
    over_limit: int | None = None
    invalid_values: int = 0  # fields unreadable in records kept (a startTime)
    rejected_ids: tuple[tuple[str, int], ...] = ()  # `_Tally.rejected_ids`


@dataclass(frozen=True)
class UserSessions:
    valid_user: bool
    sessions: list[Session]
    skipped: int = 0
    implausible: int = 0
    over_limit: int | None = None
    invalid_values: int = 0  # fields unreadable in records kept (a startTime)
    rejected_ids: tuple[tuple[str, int], ...] = ()  # `_Tally.rejected_ids`


class _Skip(Exception):
    """One record is unusable; the document as a whole is fine."""


class _Implausible(_Skip):
    """One record carries a number or date no real session has."""


class _Tally:
    """Records kept and skipped while walking one reply, up to `limit` records."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.skipped = 0
        self.implausible = 0
        self.invalid_values = 0  # times present but unreadable, in records kept
        # (reason, id) of each rejection whose record has a readable id, so that the
        # collector counts a bad record once however many replies hold it
        # (`RejectedOnce`); a record with two unreadable times is here twice.
        self.rejected_ids: list[tuple[str, Any]] = []
        self.seen = 0
        # `parse_time` of each time text met in this reply: a session's startTime recurs
        # as its first guest's, and a busy page repeats seconds.
        self.times: dict[str, float | None] = {}

    def time(self, text: str | None, name: str) -> float | None:
        """`_time`, each distinct text parsed once per reply."""
        if text is None:
            return None
        # `in`, not try/except KeyError: most texts are new, and raising costs more than
        # the second lookup of a repeat.
        if text in self.times:
            when = self.times[text]
        else:
            when = self.times[text] = parse_time(text)
        if when is None:
            # Unreadable ("soon", a 13th month): the record is kept, its time unknown,
            # and counted (`invalid_value`), or a waiting session's start vanished unseen.
            self.invalid_values += bool(text.strip())
        elif not plausible_epoch(when):
            raise _Implausible(name)
        return when

    def skip(self, exc: _Skip, unread: int | None = None, record_id: Any = None) -> None:
        """A record skipped for `exc`; `unread` is `invalid_values` before it was read
        (a skipped record counts once, as skipped), `record_id` what tells it apart."""
        if unread is not None:
            self.invalid_values = unread
        self.skipped += 1
        implausible = isinstance(exc, _Implausible)
        self.implausible += implausible
        if record_id is not None:
            self.rejected_ids.append((skipped_reason(implausible), record_id))

    def kept(self, record_id: int, unread: int) -> None:
        """A record kept; `unread` is `invalid_values` before it was read."""
        for _ in range(self.invalid_values - unread):
            self.rejected_ids.append(("invalid_value", record_id))

    def full(self) -> bool:
        """Count one more record; True once there are more than `limit`."""
        self.seen += 1
        return self.seen > self.limit


# The vendor document prints namespace URIs as markdown links, `[URI](URI)`. A service
# (or a mock) copying those samples verbatim still means the URIs inside; only the
# prolog and root start tag are looked at, and any namespace but Glance's is refused.
_MANGLED_URI = re.compile(rb'"\[(https?://[^\]\s"]+)\]\(\1\)"')
_PROLOG = 2048


def _unmangle(body: bytes) -> bytes:
    head = body[:_PROLOG]
    if b"](" not in head:
        return body
    return _MANGLED_URI.sub(rb'"\1"', head) + body[_PROLOG:]


def _root(body: bytes, expected: str, max_bytes: int) -> etree._Element:
    root = parse_xml(_unmangle(body), max_bytes)
    if root.tag != _q(expected):
        raise ParseError(f"expected <{expected}> in namespace {NS}, got {_describe(root.tag)}")
    return root


def _describe(tag: object) -> str:
    if not isinstance(tag, str):
        return "a non-element node"
    qname = etree.QName(tag)
    return f"<{qname.localname}> in namespace {qname.namespace or '(none)'}"


def _text(parent: etree._Element, name: str) -> str | None:
    child = parent.find(_q(name))
    if child is None or child.text is None:
        return None
    return clean_text(child.text.strip())


def _required(parent: etree._Element, name: str) -> str:
    return _present(_text(parent, name), name)


def _present(value: str | None, name: str) -> str:
    if not value:
        raise _Skip(name)
    return value


def _int(text: str | None, name: str) -> int:
    """ASCII digits only, at most 18 of them: no vendor number reaches int()'s limits."""
    value = None if text is None else strict_int(text)
    if value is None:
        raise _Skip(name)
    return value


def _count_of(text: str | None, name: str) -> int:
    """`_int`, and at most `MAX_PLAUSIBLE_COUNT` (else the record is implausible)."""
    value = _int(text, name)
    if value > MAX_PLAUSIBLE_COUNT:
        raise _Implausible(name)
    return value


# Longer than any number Glance sends; float() of a megabyte of digits is slow.
_MAX_NUMBER_TEXT = 64
# A decimal number in ASCII, as the documents print them (blanks around allowed).
_DECIMAL = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*", re.ASCII)
_NOT_FINITE = frozenset({"nan", "inf", "infinity"})
# An offset with a one-digit hour, as the conventions document writes it (`-5:00`).
_SHORT_OFFSET = re.compile(r"([+-])([0-9]):([0-9]{2})$")


def _seconds(text: str | None, name: str) -> float | None:
    """A duration in seconds. Absent or unreadable -> None (unknown); a number outside 0
    to 7 days (negative, 1e308, NaN, Infinity) makes the record implausible."""
    if text is None or len(text) > _MAX_NUMBER_TEXT:
        return None
    if not _DECIMAL.fullmatch(text):
        # `float` reads Arabic-Indic digits and `1_0` too (probe 9: 7 s and 10 s); a
        # NaN or an infinity is a number, and implausible.
        if text.strip().lstrip("+-").lower() in _NOT_FINITE:
            raise _Implausible(name)
        return None
    value = float(text)
    if not plausible_seconds(value):
        raise _Implausible(name)
    return value


def parse_time(text: str | None) -> float | None:
    """Glance returns dates in UTC; a value without a zone is taken as UTC too.
    Absent or unreadable -> None."""
    if not text or len(text) > _MAX_NUMBER_TEXT:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        # `2012-12-01T16:08:00-5:00`, as the conventions document writes an offset.
        padded = _SHORT_OFFSET.sub(r"\g<1>0\2:\3", text)
        if padded == text:
            return None
        try:
            when = datetime.fromisoformat(padded)
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.timestamp()
    except (ValueError, OverflowError):
        return None


def _bool(text: str | None) -> bool:
    return (text or "").lower() in ("true", "1")


def parse_session_counts(
    body: bytes, max_bytes: int = MAX_BYTES, max_records: int = MAX_RECORDS
) -> Counts:
    """PartnerSessionCounts and PartnerSessionCountsEnding."""
    root = _root(body, "ArrayOfSessionCount", max_bytes)
    items = list(root.iterchildren(_SESSION_COUNT))
    if len(items) > max_records:
        return Counts([], over_limit=_count(root, "sessionCount"))
    records: list[SessionCount] = []
    tally = _Tally(max_records)
    for fields in _first_texts(root, items, _COUNT_FIELDS):
        try:
            records.append(
                SessionCount(
                    type=_present(fields.get("type"), "type"),
                    status=_present(fields.get("status"), "status"),
                    count=_count_of(fields.get("count"), "count"),
                    average_duration=_seconds(fields.get("averageDuration"), "averageDuration"),
                )
            )
        except _Skip as exc:
            row = (fields.get("type"), fields.get("status"))
            tally.skip(exc, record_id=row if all(row) else None)
    return Counts(
        records, tally.skipped, tally.implausible, rejected_ids=handed_back(tally.rejected_ids)
    )


def parse_active_sessions(
    body: bytes, max_bytes: int = MAX_BYTES, max_records: int = MAX_RECORDS
) -> ActiveSessions:
    root = _root(body, "ArrayOfActiveSession", max_bytes)
    items = list(root.iterchildren(_ACTIVE_SESSION))
    if len(items) > max_records:
        return ActiveSessions([], over_limit=_count(root, "activeSession"))
    records: list[ActiveSession] = []
    tally = _Tally(max_records)
    for fields in _first_texts(root, items, _ACTIVE_FIELDS):
        unread = tally.invalid_values
        try:
            nguests_text = fields.get("nguests")
            record = ActiveSession(
                id=_int(fields.get("id"), "id"),
                type=_present(fields.get("type"), "type"),
                status=_present(fields.get("status"), "status"),
                start_time=tally.time(fields.get("startTime"), "startTime"),
                partner_user_id=fields.get("partnerUserId") or "",
                nguests=_count_of(nguests_text, "nguests") if nguests_text else 0,
            )
        except _Skip as exc:
            tally.skip(exc, unread, _readable_id(fields.get("id")))
        else:
            records.append(record)
            tally.kept(record.id, unread)
    return ActiveSessions(
        records,
        tally.skipped,
        tally.implausible,
        invalid_values=tally.invalid_values,
        rejected_ids=handed_back(tally.rejected_ids),
    )


# Qualified names built once: `_q` per lookup was a string format per field of every record.
_SESSION_COUNT, _ACTIVE_SESSION = _q("sessionCount"), _q("activeSession")
_COUNT_FIELDS = tuple((name, _q(name)) for name in ("type", "status", "count", "averageDuration"))
_ACTIVE_FIELDS = tuple(
    (name, _q(name)) for name in ("id", "type", "status", "startTime", "partnerUserId", "nguests")
)


def _first_texts(
    root: etree._Element, items: list[etree._Element], fields: tuple[tuple[str, str], ...]
) -> list[dict[str, str | None]]:
    """For each of `items`, what `_text(item, name)` reads for each field: the text of the
    item's first child of that name (even when that child has none, as `find` takes the
    first), stripped and clean; a field it lacks is not in its dict.

    One C-level scan of the tree per field, each element placed by its parent, instead of
    a `find` per field per item: `find` goes through ElementPath in Python, and iterating
    an item's children makes a Python object of every one, wanted or not. About 2.5 times
    faster on the simulator's counts and active replies (parse included)."""
    # Keyed by element or None: the root's getparent() is None, and is no item.
    found: dict[etree._Element | None, dict[str, str | None]] = {item: {} for item in items}
    for name, tag in fields:
        for element in root.iter(tag):
            # getparent() of a child of an item is that item's own proxy: `items` holds
            # each alive, so lxml hands back the same object, and the dict finds it.
            texts = found.get(element.getparent())
            if texts is not None and name not in texts:
                text = element.text
                if text is not None:
                    text = text.strip()  # clean_text's own ASCII test first: most need no more
                    if not text.isascii():
                        text = clean_text(text)
                texts[name] = text
    return [found[item] for item in items]


def _count(root: etree._Element, name: str) -> int:
    return sum(1 for _ in root.iter(_q(name)))


_SESSION_FIELDS = {_q(name): name for name in ("id", "type", "status", "startTime", "duration")}
_GUEST_FIELDS = {_q(name): name for name in ("type", "startTime")}


def _guest_starts(guests: list[dict[str, str]], tally: _Tally) -> tuple[float | None, float | None]:
    """The earliest `startTime` of the session's visitor guests and of its agent guests
    (the document lists guests of `type` visitor and agent, each with its own start)."""
    visitor: float | None = None
    agent: float | None = None
    for fields in guests:
        kind = fields.get("type", "").lower()
        if kind not in ("visitor", "agent"):
            continue
        when = tally.time(fields.get("startTime"), "guest startTime")
        if when is None:
            continue
        if kind == "visitor":
            visitor = when if visitor is None else min(visitor, when)
        else:
            agent = when if agent is None else min(agent, when)
    return visitor, agent


def _session(
    fields: dict[str, str], guests: list[dict[str, str]], user: str, tally: _Tally
) -> Session:
    """One session from its fields and its guests' fields; raises `_Skip` for an unusable
    one, in the order the checks have always run (the first failure is what counts)."""
    session_id = _int(fields.get("id"), "id")
    session_type = _present(fields.get("type"), "type")
    status = _present(fields.get("status"), "status")
    start_time = tally.time(fields.get("startTime"), "startTime")
    duration = _seconds(fields.get("duration"), "duration")
    visitor, agent = _guest_starts(guests, tally)
    if (
        visitor is not None
        and agent is not None
        and not plausible_seconds(max(0.0, agent - visitor))
    ):
        raise _Implausible("wait")
    # Positional, in the field order: keywords cost a third more per session.
    return Session(session_id, session_type, status, start_time, duration, user, visitor, agent)


_SESSIONS, _SESSION, _GUESTS, _GUEST = _q("sessions"), _q("session"), _q("guests"), _q("guest")
_WALKED = (_SESSION, _GUESTS, _GUEST, *_SESSION_FIELDS)


def _walk_sessions(
    scope: etree._Element, containers: dict[etree._Element, str], tally: _Tally
) -> list[Session] | None:
    """The sessions of every container (`<sessions>` element -> its partnerUserId) under
    `scope`, in document order, or None once there are more than the tally's limit; in
    one pass: lxml picks the few wanted elements out of the whole subtree in C, where
    the element-by-element reading (`find` of each session's `<guests>`, a loop over the
    children of each session and guest; tests/test_fast_paths.py keeps it as the
    reference) makes a Python object of every element. Three times faster on a
    1000-session page (bench/ingest.py).

    Each element is placed by its parent, never by its position, so that it reads what
    the element-by-element reading reads: a session is a child of a container; its
    fields, and its first `<guests>`, are children of it; a guest is a child of that
    `<guests>`, its fields children of the guest; the first field with text wins.
    Anything else is not read."""
    sessions: list[Session] = []
    session: etree._Element | None = None
    guests: etree._Element | None = None
    guest: etree._Element | None = None
    fields: dict[str, str] = {}
    guest_fields: dict[str, str] = {}
    guest_list: list[dict[str, str]] = []
    user = ""
    for element in scope.iter(*_WALKED):
        tag = element.tag
        parent = element.getparent()
        if tag == _SESSION:
            if parent not in containers:
                continue  # not a session of a container: never read
            if session is not None:
                _finish(fields, guest_list, user, tally, sessions)
            if tally.full():
                return None
            session, guests, guest = element, None, None
            fields, guest_list, user = {}, [], containers[parent]
        elif session is None:
            continue
        elif tag == _GUESTS:
            if parent is session and guests is None:
                guests = element
        elif tag == _GUEST:
            if guests is not None and parent is guests:
                guest, guest_fields = element, {}
                guest_list.append(guest_fields)
        elif parent is session:
            _take(fields, _SESSION_FIELDS[tag], element)
        elif guest is not None and parent is guest and tag in _GUEST_FIELDS:
            _take(guest_fields, _GUEST_FIELDS[tag], element)
    if session is not None:
        _finish(fields, guest_list, user, tally, sessions)
    return sessions


def _take(found: dict[str, str], name: str, element: etree._Element) -> None:
    """The first such child with text is the field's value (for sessions and guests; the
    counts and active sessions take `find`'s first child, `_first_texts`)."""
    text = element.text
    if text is not None and name not in found:
        text = text.strip()  # clean_text's own ASCII test first: most texts need no more
        found[name] = text if text.isascii() else clean_text(text)


def _readable_id(text: str | None) -> int | None:
    return strict_int(text) if text else None


def _finish(
    fields: dict[str, str],
    guests: list[dict[str, str]],
    user: str,
    tally: _Tally,
    sessions: list[Session],
) -> None:
    unread = tally.invalid_values
    try:
        session = _session(fields, guests, user, tally)
    except _Skip as exc:
        tally.skip(exc, unread, _readable_id(fields.get("id")))
    else:
        sessions.append(session)
        if tally.invalid_values != unread:
            tally.kept(session.id, unread)


def read_next_id(text: str | None) -> int | None:
    """A page's nextId: None when absent or empty, 0 for a negative one (-1 is a common
    "no more pages" mark, and read as a parse error it failed the feed on every retry,
    for good). Anything else unreadable is a parse error: where paging goes on is then
    unknown."""
    if not text:
        return None
    number = strict_int(text)
    if number is None and text.startswith("-") and strict_int(text[1:]) is not None:
        return 0
    if number is None:
        raise ParseError("nextId is not a whole number")
    return number


def parse_group_sessions(
    body: bytes, max_bytes: int = MAX_BYTES, max_records: int = MAX_RECORDS
) -> GroupSessions:
    """PartnerCompletedSessions and PartnerCompletedSessionsEnding: one page."""
    root = _root(body, "groupSessions", max_bytes)
    next_id = read_next_id(_text(root, "nextId"))
    sessions: list[Session] = []
    invalid: list[str] = []
    tally = _Tally(max_records)
    users = root.find(_q("users"))
    if users is not None:
        # Each user's first <sessions>, by which `_walk_sessions` tells theirs apart.
        containers: dict[etree._Element, str] = {}
        for group in users.iterfind(_q("userSessions")):
            user = _text(group, "partnerUserId") or ""
            if _text(group, "validUser") is not None and not _bool(_text(group, "validUser")):
                invalid.append(user)
            container = group.find(_q("sessions"))
            if container is not None:
                containers[container] = user
        found = _walk_sessions(users, containers, tally) if containers else []
        if found is None:
            return GroupSessions(next_id, [], over_limit=_count(root, "session"))
        sessions = found
    return GroupSessions(
        next_id,
        sessions,
        tally.skipped,
        invalid,
        tally.implausible,
        invalid_values=tally.invalid_values,
        rejected_ids=handed_back(tally.rejected_ids),
    )


def parse_user_sessions(
    body: bytes, max_bytes: int = MAX_BYTES, max_records: int = MAX_RECORDS
) -> UserSessions:
    """PartnerUserSessions. The user id is not in the reply; the caller knows it."""
    root = _root(body, "userSessions", max_bytes)
    valid_text = _text(root, "validUser")
    if valid_text is None:
        raise ParseError("<validUser> is missing")
    if valid_text.lower() not in ("true", "false", "1", "0"):
        # An xsd:boolean is one of these: read as false, "yes" took the user's series
        # away with only a log line that the user was not valid (probe 13).
        raise ParseError("<validUser> is not true or false")
    tally = _Tally(max_records)
    # Its first <sessions> only, read the way a group page's are: `_walk_sessions`.
    container = root.find(_SESSIONS)
    sessions = [] if container is None else _walk_sessions(container, {container: ""}, tally)
    if sessions is None:
        return UserSessions(_bool(valid_text), [], over_limit=_count(root, "session"))
    return UserSessions(
        _bool(valid_text),
        sessions,
        tally.skipped,
        tally.implausible,
        invalid_values=tally.invalid_values,
        rejected_ids=handed_back(tally.rejected_ids),
    )
