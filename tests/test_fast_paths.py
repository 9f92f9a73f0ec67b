"""The ingest fast paths (issue 15) read exactly what the careful paths read.

Each fast path is checked against a reference on a table of edge inputs and on
hypothesis-generated ones:

- `strict_int` against the regex it replaced;
- Rescue's `quick_utc_start` against `parse_start_time`, and whole getSession tables
  parsed in UTC (quick path) against the same tables in a UTC zone the quick path does
  not take (every Start Time through `parse_start_time`);
- getSession tables read a column at a time (`_clean_columns`) against the same tables
  read row by row (`_Builder`), in UTC and in other zones;
- Glance's one-pass `_walk_sessions` (behind `parse_group_sessions`) against a verbatim
  copy of the element-by-element reader it replaced, kept here as the reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, tzinfo
from unittest.mock import patch
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from exporter.errors import ParseError
from exporter.sanitize import MAX_DIGITS, clean_text, plausible_epoch, plausible_seconds, strict_int
from exporter.vendors.glance import parser as glance
from exporter.vendors.rescue import parser as rescue
from exporter.vendors.rescue.parser import (
    SessionList,
    parse_sessions,
    parse_start_time,
    quick_utc_start,
)
from exporter.vendors.rescue.statuses import GET_SESSION_CODES

# -- sanitize.strict_int -------------------------------------------------------------------

_REFERENCE_DIGITS = re.compile(rf"\A[0-9]{{1,{MAX_DIGITS}}}\Z")


def reference_strict_int(text: str) -> int | None:
    """`strict_int` as it was: a regex match."""
    text = text.strip()
    return None if _REFERENCE_DIGITS.match(text) is None else int(text)


INT_EDGES = [
    "",
    " ",
    "0",
    "007",
    " 42 ",
    "1" * 18,
    "1" * 19,
    "²",
    "١٢",
    "\uff11\uff12",
    "12a",
    "-1",
    "+1",
    "1_0",
    "1.0",
    "1e3",
    "0x1",
    "1\n",
    "\n1",
    "\u00a012\u2003",
    "1 2",
]


@pytest.mark.parametrize("text", INT_EDGES)
def test_strict_int_edges(text: str) -> None:
    assert strict_int(text) == reference_strict_int(text)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=30), st.text(alphabet="0123456789 ²١\n\t+-", max_size=22)))
def test_strict_int_is_the_regex(text: str) -> None:
    assert strict_int(text) == reference_strict_int(text)


# -- Rescue Start Time ---------------------------------------------------------------------

START_EDGES = [
    "2/14/2026 3:05 PM",
    "2/14/2026 12:05 AM",
    "2/14/2026 12:59 PM",
    "02/04/2026 03:05 AM",
    "12/31/2099 11:59 PM",
    "1/1/2000 12:00 AM",
    "2/29/2024 1:00 AM",
    "2/29/2026 1:00 AM",
    "2/30/2026 3:05 PM",
    "13/1/2026 3:05 PM",
    "0/1/2026 3:05 PM",
    "2/14/2026 0:05 AM",
    "2/14/2026 13:05 PM",
    "2/14/2026 3:60 PM",
    "2/14/2026 3:5 PM",
    "2/14/2026 3:05 pm",
    "2/14/2026 3:05PM",
    "2/14/2026  3:05 PM",
    "2/14/2026 3:05 PM ",
    " 2/14/2026 3:05 PM",
    "2/14/2026 15:05",
    "2/14/2026 3:05:07 PM",
    "2/14/26 3:05 PM",
    "2/14/20266 3:05 PM",
    "2/14/02026 3:05 PM",
    "002/14/2026 3:05 PM",
    "٢/١٤/٢٠٢٦ 3:05 PM",
    "2/14/2026 ٣:05 PM",
    "2-14-2026 3:05 PM",
    "2//2026 3:05 PM",
    "2/14/2026/1 3:05 PM",
    "2/14/9999 3:05 PM",
    "",
    "PM",
    "3:05 PM",
]


@pytest.mark.parametrize("text", START_EDGES)
def test_quick_start_agrees_or_defers(text: str) -> None:
    quick = quick_utc_start(text)
    # None defers to parse_start_time; a number must be the number it would give.
    assert quick is None or quick == parse_start_time(text, UTC)


def test_quick_start_takes_the_common_shape() -> None:
    # Not only deferring: the shape real replies have is the quick path's own.
    assert quick_utc_start("2/14/2026 3:05 PM") == parse_start_time("2/14/2026 3:05 PM", UTC)
    assert quick_utc_start("02/04/2026 03:05 AM") is not None


start_texts = st.one_of(
    st.builds(
        lambda m, d, y, h, mi, ap, sep: f"{m}/{d}/{y}{sep}{h}:{mi:02d} {ap}",
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(1999, 2101),
        st.integers(0, 13),
        st.integers(0, 61),
        st.sampled_from(["AM", "PM", "am"]),
        st.sampled_from([" ", "  ", "\t"]),
    ),
    st.from_regex(r"\A[0-9]{1,3}/[0-9]{1,3}/[0-9]{2,5} [0-9]{1,3}:[0-9]{1,3} [AP]M\Z"),
    st.text(max_size=24),
)


@settings(max_examples=1000, deadline=None)
@given(start_texts)
def test_quick_start_is_parse_start_time(text: str) -> None:
    quick = quick_utc_start(text)
    assert quick is None or quick == parse_start_time(text, UTC)


# A UTC zone by another name: `_Builder` sends its Start Times to parse_start_time alone.
CAREFUL_UTC = ZoneInfo("Etc/Zulu")
HEADER = "ID|Status|Entry ID|Entry|Technician ID|Technician|Start Time|Waiting Time|"


def table(rows: list[list[str]]) -> bytes:
    lines = ["OK", "", HEADER] + ["|".join(row) + "|" for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_rescue_table_in_either_path() -> None:
    rows = [
        [str(i), "Waiting", "1", "Chan", "2", "Tech", start, "30"]
        for i, start in enumerate(START_EDGES, start=1000)
    ]
    body = table(rows)
    quick, careful = parse_sessions(body, UTC), parse_sessions(body, CAREFUL_UTC)
    assert quick == careful
    assert quick.invalid_values and quick.implausible_values  # the edges reach both counts


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["1", "22", "x", "", "1" * 19]),
            st.sampled_from(["Waiting", "Active", "", "Ativas"]),
            start_texts.filter(lambda t: "|" not in t and "\n" not in t and "\r" not in t),
            st.sampled_from(["", "0", "30", "700000", "x"]),
        ),
        max_size=20,
    )
)
def test_rescue_tables_in_either_path(rows: list[tuple[str, str, str, str]]) -> None:
    body = table(
        [[sid, status, "1", "Chan", "2", "Tech", start, wait] for sid, status, start, wait in rows]
    )
    assert_read_alike(
        body, lambda b: parse_sessions(b, CAREFUL_UTC), lambda b: parse_sessions(b, UTC)
    )


def assert_read_alike(
    body: bytes, careful: Callable[[bytes], SessionList], quick: Callable[[bytes], SessionList]
) -> None:
    """Both readings of `body` give the same SessionList, or both refuse it."""
    try:
        expected = careful(body)
    except ParseError:
        with pytest.raises(ParseError):
            quick(body)
        return
    assert quick(body) == expected


# -- Glance completed-sessions pages -------------------------------------------------------
# The element-by-element reader `_walk_sessions` replaced, verbatim but for the `_time`
# of the guests (then a module function, the same one `_Tally.time` memoises).


def reference_children(item: etree._Element, wanted: dict[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for child in item:
        name = wanted.get(child.tag)
        if name is not None and name not in found and child.text is not None:
            found[name] = clean_text(child.text.strip())
    return found


def reference_time(text: str | None, name: str, tally: glance._Tally) -> float | None:
    """A time as the parser reads it, without its memo: unreadable ones are counted."""
    when = glance.parse_time(text)
    if when is None:
        tally.invalid_values += bool(text and text.strip())
    elif not plausible_epoch(when):
        raise glance._Implausible(name)
    return when


def reference_guest_starts(
    item: etree._Element, tally: glance._Tally
) -> tuple[float | None, float | None]:
    guests = item.find(glance._q("guests"))
    if guests is None:
        return None, None
    visitor: float | None = None
    agent: float | None = None
    for guest in guests.iterfind(glance._q("guest")):
        fields = reference_children(guest, glance._GUEST_FIELDS)
        kind = fields.get("type", "").lower()
        if kind not in ("visitor", "agent"):
            continue
        when = reference_time(fields.get("startTime"), "guest startTime", tally)
        if when is None:
            continue
        if kind == "visitor":
            visitor = when if visitor is None else min(visitor, when)
        else:
            agent = when if agent is None else min(agent, when)
    return visitor, agent


def reference_sessions(
    parent: etree._Element, user: str, tally: glance._Tally
) -> list[glance.Session] | None:
    sessions: list[glance.Session] = []
    container = parent.find(glance._q("sessions"))
    if container is None:
        return sessions
    for item in container.iterfind(glance._q("session")):
        if tally.full():
            return None
        fields = reference_children(item, glance._SESSION_FIELDS)
        unread = tally.invalid_values
        try:
            session_id = glance._int(fields.get("id"), "id")
            session_type = glance._present(fields.get("type"), "type")
            status = glance._present(fields.get("status"), "status")
            start_time = reference_time(fields.get("startTime"), "startTime", tally)
            duration = glance._seconds(fields.get("duration"), "duration")
            visitor, agent = reference_guest_starts(item, tally)
            if (
                visitor is not None
                and agent is not None
                and not plausible_seconds(max(0.0, agent - visitor))
            ):
                raise glance._Implausible("wait")
            sessions.append(
                glance.Session(
                    id=session_id,
                    type=session_type,
                    status=status,
                    start_time=start_time,
                    duration=duration,
                    partner_user_id=user,
                    visitor_start=visitor,
                    agent_start=agent,
                )
            )
            tally.kept(session_id, unread)
        except glance._Skip as exc:
            tally.skip(exc, unread, glance._readable_id(fields.get("id")))
    return sessions


def reference_group_sessions(body: bytes, max_records: int) -> glance.GroupSessions:
    root = glance._root(body, "groupSessions", glance.MAX_BYTES)
    # The reference's own reading: a negative one marks the last page, as 0 does.
    next_text = glance._text(root, "nextId")
    negative = next_text is not None and next_text.startswith("-")
    next_id = strict_int(next_text[1:] if negative else next_text) if next_text else None
    if next_text and next_id is None:
        raise ParseError("nextId is not a whole number")
    if negative:
        next_id = 0
    sessions: list[glance.Session] = []
    invalid: list[str] = []
    tally = glance._Tally(max_records)
    users = root.find(glance._q("users"))
    if users is not None:
        for group in users.iterfind(glance._q("userSessions")):
            user = glance._text(group, "partnerUserId") or ""
            valid = glance._text(group, "validUser")
            if valid is not None and not glance._bool(valid):
                invalid.append(user)
            found = reference_sessions(group, user, tally)
            if found is None:
                return glance.GroupSessions(next_id, [], over_limit=glance._count(root, "session"))
            sessions.extend(found)
    return glance.GroupSessions(
        next_id,
        sessions,
        tally.skipped,
        invalid,
        tally.implausible,
        invalid_values=tally.invalid_values,
        rejected_ids=tuple(tally.rejected_ids),
    )


def page(users: str) -> bytes:
    return (
        f'<groupSessions xmlns="{glance.NS}"><nextId>5</nextId>'
        f"<users>{users}</users></groupSessions>"
    ).encode()


def guest(kind: str, start: str) -> str:
    return (
        f"<guest><type>{kind}</type><status>C</status><startTime>{start}</startTime>"
        f"<duration>9</duration><location><city>X</city></location></guest>"
    )


def session(body: str) -> str:
    return f"<session>{body}</session>"


OK_FIELDS = (
    "<id>7</id><type>C</type><status>C</status><startTime>2026-02-08T14:40:00Z"
    "</startTime><duration>95</duration>"
)
T0, T1 = "2026-02-08T14:40:00Z", "2026-02-08T14:41:00Z"

PAGE_EDGES = {
    "ordinary": session(OK_FIELDS + f"<guests>{guest('visitor', T0)}{guest('agent', T1)}</guests>"),
    "fields after guests": session(f"<guests>{guest('agent', T1)}</guests>" + OK_FIELDS),
    "second guests ignored": session(
        OK_FIELDS + f"<guests>{guest('visitor', T0)}</guests><guests>{guest('agent', T1)}</guests>"
    ),
    "first id empty, second read": session("<id/><id>8</id><type>C</type><status>C</status>"),
    "first id blank text": session("<id>  </id><id>8</id><type>C</type><status>C</status>"),
    "id with child element": session("<id><x/>9</id><type>C</type><status>C</status>"),
    "nested session ignored": session(
        OK_FIELDS + session("<id>99</id><type>V</type><status>X</status>")
    ),
    "session in a guest": session(
        OK_FIELDS
        + "<guests><guest><type>agent</type>"
        + session("<id>98</id><type>V</type><status>X</status>")
        + f"<startTime>{T1}</startTime></guest></guests>"
    ),
    "guest fields beside guests": session(
        OK_FIELDS + f"<guests><type>agent</type><startTime>{T1}</startTime></guests>"
    ),
    "stray guest field after a guest": session(
        OK_FIELDS + f"<guests><guest><type>agent</type></guest><startTime>{T1}</startTime></guests>"
    ),
    "guest field nested deeper": session(
        OK_FIELDS + "<guests><guest><type>agent</type>"
        f"<location><startTime>{T1}</startTime></location>"
        "</guest></guests>"
    ),
    "guest nested in guest": session(
        OK_FIELDS + "<guests><guest><type>visitor</type>"
        f"<startTime>{T0}</startTime>{guest('agent', T1)}"
        "</guest></guests>"
    ),
    "guest startTime implausible": session(
        OK_FIELDS + f"<guests>{guest('agent', '9999-01-01T00:00:00Z')}</guests>"
    ),
    "wait over a week": session(
        OK_FIELDS + f"<guests>{guest('visitor', T0)}"
        f"{guest('agent', '2026-03-08T14:40:00Z')}</guests>"
    ),
    "unknown kinds": session(
        OK_FIELDS + f"<guests>{guest('Agent', T1)}{guest('bot', T0)}</guests>"
    ),
    "missing id then implausible": session(
        "<type>C</type><status>C</status><startTime>9999-01-01T00:00:00Z</startTime>"
    ),
    "implausible duration": session(OK_FIELDS.replace(">95<", ">1e308<")),
    "NaN duration": session(OK_FIELDS.replace(">95<", ">NaN<")),
    "non-ASCII text": session(OK_FIELDS.replace("<type>C", "<type> Cé ")),
    "no type": session("<id>7</id><status>C</status>"),
    "huge id": session("<id>" + "9" * 40 + "</id><type>C</type><status>C</status>"),
    "session outside sessions": session(OK_FIELDS),
}


def group(user: str, sessions: str, valid: str = "true") -> str:
    return (
        f"<userSessions><partnerUserId>{user}</partnerUserId>"
        f"<validUser>{valid}</validUser><sessions>{sessions}</sessions></userSessions>"
    )


@pytest.mark.parametrize("name", sorted(PAGE_EDGES))
def test_glance_page_edges(name: str) -> None:
    item = PAGE_EDGES[name]
    if name == "session outside sessions":
        body = page(
            f"<userSessions><partnerUserId>u</partnerUserId>{item}"
            f"<sessions>{session(OK_FIELDS)}</sessions></userSessions>"
        )
    else:
        body = page(group("A", item + session(OK_FIELDS)) + group("B", item, "false"))
    assert glance.parse_group_sessions(body) == reference_group_sessions(body, 100_000)


def test_glance_page_structure_edges() -> None:
    ordinary = PAGE_EDGES["ordinary"]
    bodies = [
        page(""),
        page(group("A", "")),
        page(
            group("A", ordinary) + f"<userSessions><sessions>{ordinary}</sessions>"
            f"<sessions>{ordinary}</sessions></userSessions>"
        ),  # only the first <sessions>
        page(f"<sessions>{ordinary}</sessions>" + group("A", ordinary)),  # not in a group
        page(
            group("A", ordinary) + "<userSessions><partnerUserId>B</partnerUserId></userSessions>"
        ),
        page(f"<userSessions><x>{group('A', ordinary)}</x></userSessions>"),
    ]
    for body in bodies:
        assert glance.parse_group_sessions(body) == reference_group_sessions(body, 100_000)


@pytest.mark.parametrize("limit", [0, 1, 2, 3])
def test_glance_page_limits(limit: int) -> None:
    body = page(group("A", PAGE_EDGES["ordinary"] * 2) + group("B", PAGE_EDGES["no type"]))
    expected = reference_group_sessions(body, limit)
    assert glance.parse_group_sessions(body, max_records=limit) == expected


# Hypothesis: random trees from the page's own vocabulary, so that fields, guests and
# sessions turn up in every place and order, with texts from the edges above.
TAGS = [
    "session",
    "sessions",
    "guests",
    "guest",
    "id",
    "type",
    "status",
    "startTime",
    "duration",
    "userSessions",
    "partnerUserId",
    "validUser",
    "location",
]
TEXTS = [
    None,
    "",
    " 7 ",
    "61000000",
    "C",
    "X",
    "visitor",
    "agent",
    " AGENT ",
    T0,
    T1,
    "2026-02-08T14:40:33",
    "9999-01-01T00:00:00Z",
    "nan",
    "1e308",
    "-5",
    "95",
    "é",
    "true",
    "false",
]


def elements(depth: int) -> st.SearchStrategy[str]:
    leaf = st.builds(
        lambda tag, text: f"<{tag}>{text or ''}</{tag}>" if text is not None else f"<{tag}/>",
        st.sampled_from(TAGS),
        st.sampled_from(TEXTS),
    )
    if depth == 0:
        return leaf
    node = st.builds(
        lambda tag, text, kids: f"<{tag}>{text or ''}{''.join(kids)}</{tag}>",
        st.sampled_from(TAGS),
        st.sampled_from(TEXTS),
        st.lists(elements(depth - 1), max_size=5),
    )
    return st.one_of(leaf, node)


def realistic() -> st.SearchStrategy[str]:
    fields = st.lists(
        st.sampled_from(
            [
                "<id>7</id>",
                "<id>8</id>",
                "<id/>",
                "<type>C</type>",
                "<type/>",
                "<status>C</status>",
                f"<startTime>{T0}</startTime>",
                "<startTime>9999-01-01T00:00:00Z</startTime>",
                "<duration>95</duration>",
                "<duration>NaN</duration>",
                f"<guests>{guest('visitor', T0)}{guest('agent', T1)}</guests>",
                f"<guests>{guest('agent', '2026-03-08T14:40:00Z')}</guests>",
                "<guests><guest><type>agent</type></guest></guests>",
                f"<guests><guest><type>agent</type></guest><startTime>{T1}</startTime></guests>",
                f"<guests><guest><type>agent</type><x><startTime>{T1}</startTime></x></guest>"
                "</guests>",
            ]
        ),
        max_size=9,
    )
    sessions = st.lists(fields.map(lambda f: session("".join(f))), max_size=4)
    return st.lists(
        st.builds(
            group,
            st.sampled_from(["A", "B", ""]),
            sessions.map("".join),
            st.sampled_from(["true", "false"]),
        ),
        max_size=3,
    ).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(realistic(), st.lists(elements(4), max_size=4).map("".join)),
    st.sampled_from([1, 2, 5, 100_000]),
)
def test_glance_walk_is_the_careful_reading(users: str, limit: int) -> None:
    body = page(users)
    try:
        expected = reference_group_sessions(body, limit)
    except ParseError:
        with pytest.raises(ParseError):
            glance.parse_group_sessions(body, max_records=limit)
        return
    assert glance.parse_group_sessions(body, max_records=limit) == expected


# -- Glance counts and active sessions -----------------------------------------------------
# The `find`-per-field readers `_first_texts` replaced, verbatim but for their own copy of
# `_text` (and of the item loop), so that they do not lean on the code under test.


def reference_text(parent: etree._Element, name: str) -> str | None:
    child = parent.find(glance._q(name))
    if child is None or child.text is None:
        return None
    return clean_text(child.text.strip())


def reference_required(parent: etree._Element, name: str) -> str:
    return glance._present(reference_text(parent, name), name)


def reference_session_counts(body: bytes, max_records: int) -> glance.Counts:
    root = glance._root(body, "ArrayOfSessionCount", glance.MAX_BYTES)
    records: list[glance.SessionCount] = []
    tally = glance._Tally(max_records)
    for item in root.iterfind(glance._q("sessionCount")):
        if tally.full():
            return glance.Counts([], over_limit=glance._count(root, "sessionCount"))
        try:
            records.append(
                glance.SessionCount(
                    type=reference_required(item, "type"),
                    status=reference_required(item, "status"),
                    count=glance._int(reference_text(item, "count"), "count"),
                    average_duration=glance._seconds(
                        reference_text(item, "averageDuration"), "averageDuration"
                    ),
                )
            )
        except glance._Skip as exc:
            row = (reference_text(item, "type"), reference_text(item, "status"))
            tally.skip(exc, record_id=row if all(row) else None)
    return glance.Counts(
        records, tally.skipped, tally.implausible, rejected_ids=tuple(tally.rejected_ids)
    )


def reference_active_sessions(body: bytes, max_records: int) -> glance.ActiveSessions:
    root = glance._root(body, "ArrayOfActiveSession", glance.MAX_BYTES)
    records: list[glance.ActiveSession] = []
    tally = glance._Tally(max_records)
    for item in root.iterfind(glance._q("activeSession")):
        if tally.full():
            return glance.ActiveSessions([], over_limit=glance._count(root, "activeSession"))
        unread = tally.invalid_values
        try:
            nguests_text = reference_text(item, "nguests")
            records.append(
                glance.ActiveSession(
                    id=glance._int(reference_text(item, "id"), "id"),
                    type=reference_required(item, "type"),
                    status=reference_required(item, "status"),
                    start_time=reference_time(
                        reference_text(item, "startTime"), "startTime", tally
                    ),
                    partner_user_id=reference_text(item, "partnerUserId") or "",
                    nguests=glance._int(nguests_text, "nguests") if nguests_text else 0,
                )
            )
            tally.kept(records[-1].id, unread)
        except glance._Skip as exc:
            tally.skip(exc, unread, glance._readable_id(reference_text(item, "id")))
    return glance.ActiveSessions(
        records,
        tally.skipped,
        tally.implausible,
        invalid_values=tally.invalid_values,
        rejected_ids=tuple(tally.rejected_ids),
    )


def array(root: str, items: str) -> bytes:
    return f'<{root} xmlns="{glance.NS}">{items}</{root}>'.encode()


def count_item(body: str) -> str:
    return f"<sessionCount>{body}</sessionCount>"


def active_item(body: str) -> str:
    return f"<activeSession>{body}</activeSession>"


COUNT_OK = "<type>C</type><status>C</status><count>12</count><averageDuration>95</averageDuration>"
ACTIVE_OK = (
    f"<id>7</id><type>C</type><status>A</status><startTime>{T0}</startTime><key>1</key>"
    "<partnerUserId>JDemo</partnerUserId><nguests>2</nguests>"
)

COUNT_EDGES = {
    "ordinary": count_item(COUNT_OK),
    "first type empty, second not read": count_item("<type/><type>C</type>" + COUNT_OK),
    "first type blank": count_item("<type> </type>" + COUNT_OK),
    "first count wins": count_item(COUNT_OK.replace("<count>12", "<count>3</count><count>12")),
    "first count empty": count_item("<count/>" + COUNT_OK),
    "count with child element": count_item(COUNT_OK.replace("<count>12", "<count><x/>12")),
    "count text before a child": count_item(COUNT_OK.replace("<count>12", "<count>12<x/>")),
    "whitespace": count_item("<type>\n C\t</type><status> C </status><count> 4 </count>"),
    "non-ASCII": count_item(COUNT_OK.replace("<type>C", "<type> Cé ")),
    "fields nested deeper": count_item("<x><type>C</type></x><status>C</status><count>1</count>"),
    "nested item": count_item(COUNT_OK + count_item(COUNT_OK.replace(">12<", ">99<"))),
    "item in a field": count_item(
        f"<type>C{count_item(COUNT_OK)}</type><status>C</status><count>1</count>"
    ),
    "no average": count_item("<type>C</type><status>C</status><count>1</count>"),
    "average NaN": count_item(COUNT_OK.replace(">95<", ">NaN<")),
    "average implausible": count_item(COUNT_OK.replace(">95<", ">1e308<")),
    "average negative": count_item(COUNT_OK.replace(">95<", ">-1<")),
    "average huge text": count_item(COUNT_OK.replace(">95<", ">" + "9" * 100 + "<")),
    "bad count then implausible": count_item(
        "<type>C</type><status>C</status><count>x</count><averageDuration>1e308</averageDuration>"
    ),
    "huge count": count_item(COUNT_OK.replace(">12<", ">" + "9" * 19 + "<")),
    "superscript count": count_item(COUNT_OK.replace(">12<", ">²<")),
    "fields of another namespace": count_item('<type xmlns="urn:x">V</type>' + COUNT_OK),
    "empty": count_item(""),
    "foreign item": "<other>" + COUNT_OK + "</other>",
}

ACTIVE_EDGES = {
    "ordinary": active_item(ACTIVE_OK),
    "first id empty, second not read": active_item("<id/><id>8</id>" + ACTIVE_OK),
    "first id wins": active_item("<id>9</id>" + ACTIVE_OK),
    "no nguests": active_item(ACTIVE_OK.replace("<nguests>2</nguests>", "")),
    "empty nguests": active_item(ACTIVE_OK.replace("<nguests>2</nguests>", "<nguests/>")),
    "blank nguests": active_item(ACTIVE_OK.replace("<nguests>2", "<nguests> ")),
    "bad nguests": active_item(ACTIVE_OK.replace("<nguests>2", "<nguests>two")),
    "no user": active_item(ACTIVE_OK.replace("<partnerUserId>JDemo</partnerUserId>", "")),
    "empty user": active_item(ACTIVE_OK.replace("JDemo", "")),
    "non-ASCII user": active_item(ACTIVE_OK.replace("JDemo", " Jé\u00a0")),
    "start implausible": active_item(ACTIVE_OK.replace(T0, "9999-01-01T00:00:00Z")),
    "start unreadable": active_item(ACTIVE_OK.replace(T0, "yesterday")),
    "start without zone": active_item(ACTIVE_OK.replace(T0, "2026-02-08T14:40:33")),
    "no id then implausible start": active_item(
        ACTIVE_OK.replace("<id>7</id>", "").replace(T0, "9999-01-01T00:00:00Z")
    ),
    "no status": active_item(ACTIVE_OK.replace("<status>A</status>", "")),
    "nested item": active_item(ACTIVE_OK + active_item(ACTIVE_OK.replace(">7<", ">8<"))),
    "fields nested deeper": active_item(f"<x>{ACTIVE_OK}</x>"),
}


@pytest.mark.parametrize("name", sorted(COUNT_EDGES))
def test_glance_counts_edges(name: str) -> None:
    body = array("ArrayOfSessionCount", COUNT_EDGES[name] + count_item(COUNT_OK))
    assert glance.parse_session_counts(body) == reference_session_counts(body, 100_000)


@pytest.mark.parametrize("name", sorted(ACTIVE_EDGES))
def test_glance_active_edges(name: str) -> None:
    body = array("ArrayOfActiveSession", ACTIVE_EDGES[name] + active_item(ACTIVE_OK))
    assert glance.parse_active_sessions(body) == reference_active_sessions(body, 100_000)


@pytest.mark.parametrize("limit", [-1, 0, 1, 2, 3])
def test_glance_counts_and_active_limits(limit: int) -> None:
    counts = array(
        "ArrayOfSessionCount",
        count_item(COUNT_OK) * 2 + count_item("") + f"<x>{count_item(COUNT_OK)}</x>",
    )
    active = array(
        "ArrayOfActiveSession",
        active_item(ACTIVE_OK) * 2 + active_item("") + f"<x>{active_item(ACTIVE_OK)}</x>",
    )
    assert glance.parse_session_counts(counts, max_records=limit) == reference_session_counts(
        counts, limit
    )
    assert glance.parse_active_sessions(active, max_records=limit) == reference_active_sessions(
        active, limit
    )


COUNT_TAGS = [
    "sessionCount",
    "activeSession",
    "type",
    "status",
    "count",
    "averageDuration",
    "id",
    "startTime",
    "partnerUserId",
    "nguests",
    "key",
]
COUNT_TEXTS = [*TEXTS, "12", " 3 ", "00", "A", "V", "x", "²", "2026-02-08T14:40:33Z"]


def count_elements(depth: int) -> st.SearchStrategy[str]:
    """Random trees of the counts' and active sessions' vocabulary, as `elements`."""
    leaf = st.builds(
        lambda tag, text: f"<{tag}>{text or ''}</{tag}>" if text is not None else f"<{tag}/>",
        st.sampled_from(COUNT_TAGS),
        st.sampled_from(COUNT_TEXTS),
    )
    if depth == 0:
        return leaf
    node = st.builds(
        lambda tag, text, kids: f"<{tag}>{text or ''}{''.join(kids)}</{tag}>",
        st.sampled_from(COUNT_TAGS),
        st.sampled_from(COUNT_TEXTS),
        st.lists(count_elements(depth - 1), max_size=6),
    )
    return st.one_of(leaf, node)


def realistic_items(item: str, fields: list[str]) -> st.SearchStrategy[str]:
    """Items made of plausible fields, some repeated, missing or out of place."""
    return st.lists(
        st.lists(st.sampled_from(fields), max_size=9).map(
            lambda f: f"<{item}>{''.join(f)}</{item}>"
        ),
        max_size=5,
    ).map("".join)


COUNT_FIELDS = [
    "<type>C</type>",
    "<type>V</type>",
    "<type/>",
    "<type> </type>",
    "<status>C</status>",
    "<status/>",
    "<count>12</count>",
    "<count>x</count>",
    "<count/>",
    "<averageDuration>95</averageDuration>",
    "<averageDuration>1e308</averageDuration>",
    "<averageDuration/>",
    "<x><count>5</count></x>",
]
ACTIVE_FIELDS = [
    "<id>7</id>",
    "<id>8</id>",
    "<id/>",
    "<type>C</type>",
    "<type/>",
    "<status>A</status>",
    f"<startTime>{T0}</startTime>",
    "<startTime>9999-01-01T00:00:00Z</startTime>",
    "<startTime/>",
    "<partnerUserId>JDemo</partnerUserId>",
    "<partnerUserId/>",
    "<nguests>2</nguests>",
    "<nguests>x</nguests>",
    "<nguests/>",
    "<key>1</key>",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        realistic_items("sessionCount", COUNT_FIELDS),
        st.lists(count_elements(3), max_size=4).map("".join),
    ),
    st.sampled_from([0, 1, 2, 100_000]),
)
def test_glance_counts_read_as_find_reads(items: str, limit: int) -> None:
    body = array("ArrayOfSessionCount", items)
    assert glance.parse_session_counts(body, max_records=limit) == reference_session_counts(
        body, limit
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        realistic_items("activeSession", ACTIVE_FIELDS),
        st.lists(count_elements(3), max_size=4).map("".join),
    ),
    st.sampled_from([0, 1, 2, 100_000]),
)
def test_glance_active_read_as_find_reads(items: str, limit: int) -> None:
    body = array("ArrayOfActiveSession", items)
    assert glance.parse_active_sessions(body, max_records=limit) == reference_active_sessions(
        body, limit
    )


# -- Glance PartnerUserSessions ------------------------------------------------------------
# Read by `_walk_sessions` now, as the group pages are; the reference is the
# element-by-element reading (`reference_sessions`) it replaced.


def reference_user_sessions(body: bytes, max_records: int) -> glance.UserSessions:
    root = glance._root(body, "userSessions", glance.MAX_BYTES)
    valid_text = reference_text(root, "validUser")
    if valid_text is None:
        raise ParseError("<validUser> is missing")
    tally = glance._Tally(max_records)
    sessions = reference_sessions(root, "", tally)
    if sessions is None:
        return glance.UserSessions(
            glance._bool(valid_text), [], over_limit=glance._count(root, "session")
        )
    return glance.UserSessions(
        glance._bool(valid_text),
        sessions,
        tally.skipped,
        tally.implausible,
        invalid_values=tally.invalid_values,
        rejected_ids=tuple(tally.rejected_ids),
    )


def user_page(inner: str, valid: str = "<validUser>true</validUser>") -> bytes:
    return f'<userSessions xmlns="{glance.NS}">{valid}{inner}</userSessions>'.encode()


@pytest.mark.parametrize("name", sorted(PAGE_EDGES))
def test_glance_user_edges(name: str) -> None:
    item = PAGE_EDGES[name]
    if name == "session outside sessions":
        body = user_page(f"{item}<sessions>{session(OK_FIELDS)}</sessions>")
    else:
        body = user_page(f"<sessions>{item}{session(OK_FIELDS)}</sessions>")
    assert glance.parse_user_sessions(body) == reference_user_sessions(body, 100_000)


def test_glance_user_structure_edges() -> None:
    ordinary = PAGE_EDGES["ordinary"]
    bodies = [
        user_page(""),
        user_page("<sessions/>"),
        user_page(f"<sessions>{ordinary}</sessions><sessions>{ordinary}</sessions>"),
        user_page(f"<x><sessions>{ordinary}</sessions></x>"),
        user_page(f"<sessions><x>{ordinary}</x>{ordinary}</sessions>"),
        user_page(f"<sessions>{ordinary}</sessions>", "<validUser>false</validUser>"),
        user_page(f"<sessions>{ordinary}</sessions>", "<validUser> 1 </validUser>"),
    ]
    for body in bodies:
        assert glance.parse_user_sessions(body) == reference_user_sessions(body, 100_000)
    for valid in ("", "<validUser/>"):  # an empty one is as missing as none
        with pytest.raises(ParseError, match="<validUser> is missing"):
            glance.parse_user_sessions(user_page(f"<sessions>{ordinary}</sessions>", valid))


@pytest.mark.parametrize("limit", [0, 1, 2, 3])
def test_glance_user_limits(limit: int) -> None:
    body = user_page(
        f"<sessions>{PAGE_EDGES['ordinary'] * 2}{PAGE_EDGES['no type']}"
        f"<x>{PAGE_EDGES['ordinary']}</x></sessions>"
    )
    expected = reference_user_sessions(body, limit)
    assert glance.parse_user_sessions(body, max_records=limit) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(realistic(), st.lists(elements(4), max_size=4).map("".join)),
    st.sampled_from([1, 2, 5, 100_000]),
)
def test_glance_user_walk_is_the_careful_reading(inner: str, limit: int) -> None:
    # `realistic()` draws whole <userSessions> groups: their <sessions> (and fields
    # around them) land directly under the reply's root, as in a PartnerUserSessions.
    body = user_page(inner)
    assert glance.parse_user_sessions(body, max_records=limit) == reference_user_sessions(
        body, limit
    )


# -- Rescue tables a column at a time -------------------------------------------------------
# `_clean_columns` reads a table with nothing to count; any other table it hands back to
# `_Builder`, row by row. Both readings of a table must be the same SessionList.

FULL_HEADER = HEADER + "Is Lead Technician|"


def full_table(rows: list[list[str]]) -> bytes:
    lines = ["OK", "", FULL_HEADER] + ["|".join(row) + "|" for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode()


def row_by_row(body: bytes, zone: tzinfo = UTC) -> SessionList:
    with patch.object(rescue, "_clean_columns", lambda *_: None):
        return parse_sessions(body, zone)


# FULL_HEADER's positions of the columns `_clean_columns` reads, in its order.
COLUMNS = [0, 1, 7, 6, 2, 3, 4, 5, 8]
CLEAN_ROW = ["1001", "Waiting", "7", "Chan", "9", "Tech", "2/14/2026 3:05 PM", "30", "Yes"]
# One cell of a clean row (its position, its new text) that `_Builder` would count or
# skip the row for; each must send the whole table down the row-by-row path.
UNCLEAN_CELLS = [
    (0, ""),
    (0, "x"),
    (0, "1" * 19),
    (0, "١٢"),
    (0, "+1"),
    (1, ""),
    (1, "  "),
    (7, "x"),
    (7, "700000"),
    (7, "1" * 19),
    (7, "-1"),
    (6, "2/30/2026 3:05 PM"),
    (6, "2/14/9999 3:05 PM"),
    (6, "12/31/1999 11:59 PM"),
    (6, "yesterday"),
]


QUICK_STARTS = [
    "2/14/2026 3:05 PM",
    "2/14/2026 12:05 AM",
    "12/31/2099 11:59 PM",
    "1/1/2000 12:00 AM",
    "02/04/2026 03:05 AM",
    "2/29/2024 1:00 AM",
]


@pytest.mark.parametrize("odd_start", ["2/14/2026 3:05 PM", "2/14/2026 15:05"])
def test_a_clean_table_is_read_a_column_at_a_time(odd_start: str) -> None:
    rows = [[str(1000 + i), *CLEAN_ROW[1:]] for i in range(len(QUICK_STARTS) + 3)]
    for row, start in zip(rows, QUICK_STARTS, strict=False):
        row[6] = start
    rows[-3][7] = ""  # an empty Waiting Time is no count, only unknown
    rows[-2][6] = ""
    rows[-1][6] = odd_start  # not the quick shape: read by parse_start_time
    rows[0][8] = " no "
    body = full_table(rows)
    _, table, _ = rescue._rows(rescue._status(rescue._decode(body), GET_SESSION_CODES)[1])
    assert rescue._clean_columns(table, COLUMNS, UTC) is not None
    assert parse_sessions(body) == row_by_row(body)


@pytest.mark.parametrize(("position", "text"), UNCLEAN_CELLS)
def test_a_table_with_anything_to_count_is_read_row_by_row(position: int, text: str) -> None:
    rows = [[str(1000 + i), *CLEAN_ROW[1:]] for i in range(3)]
    rows[1][position] = text
    table = [[cell.strip() for cell in row] for row in rows]
    assert rescue._clean_columns(table, COLUMNS, UTC) is None
    body = full_table(rows)
    careful = row_by_row(body)
    assert careful.invalid_records + careful.invalid_values + careful.implausible_values
    assert parse_sessions(body) == careful


cells = st.sampled_from


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            cells(["1", "22", " 333 ", "\u00a0444\u2003", "x", "", " ", "1" * 18, "1" * 19, "٣"]),
            cells(["Waiting", "Active", "", " Ativas ", "Waiting"]),
            cells(["7", "", " 8 "]),
            cells(["Chan", "", " Chan", "Канал"]),
            cells(QUICK_STARTS)
            | start_texts.filter(lambda t: "|" not in t and "\n" not in t and "\r" not in t),
            cells(["", " ", "0", "30", " 30 ", "\u00a030", "604800", "604801", "x", "²"]),
            cells(["", "Yes", "no", "SIM", "True "]),
        ),
        max_size=12,
    ),
    st.sampled_from([UTC, ZoneInfo("UTC"), CAREFUL_UTC, ZoneInfo("America/Sao_Paulo")]),
)
def test_rescue_tables_read_either_way(
    rows: list[tuple[str, str, str, str, str, str, str]], zone: tzinfo
) -> None:
    body = full_table(
        [
            [sid, status, cid, channel, "2", "Tech", start, wait, lead]
            for sid, status, cid, channel, start, wait, lead in rows
        ]
    )
    assert_read_alike(body, lambda b: row_by_row(b, zone), lambda b: parse_sessions(b, zone))
