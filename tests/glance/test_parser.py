from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.errors import ParseError
from exporter.vendors.glance.parser import (
    NS,
    parse_active_sessions,
    parse_group_sessions,
    parse_session_counts,
    parse_time,
    parse_user_sessions,
)

from .harness import sample

PARSERS = {
    "PartnerSessionCounts": parse_session_counts,
    "PartnerSessionCountsEnding": parse_session_counts,
    "PartnerActiveSessions": parse_active_sessions,
    "PartnerCompletedSessions": parse_group_sessions,
    "PartnerCompletedSessionsEnding": parse_group_sessions,
    "PartnerUserSessions": parse_user_sessions,
}


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_session_counts_sample() -> None:
    counts = parse_session_counts(sample("PartnerSessionCounts"))
    assert [(r.type, r.status, r.count, r.average_duration) for r in counts.records] == [
        ("C", "C", 141, 748),
        ("C", "Q", 2, 106),
        ("C", "T", 24, 127),
        ("C", "X", 2, 905),
        ("G", "C", 123, 619),
    ]
    assert counts.skipped == 0


def test_session_counts_ending_sample() -> None:
    counts = parse_session_counts(sample("PartnerSessionCountsEnding"))
    assert [(r.type, r.status, r.count, r.average_duration) for r in counts.records] == [
        ("C", "C", 2, 40),
        ("C", "Q", 3, 8),
        ("C", "T", 2, 125),
    ]


def test_active_sessions_sample() -> None:
    (record,) = parse_active_sessions(sample("PartnerActiveSessions")).records
    assert record.id == 61943691
    assert (record.type, record.status) == ("C", "A")
    assert record.start_time == ts("2020-03-31T20:13:58")
    assert record.partner_user_id == "JDemo"
    assert record.nguests == 2


@pytest.mark.parametrize("name", ["PartnerCompletedSessions", "PartnerCompletedSessionsEnding"])
def test_completed_sessions_samples(name: str) -> None:
    page = parse_group_sessions(sample(name))
    assert page.next_id == 61943153
    (session,) = page.sessions
    assert session.id == 61874627
    assert (session.type, session.status) == ("C", "C")
    assert session.start_time == ts("2020-03-31T12:43:12")
    assert session.duration == 7  # the session's, not a guest's
    assert session.partner_user_id == "JDemo"
    assert page.invalid_users == []
    assert page.skipped == 0


def test_user_sessions_sample() -> None:
    reply = parse_user_sessions(sample("PartnerUserSessions"))
    assert reply.valid_user is True
    (session,) = reply.sessions
    assert (session.id, session.type, session.status, session.duration) == (61943691, "C", "C", 687)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_doc_samples_copied_verbatim_mean_the_glance_namespace(name: str) -> None:
    """The doc prints the namespace as a markdown link; a reply copied from it verbatim
    parses exactly like the real one (other namespaces are refused: see below)."""
    assert PARSERS[name](sample(name, unmangle=False)) == PARSERS[name](sample(name))


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_truncated_sample(name: str) -> None:
    body = sample(name)
    with pytest.raises(ParseError):
        PARSERS[name](body[: len(body) // 2])


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_wrong_root_element(name: str) -> None:
    other = "PartnerActiveSessions" if "Active" not in name else "PartnerSessionCounts"
    with pytest.raises(ParseError, match="expected"):
        PARSERS[name](sample(other))


def test_wrong_namespace() -> None:
    body = sample("PartnerActiveSessions").replace(NS.encode(), b"http://evil.example/services")
    with pytest.raises(ParseError, match=r"evil\.example"):
        parse_active_sessions(body)


def test_no_namespace() -> None:
    with pytest.raises(ParseError):
        parse_session_counts(b"<ArrayOfSessionCount><sessionCount/></ArrayOfSessionCount>")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<ArrayOfSessionCount xmlns="http://www.glancenetworks.com/services">
 <sessionCount><type>&lol4;</type><status>C</status><count>1</count></sessionCount>
</ArrayOfSessionCount>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<userSessions xmlns="http://www.glancenetworks.com/services">
 <validUser>true</validUser>
 <sessions><session><id>1</id><type>&secret;</type><status>A</status></session></sessions>
</userSessions>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x SYSTEM "http://127.0.0.1:1/evil.dtd">
<ArrayOfActiveSession xmlns="http://www.glancenetworks.com/services"/>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY])
def test_dtds_and_entities_are_refused(body: bytes) -> None:
    parser = (
        parse_user_sessions
        if b"userSessions" in body
        else (parse_active_sessions if b"Active" in body else parse_session_counts)
    )
    with pytest.raises(ParseError, match="DTD"):
        parser(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"not xml at all",
        b"<ArrayOfSessionCount",
        b"\x00\xff\xfe<",
        b"<?xml version='1.0'?>",
        b'{"json": true}',
        b"<a><b></a>",
    ],
)
def test_malformed(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_session_counts(body)


def test_oversized_body() -> None:
    body = sample("PartnerSessionCounts") + b" " * (16 * 1024 * 1024)
    with pytest.raises(ParseError, match="cap"):
        parse_session_counts(body)
    with pytest.raises(ParseError, match="cap"):
        parse_session_counts(sample("PartnerSessionCounts"), max_bytes=100)


def _counts(*items: str) -> bytes:
    return (
        f'<ArrayOfSessionCount xmlns="{NS}">' + "".join(items) + "</ArrayOfSessionCount>"
    ).encode()


def test_unusable_count_records_are_skipped_not_fatal() -> None:
    body = _counts(
        "<sessionCount><type>C</type><status>C</status><count>3</count></sessionCount>",
        "<sessionCount><type>C</type><status>Q</status><count>many</count></sessionCount>",
        "<sessionCount><type>G</type><status>C</status><count>-1</count></sessionCount>",
        "<sessionCount><status>C</status><count>1</count></sessionCount>",
        "<sessionCount><type>V</type><status>Z</status><count>4</count>"
        "<averageDuration>soon</averageDuration></sessionCount>",
    )
    counts = parse_session_counts(body)
    assert [(r.type, r.status, r.count, r.average_duration) for r in counts.records] == [
        ("C", "C", 3, None),
        ("V", "Z", 4, None),
    ]
    assert counts.skipped == 3


def test_a_count_beyond_a_billion_is_implausible_and_a_billion_is_not() -> None:
    # 18 digits are a number to `strict_int`, but 10**18 sessions today, as a gauge,
    # flattened every other line of the dashboard.
    def count(n: int) -> str:
        return f"<sessionCount><type>C</type><status>C</status><count>{n}</count></sessionCount>"

    counts = parse_session_counts(_counts(count(10**9), count(10**9 + 1), count(10**18 - 1)))
    assert [r.count for r in counts.records] == [10**9]
    assert (counts.skipped, counts.implausible) == (2, 2)


def test_a_guest_count_beyond_a_billion_rejects_the_active_session() -> None:
    def active(i: int, guests: int) -> str:
        return (
            f"<activeSession><id>{i}</id><type>C</type><status>A</status>"
            f"<nguests>{guests}</nguests></activeSession>"
        )

    body = (
        f'<ArrayOfActiveSession xmlns="{NS}">{active(1, 3)}{active(2, 10**12)}'
        "</ArrayOfActiveSession>"
    ).encode()
    reply = parse_active_sessions(body)
    assert [(r.id, r.nguests) for r in reply.records] == [(1, 3)]
    assert (reply.skipped, reply.implausible) == (1, 1)


def test_an_unreadable_start_keeps_the_active_session_and_is_counted() -> None:
    # Probe 7: a waiting session's startTime it could not read became None unseen, and
    # the oldest-waiting gauge lost it without a word.
    def active(i: int, start: str) -> str:
        return (
            f"<activeSession><id>{i}</id><type>C</type><status>W</status>"
            f"<startTime>{start}</startTime></activeSession>"
        )

    body = (
        f'<ArrayOfActiveSession xmlns="{NS}">{active(1, "2026-03-10T12:00:00Z")}'
        f"{active(2, 'soon')}{active(3, '2026-13-45T00:00:00Z')}{active(4, '')}"
        "</ArrayOfActiveSession>"
    ).encode()
    reply = parse_active_sessions(body)
    assert [(r.id, r.start_time) for r in reply.records] == [
        (1, ts("2026-03-10T12:00:00")),
        (2, None),
        (3, None),
        (4, None),
    ]
    assert (reply.skipped, reply.invalid_values) == (0, 2)  # an empty one is absent
    assert reply.rejected_ids == (("invalid_value", 2), ("invalid_value", 3))


def test_group_sessions_edge_cases() -> None:
    body = f"""<groupSessions xmlns="{NS}"><users>
      <userSessions><partnerUserId>Gone</partnerUserId><validUser>false</validUser></userSessions>
      <userSessions><partnerUserId>U1</partnerUserId><validUser>true</validUser><sessions>
        <session><id>5</id><type>Z</type><status>?</status><duration>soon</duration></session>
        <session><type>C</type><status>C</status></session>
        <session><id>6</id><type>C</type><status>C</status><duration>12</duration>
          <startTime>yesterday</startTime></session>
      </sessions></userSessions></users></groupSessions>""".encode()
    page = parse_group_sessions(body)
    assert page.next_id is None
    assert [(s.id, s.type, s.status, s.duration, s.start_time) for s in page.sessions] == [
        (5, "Z", "?", None, None),
        (6, "C", "C", 12, None),
    ]
    assert (page.skipped, page.implausible) == (1, 0)
    assert page.invalid_values == 1  # the kept session's startTime "yesterday"
    assert page.invalid_users == ["Gone"]
    # The session without an id cannot be told apart from another: no id is handed back.
    assert page.rejected_ids == (("invalid_value", 6),)


def _group(*sessions: str) -> bytes:
    return (
        f'<groupSessions xmlns="{NS}"><users><userSessions><partnerUserId>U'
        "</partnerUserId><validUser>true</validUser><sessions>"
        + "".join(sessions)
        + "</sessions></userSessions></users></groupSessions>"
    ).encode()


def _session(
    sid: int, *, duration: str = "60", start: str = "2026-03-10T12:00:00Z", guests: str = ""
) -> str:
    return (
        f"<session><id>{sid}</id><type>C</type><status>C</status>"
        f"<startTime>{start}</startTime><duration>{duration}</duration>"
        f"<guests>{guests}</guests></session>"
    )


def _guest(kind: str, start: str) -> str:
    return f"<guest><type>{kind}</type><startTime>{start}</startTime></guest>"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("duration", "1e308"),
        ("duration", "-4"),
        ("duration", "NaN"),
        ("duration", "Infinity"),
        ("duration", "1e400"),
        ("duration", str(7 * 86400 + 1)),
        ("start", "9999-12-31T23:59:59Z"),
        ("start", "0001-01-01T00:00:00Z"),
        ("guest", "9999-12-31T23:59:59Z"),
        ("guest", "0001-01-01T00:00:00"),
    ],
)
def test_implausible_numbers_and_dates_reject_the_session(field: str, value: str) -> None:
    bad = {
        "duration": _session(2, duration=value),
        "start": _session(2, start=value),
        "guest": _session(2, guests=_guest("visitor", value)),
    }[field]
    page = parse_group_sessions(_group(_session(1), bad))
    assert [s.id for s in page.sessions] == [1]
    assert (page.skipped, page.implausible) == (1, 1)


@pytest.mark.parametrize("duration", ["\u0667", "1_0", "\uff17", "0x10", "12 s"])
def test_a_duration_that_is_no_ascii_decimal_is_unreadable(duration: str) -> None:
    # Probe 9: `float` read Arabic-Indic `7` and `1_0` as 7 s and 10 s.
    (session,) = parse_group_sessions(_group(_session(1, duration=duration))).sessions
    assert session.duration is None


def test_an_offset_with_a_one_digit_hour_is_read_as_the_conventions_write_it() -> None:
    # glance-web-services-conventions: "2012-12-01T16:08:00-5:00 Time with offset from UTC"
    (session,) = parse_group_sessions(
        _group(_session(1, start="2012-12-01T16:08:00-5:00"))
    ).sessions
    assert session.start_time == ts("2012-12-01T21:08:00")


def test_a_wait_of_more_than_a_week_is_implausible() -> None:
    guests = _guest("visitor", "2026-03-01T00:00:00Z") + _guest("agent", "2026-03-09T00:00:00Z")
    page = parse_group_sessions(_group(_session(1, guests=guests)))
    assert (page.sessions, page.implausible) == ([], 1)


def test_guest_starts_are_the_earliest_visitor_and_agent() -> None:
    guests = (
        _guest("agent", "2026-03-10T12:00:40Z")
        + _guest("Visitor", "2026-03-10T12:00:30Z")
        + _guest("visitor", "2026-03-10T12:00:05Z")
        + _guest("agent", "2026-03-10T12:00:20Z")
        + _guest("observer", "2026-03-10T11:00:00Z")
        + _guest("agent", "garbage")
    )
    page = parse_group_sessions(_group(_session(1, guests=guests)))
    (session,) = page.sessions
    assert page.invalid_values == 1  # the agent's "garbage"
    assert session.visitor_start == ts("2026-03-10T12:00:05")
    assert session.agent_start == ts("2026-03-10T12:00:20")
    (alone,) = parse_group_sessions(
        _group(_session(2, guests=_guest("visitor", "2026-03-10T12:00:05Z")))
    ).sessions
    assert (alone.visitor_start, alone.agent_start) == (ts("2026-03-10T12:00:05"), None)


def test_doc_sample_guest_times() -> None:
    (session,) = parse_group_sessions(sample("PartnerCompletedSessionsEnding")).sessions
    assert session.visitor_start == ts("2020-03-31T12:43:09")
    assert session.agent_start == ts("2020-03-31T12:43:12")


def test_replies_over_the_record_limit_are_not_built() -> None:
    body = _group(*(_session(i) for i in range(1, 6)))
    assert len(parse_group_sessions(body, max_records=5).sessions) == 5
    page = parse_group_sessions(body, max_records=4)
    assert (page.sessions, page.over_limit) == ([], 5)
    counts = _counts(
        *["<sessionCount><type>C</type><status>C</status><count>1</count></sessionCount>"] * 3
    )
    assert parse_session_counts(counts, max_records=2).over_limit == 3
    assert parse_session_counts(counts, max_records=3).over_limit is None


def test_a_lone_surrogate_is_made_encodable() -> None:
    # lxml refuses a raw surrogate, so one can only arrive as a character reference,
    # which XML forbids too; an unpaired surrogate escape in text is therefore a parse
    # error, and everything else is valid UTF-8 by construction.
    with pytest.raises(ParseError):
        parse_group_sessions(_group(_session(1).replace("<type>C</type>", "<type>&#xD800;</type>")))


@pytest.mark.parametrize("digits", ["9" * 19, "9" * 5000, "\u00b2", "\u0661\u0660"])
def test_numbers_are_ascii_digits_of_bounded_length(digits: str) -> None:
    page = parse_group_sessions(_group(_session(1).replace("<id>1</id>", f"<id>{digits}</id>")))
    assert (page.sessions, page.skipped, page.implausible) == ([], 1, 0)
    with pytest.raises(ParseError, match="nextId"):
        parse_group_sessions(
            f'<groupSessions xmlns="{NS}"><nextId>{digits}</nextId></groupSessions>'.encode()
        )


@pytest.mark.parametrize("text", ["abc", "+100", "-", "-abc", "1e3", "-" + "9" * 19])
def test_group_sessions_bad_next_id(text: str) -> None:
    body = f'<groupSessions xmlns="{NS}"><nextId>{text}</nextId></groupSessions>'.encode()
    with pytest.raises(ParseError, match="nextId"):
        parse_group_sessions(body)


@pytest.mark.parametrize("text", ["-1", " -1 ", "-0", "-61943153"])
def test_a_negative_next_id_marks_the_last_page_as_zero_does(text: str) -> None:
    # Probe 13: read as a parse error, -1 failed the feed on every retry, for good.
    body = f'<groupSessions xmlns="{NS}"><nextId>{text}</nextId></groupSessions>'.encode()
    assert parse_group_sessions(body).next_id == 0


def test_user_sessions_needs_valid_user() -> None:
    with pytest.raises(ParseError, match="validUser"):
        parse_user_sessions(f'<userSessions xmlns="{NS}"><sessions/></userSessions>'.encode())
    reply = parse_user_sessions(
        f'<userSessions xmlns="{NS}"><validUser>false</validUser></userSessions>'.encode()
    )
    assert reply.valid_user is False
    assert reply.sessions == []


@pytest.mark.parametrize(
    ("text", "valid"), [("true", True), ("True", True), ("1", True), ("false", False), ("0", False)]
)
def test_valid_user_is_an_xsd_boolean(text: str, valid: bool) -> None:
    body = f'<userSessions xmlns="{NS}"><validUser>{text}</validUser></userSessions>'
    assert parse_user_sessions(body.encode()).valid_user is valid


@pytest.mark.parametrize("text", ["yes", "no", "truthy", "t"])
def test_a_valid_user_neither_true_nor_false_is_refused_not_read_as_false(text: str) -> None:
    # Probe 13: "yes" was read as false, and the user's series went with a log line only.
    body = f'<userSessions xmlns="{NS}"><validUser>{text}</validUser></userSessions>'
    with pytest.raises(ParseError, match="not true or false"):
        parse_user_sessions(body.encode())


def test_elements_in_a_foreign_namespace_are_ignored() -> None:
    body = (
        f'<ArrayOfSessionCount xmlns="{NS}" xmlns:x="urn:x">'
        "<x:sessionCount><type>C</type><status>C</status><count>9</count></x:sessionCount>"
        "</ArrayOfSessionCount>"
    ).encode()
    assert parse_session_counts(body).records == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-03-31T20:13:58Z", ts("2020-03-31T20:13:58")),
        ("2020-03-31T20:13:58", ts("2020-03-31T20:13:58")),  # "Date values are returned in UTC"
        ("2020-03-31T16:13:58-04:00", ts("2020-03-31T20:13:58")),
        ("2020-03-31T20:13:58.250Z", ts("2020-03-31T20:13:58") + 0.25),
        ("", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_parse_time(text: str | None, expected: float | None) -> None:
    assert parse_time(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_parse_error(body: bytes) -> None:
    for parser in set(PARSERS.values()):
        with contextlib.suppress(ParseError):
            parser(body)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PARSERS)), st.integers(0, 3000), st.binary(max_size=20))
def test_mutated_samples_raise_only_parse_error(name: str, at: int, junk: bytes) -> None:
    body = sample(name)
    at %= len(body)
    with contextlib.suppress(ParseError):
        PARSERS[name](body[:at] + junk + body[at + len(junk) :])
