"""Glance Activity Service replies -> typed records. Pure: bytes in, records out.

Whole-document problems (malformed XML, a DTD, the wrong root element or namespace) raise
`ParseError`. A single unusable record (no id, a count that is not a number) is skipped
and counted in `skipped`, so one odd row does not hide all the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from ...errors import ParseError
from ...xmlsafe import parse_xml

NS = "http://www.glancenetworks.com/services"
MAX_BYTES = 16 * 1024 * 1024


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


@dataclass(frozen=True)
class Session:
    id: int
    type: str
    status: str
    start_time: float | None
    duration: float | None  # seconds
    partner_user_id: str


@dataclass(frozen=True)
class Counts:
    records: list[SessionCount]
    skipped: int = 0


@dataclass(frozen=True)
class ActiveSessions:
    records: list[ActiveSession]
    skipped: int = 0


@dataclass(frozen=True)
class GroupSessions:
    """One page of PartnerCompletedSessions(Ending)."""

    next_id: int | None
    sessions: list[Session]
    skipped: int = 0
    invalid_users: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class UserSessions:
    valid_user: bool
    sessions: list[Session]
    skipped: int = 0


class _Skip(Exception):
    """One record is unusable; the document as a whole is fine."""


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
    return child.text.strip()


def _required(parent: etree._Element, name: str) -> str:
    return _present(_text(parent, name), name)


def _present(value: str | None, name: str) -> str:
    if not value:
        raise _Skip(name)
    return value


def _int(text: str | None, name: str) -> int:
    if text is None:
        raise _Skip(name)
    try:
        return int(text)
    except ValueError:
        raise _Skip(name) from None


def _seconds(text: str | None) -> float | None:
    """A duration in seconds; absent, garbage or negative -> None."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value or value < 0 or value == float("inf"):
        return None
    return value


def parse_time(text: str | None) -> float | None:
    """Glance returns dates in UTC; a value without a zone is taken as UTC too."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    except (ValueError, OverflowError):
        return None


def _bool(text: str | None) -> bool:
    return (text or "").lower() in ("true", "1")


def parse_session_counts(body: bytes, max_bytes: int = MAX_BYTES) -> Counts:
    """PartnerSessionCounts and PartnerSessionCountsEnding."""
    root = _root(body, "ArrayOfSessionCount", max_bytes)
    records, skipped = [], 0
    for item in root.iterfind(_q("sessionCount")):
        try:
            count = _int(_text(item, "count"), "count")
            if count < 0:
                raise _Skip("count")
            records.append(SessionCount(
                type=_required(item, "type"),
                status=_required(item, "status"),
                count=count,
                average_duration=_seconds(_text(item, "averageDuration")),
            ))
        except _Skip:
            skipped += 1
    return Counts(records, skipped)


def parse_active_sessions(body: bytes, max_bytes: int = MAX_BYTES) -> ActiveSessions:
    root = _root(body, "ArrayOfActiveSession", max_bytes)
    records, skipped = [], 0
    for item in root.iterfind(_q("activeSession")):
        try:
            nguests_text = _text(item, "nguests")
            nguests = _int(nguests_text, "nguests") if nguests_text else 0
            records.append(ActiveSession(
                id=_int(_text(item, "id"), "id"),
                type=_required(item, "type"),
                status=_required(item, "status"),
                start_time=parse_time(_text(item, "startTime")),
                partner_user_id=_text(item, "partnerUserId") or "",
                nguests=max(0, nguests),
            ))
        except _Skip:
            skipped += 1
    return ActiveSessions(records, skipped)


_SESSION_FIELDS = {_q(name): name for name in ("id", "type", "status", "startTime", "duration")}


def _children(item: etree._Element, wanted: dict[str, str]) -> dict[str, str]:
    """The stripped text of `item`'s wanted children, by local name (the first of each).

    One pass over the children instead of a find() per field: this is the hot loop of a
    1000-session page, and it halves the parse time (bench/ingest.py)."""
    found: dict[str, str] = {}
    for child in item:
        name = wanted.get(child.tag)
        if name is not None and name not in found and child.text is not None:
            found[name] = child.text.strip()
    return found


def _sessions(parent: etree._Element, user: str) -> tuple[list[Session], int]:
    sessions: list[Session] = []
    skipped = 0
    container = parent.find(_q("sessions"))
    if container is None:
        return sessions, 0
    for item in container.iterfind(_q("session")):
        fields = _children(item, _SESSION_FIELDS)
        try:
            sessions.append(Session(
                id=_int(fields.get("id"), "id"),
                type=_present(fields.get("type"), "type"),
                status=_present(fields.get("status"), "status"),
                start_time=parse_time(fields.get("startTime")),
                duration=_seconds(fields.get("duration")),
                partner_user_id=user,
            ))
        except _Skip:
            skipped += 1
    return sessions, skipped


def parse_group_sessions(body: bytes, max_bytes: int = MAX_BYTES) -> GroupSessions:
    """PartnerCompletedSessions and PartnerCompletedSessionsEnding: one page."""
    root = _root(body, "groupSessions", max_bytes)
    next_text = _text(root, "nextId")
    try:
        next_id = int(next_text) if next_text else None
    except ValueError:
        raise ParseError("nextId is not a whole number") from None
    sessions: list[Session] = []
    invalid: list[str] = []
    skipped = 0
    users = root.find(_q("users"))
    if users is not None:
        for group in users.iterfind(_q("userSessions")):
            user = _text(group, "partnerUserId") or ""
            if _text(group, "validUser") is not None and not _bool(_text(group, "validUser")):
                invalid.append(user)
            found, bad = _sessions(group, user)
            sessions.extend(found)
            skipped += bad
    return GroupSessions(next_id, sessions, skipped, invalid)


def parse_user_sessions(body: bytes, max_bytes: int = MAX_BYTES) -> UserSessions:
    """PartnerUserSessions. The user id is not in the reply; the caller knows it."""
    root = _root(body, "userSessions", max_bytes)
    valid_text = _text(root, "validUser")
    if valid_text is None:
        raise ParseError("<validUser> is missing")
    sessions, skipped = _sessions(root, "")
    return UserSessions(_bool(valid_text), sessions, skipped)
