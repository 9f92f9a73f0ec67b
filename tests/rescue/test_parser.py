from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.errors import ParseError
from exporter.vendors.rescue.parser import (
    _MIDNIGHTS,
    _MIDNIGHTS_MAX,
    TooManyRows,
    _lines,
    parse_login,
    parse_sessions,
    parse_soap_login,
    parse_soap_sessions,
    parse_start_time,
)

from .harness import API_NS, CAPTURES, DOC, SOAP11, SOAP12, shared, soap

# The doc's Output section, verbatim (wrapping and trailing space included).
DOC_SAMPLE = (
    b"OK ID|Status|Entry ID|Entry|Technician ID|Technician|Start Time|Waiting Time|"
    b"Custom Field 0|\n"
    b"Custom Field 1|Custom Field 2|Language|Transferred To|Transferred Comment|"
    b"Is Lead Technician|\n"
    b"HandingOff|1663112|Waiting|0||337366|John Doe|2/16/2012 9:00 AM|13|Customer|||en|||yes|| "
)

HEADER_V2 = (
    b"ID|Status|Entry ID|Entry|Technician ID|Technician|Start Time|Waiting Time|"
    b"Custom Field 0|Custom Field 1|Custom Field 2|Language|Transferred To|"
    b"Transferred Comment|Is Lead Technician|HandingOff|"
)
ROW_1 = b"1663112|Waiting|4411|Billing|||2/16/2012 9:00 AM|13|Customer 1|T-1||en|||||"
ROW_2 = b"1663115|Active|4412|Hardware|337401|John Doe|2/16/2012 9:05 PM|40|Customer 2|||pt|||yes||"


def capture(*rows: bytes, sep: bytes = b"\r\n", header: bytes = HEADER_V2) -> bytes:
    return b"OK" + sep + sep + sep.join((header, *rows)) + sep


def test_doc_sample_is_the_one_in_the_vendor_doc() -> None:
    assert DOC_SAMPLE.decode() in shared(DOC).decode()


def test_doc_sample_verbatim() -> None:
    result = parse_sessions(DOC_SAMPLE)
    assert result.code == "OK"
    assert len(result.columns) == 16
    assert result.shifted_rows == 0
    (session,) = result.sessions
    assert session.id == "1663112"
    assert session.status == "Waiting"
    assert session.channel_id == "0"
    assert session.channel == ""
    assert session.technician_id == "337366"
    assert session.technician == "John Doe"
    assert session.waiting_seconds == 13
    assert session.start_time == datetime(2012, 2, 16, 9, 0, tzinfo=UTC).timestamp()


def test_real_capture_shape_with_blank_line_and_crlf() -> None:
    result = parse_sessions(capture(ROW_1, ROW_2))
    assert [s.id for s in result.sessions] == ["1663112", "1663115"]
    assert [s.status for s in result.sessions] == ["Waiting", "Active"]
    assert result.sessions[0].technician == ""
    assert result.sessions[1].technician == "John Doe"
    assert result.sessions[1].channel == "Hardware"
    assert result.sessions[1].start_time == datetime(2012, 2, 16, 21, 5, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("sep", [b"\n", b"\r\n", b"\r"])
def test_line_endings(sep: bytes) -> None:
    result = parse_sessions(capture(ROW_1, ROW_2, sep=sep))
    assert len(result.sessions) == 2 and result.shifted_rows == 0


@pytest.mark.parametrize("inside", ["\f", "\v", "\x1c", "\x85", "\u2028", "\u2029"])
def test_only_cr_and_lf_end_a_line_not_what_splitlines_also_takes(inside: str) -> None:
    # A technician named with a form feed or U+2028 is one row, not two half rows.
    odd = (
        "1663114|Active|4411|Billing|337401|John" + inside + "Doe|2/16/2012 9:00 AM|5|"
        "Customer|||en|||||"
    ).encode()
    (_, session, _) = parse_sessions(capture(ROW_1, odd, ROW_2)).sessions
    assert session.technician == "John" + inside + "Doe"


@given(st.lists(st.text(alphabet="ab|\r\n\f\u2028 ", max_size=12), max_size=6))
def test_lines_split_at_cr_lf_and_crlf_only(pieces: list[str]) -> None:
    text = "".join(pieces)
    want = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    got = _lines(text)
    # `splitlines` leaves out the empty piece after a final line end, which
    # `_logical_lines` drops anyway (with every other blank line).
    assert got == want or (got == want[:-1] and want[-1] == "")


def test_status_line_followed_by_table_on_same_line_without_blank_line() -> None:
    body = b"OK " + HEADER_V2 + b"\n" + ROW_1 + b"\n" + ROW_2 + b"\n"
    assert [s.id for s in parse_sessions(body).sessions] == ["1663112", "1663115"]


def test_columns_found_by_name_not_position() -> None:
    header = b"Waiting Time|Status|Custom Field 3|ID|Technician|"
    body = b"OK\r\n\r\n" + header + b"\r\n" + b"7|On Hold|x|42|Ana Silva|\r\n"
    (session,) = parse_sessions(body).sessions
    assert (session.id, session.status, session.waiting_seconds, session.technician) == (
        "42",
        "On Hold",
        7,
        "Ana Silva",
    )
    assert session.start_time is None and session.channel == ""


def test_empty_list_is_the_header_only() -> None:
    result = parse_sessions(capture())
    assert result.sessions == () and len(result.columns) == 16


@pytest.mark.parametrize("body", [b"OK", b"OK\r\n", b"OK\r\n\r\n", b"OK\n \n\t"])
def test_reply_cut_after_ok_is_refused_not_read_as_no_sessions(body: bytes) -> None:
    # Read as an empty list, it would end every Waiting session's wait as `other`.
    with pytest.raises(ParseError, match="without the table header"):
        parse_sessions(body)


def test_pipe_in_custom_field_shifts_only_that_row() -> None:
    shifted = b"1663113|Waiting|4411|Billing|||2/16/2012 9:00 AM|5|ACME | Ltd|||en|||||"
    result = parse_sessions(capture(ROW_1, shifted, ROW_2))
    assert [s.id for s in result.sessions] == ["1663112", "1663115"]
    assert result.shifted_rows == 1


def test_a_single_shifted_row_is_not_mistaken_for_the_doc_wrapping() -> None:
    shifted = b"1663113|Waiting|4411|Billing|||2/16/2012 9:00 AM|5|A|B|C|D|en|||||"
    result = parse_sessions(capture(shifted))
    assert result.sessions == () and result.shifted_rows == 1


def test_line_break_inside_a_field_keeps_the_row() -> None:
    broken = (
        b"1663114|Active|4411|Billing|337401|John Doe|2/16/2012 9:00 AM|5|Cust\r\nomer|||en|||||"
    )
    result = parse_sessions(capture(ROW_1, broken))
    assert [s.id for s in result.sessions] == ["1663112", "1663114"]
    assert result.shifted_rows == 0


def test_a_field_broken_over_many_lines_keeps_the_row() -> None:
    # Joined once the row ends, not line by line (quadratic: a 625 KiB row took 2.1 s).
    pieces = b"\r\n".join(b"part%d" % i for i in range(5000))
    broken = (
        b"1663114|Active|4411|Billing|337401|John Doe|2/16/2012 9:00 AM|5|" + pieces + b"|||en|||||"
    )
    result = parse_sessions(capture(ROW_1, broken, ROW_2))
    assert [s.id for s in result.sessions] == ["1663112", "1663114", "1663115"]
    assert result.shifted_rows == 0


def test_a_header_repeated_on_the_next_line_is_one_skipped_row_not_a_wrapped_header() -> None:
    # Read as the doc's wrapped shape, rows of twice the header's width hid every second
    # session, silently.
    table = parse_sessions(capture(HEADER_V2, ROW_1, ROW_2))
    assert [s.id for s in table.sessions] == ["1663112", "1663115"]
    assert table.invalid_records == 1


def test_a_wrapped_header_that_lists_a_column_twice_is_a_parse_error() -> None:
    body = b"OK\r\n\r\nID|Status|\r\nEntry|ID|Status|\r\n1|Waiting|x|2|Active|"
    with pytest.raises(ParseError, match="lists a column twice"):
        parse_sessions(body)


@pytest.mark.parametrize("twice", ["Status", "ID", "Waiting Time", "waiting time"])
def test_a_header_naming_a_read_column_twice_is_a_parse_error(twice: str) -> None:
    # Probe 8: the first of the two was read, silently, whichever held the values.
    header = b"ID|Status|Waiting Time|" + twice.encode() + b"|"
    with pytest.raises(ParseError, match="column twice"):
        parse_sessions(b"OK\r\n\r\n" + header + b"\r\n1|Waiting|5|x|\r\n")


def test_a_column_not_read_may_come_twice() -> None:
    header = b"ID|Status|Custom Field 0|Custom Field 0|"
    table = parse_sessions(b"OK\r\n\r\n" + header + b"\r\n1|Waiting|a|b|\r\n")
    assert [(s.id, s.status) for s in table.sessions] == [("1", "Waiting")]


def test_a_no_break_space_after_the_last_pipe_is_no_truncation() -> None:
    table = parse_sessions(capture(ROW_1, ROW_2 + b"\xc2\xa0"))
    assert [s.id for s in table.sessions] == ["1663112", "1663115"]


def test_truncated_reply_is_a_parse_error() -> None:
    body = capture(ROW_1, ROW_2)
    with pytest.raises(ParseError, match="truncated"):
        parse_sessions(body[: len(body) - 10])


def test_row_cut_right_after_a_pipe_is_skipped_as_shifted() -> None:
    body = capture(ROW_1, ROW_2)
    cut = body.index(b"|Hardware|") + 1
    table = parse_sessions(body[:cut])
    assert (len(table.sessions), table.shifted_rows) == (1, 1)


def test_missing_final_line_end_is_accepted() -> None:
    # The doc's own sample ends without one; transport truncation is caught by the
    # HTTP layer (Content-Length and chunked framing), not here.
    assert len(parse_sessions(capture(ROW_1, ROW_2)[:-2]).sessions) == 2
    assert len(parse_sessions(capture(ROW_1, ROW_2)[:-1]).sessions) == 2


def test_shifted_last_row_with_line_end_is_only_skipped() -> None:
    shifted = b"1663113|Waiting|4411|Billing|||2/16/2012 9:00 AM|5|ACME | Ltd|||en|||||"
    assert parse_sessions(capture(ROW_1, shifted)).shifted_rows == 1


def test_wrapped_table_that_does_not_divide_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_sessions(DOC_SAMPLE.replace(b"|Customer|", b"|Cust|omer|"))


@pytest.mark.parametrize(
    "body", [b"OK\n123|Status|\nID|Technician|\n", b"OK\n 7 |ID|\nStatus|x|\n1|2|\n"]
)
def test_a_session_id_before_any_column_name_is_a_parse_error(body: bytes) -> None:
    # Read as a wrapped table of no columns, it divided by zero: the cycle crashed
    # (`internal`, a traceback) and the account's other nodes went unpolled.
    with pytest.raises(ParseError, match="no header before its first session ID"):
        parse_sessions(body)


def test_start_times_are_read_whatever_another_thread_does_to_the_shared_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Parse threads share the memo of days; one clearing it (full) between another's
    # filling and reading gave that one a KeyError, and its cycle crashed.
    from exporter.vendors.rescue import parser

    date_midnight = parser._date_midnight

    def cleared_meanwhile(date: str) -> int | None:
        parser._DATES.clear()
        return date_midnight(date)

    monkeypatch.setattr(parser, "_date_midnight", cleared_meanwhile)
    monkeypatch.setattr(parser, "_STARTS", {})  # read afresh, not remembered
    texts = ["2/16/2012 9:00 AM", "3/1/2013 10:30 PM", "12/31/2019 11:59 PM"]
    assert parser.quick_utc_starts(texts) == [parse_start_time(t, UTC) for t in texts]


def test_start_times_read_before_are_remembered_across_replies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from exporter.vendors.rescue import parser

    monkeypatch.setattr(parser, "_STARTS", {})
    read: list[str] = []
    date_midnight = parser._date_midnight

    def counted(date: str) -> int | None:
        read.append(date)
        return date_midnight(date)

    monkeypatch.setattr(parser, "_date_midnight", counted)
    monkeypatch.setattr(parser, "_DATES", {})
    first = ["2/16/2012 9:00 AM", "3/1/2013 10:30 PM"]
    assert parser.quick_utc_starts(first) == [parse_start_time(t, UTC) for t in first]
    second = ["4/2/2014 1:05 AM", "3/1/2013 10:30 PM", "2/16/2012 9:00 AM"]
    assert parser.quick_utc_starts(second) == [parse_start_time(t, UTC) for t in second]
    # Each date read once: the second reply read only its new text.
    assert sorted(read) == ["2/16/2012", "3/1/2013", "4/2/2014"]
    # A reply with a day that does not exist is refused whole, and leaves nothing behind.
    assert parser.quick_utc_starts(["2/30/2015 9:00 AM", "5/5/2015 9:00 AM"]) is None
    assert set(parser._STARTS) == set(first) | set(second)


def test_the_memo_of_start_times_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter.vendors.rescue import parser

    monkeypatch.setattr(parser, "_STARTS", {})
    monkeypatch.setattr(parser, "_STARTS_MAX", 100)
    for day in range(1, 29):
        texts = [f"2/{day}/2016 {hour}:{minute:02d} AM" for hour in (1, 2) for minute in range(30)]
        assert parser.quick_utc_starts(texts) == [parse_start_time(t, UTC) for t in texts]
        assert len(parser._STARTS) <= 100
    # One reply of more distinct texts than the memo holds is read, not remembered.
    texts = [
        f"3/{day}/2016 {hour}:{minute:02d} AM"
        for day in (1, 2)
        for hour in (1, 2)
        for minute in range(60)
    ]
    assert parser.quick_utc_starts(texts) == [parse_start_time(t, UTC) for t in texts]
    assert len(parser._STARTS) <= 100


def test_wrapped_table_with_two_rows() -> None:
    body = DOC_SAMPLE.rstrip() + b"1663113|Active|0||337366|John Doe|2/16/2012 9:01 AM|2|||||||||"
    assert [s.id for s in parse_sessions(body).sessions] == ["1663112", "1663113"]


def test_localised_and_unknown_statuses_are_kept_verbatim() -> None:
    rows = (b"1|Aguardando|||||||||||||||", b"2|Something new|||||||||||||||")
    assert [s.status for s in parse_sessions(capture(*rows)).sessions] == [
        "Aguardando",
        "Something new",
    ]


def test_utf8_and_cp1252_bodies() -> None:
    row = "1|Fechado pelo técnico|||||||||||||||".encode()
    assert parse_sessions(capture(row)).sessions[0].status == "Fechado pelo técnico"
    row = "1|Fechado pelo técnico|||||||||||||||".encode("cp1252")
    assert parse_sessions(capture(row)).sessions[0].status == "Fechado pelo técnico"


def test_rows_with_bad_id_or_empty_status_are_invalid() -> None:
    rows = (b"abc|Active|||||||||||||||", b"12||||||||||||||||", ROW_1)
    result = parse_sessions(capture(*rows))
    assert [s.id for s in result.sessions] == ["1663112"]
    assert result.invalid_records == 2


def test_unreadable_times_become_unknown_and_are_counted() -> None:
    row = b"5|Active||||||x1|||||||||"
    row2 = b"6|Active|||||13/45/2012 9:00 AM||||||||||"
    result = parse_sessions(capture(row, row2))
    assert [s.waiting_seconds for s in result.sessions] == [None, None]
    assert [s.start_time for s in result.sessions] == [None, None]
    assert result.invalid_values == 2


@pytest.mark.parametrize(
    "code",
    [
        "ERROR",
        "NOTLOGGEDIN",
        "INVALIDPARAM_NODE",
        "INVALID_SECRETAUTHCODE",
        "USER_DELETED_OR_DISABLED",
    ],
)
def test_error_codes(code: str) -> None:
    assert parse_sessions(code.encode()).code == code
    assert parse_sessions(f"{code}\r\n".encode()).sessions == ()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"<html>Service Unavailable</html>",
        b"<<garbage|{\x00not what you expected",
        b"MAINTENANCE",
        b"ok\r\n",
        b"\xff\xfe\x00O\x00K",
        b"OKAY|ID|",
        b"OK\r\n\r\nStatus|Entry|\r\nActive|x|\r\n",
    ],
)
def test_hostile_bodies_raise_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_sessions(body)


def test_huge_garbage_table_does_not_explode() -> None:
    rows = [b"|" * (i % 50) for i in range(1, 2000)]
    result = parse_sessions(capture(*rows))
    assert result.sessions == ()


def test_start_time_in_configured_zone() -> None:
    sao_paulo = ZoneInfo("America/Sao_Paulo")
    expected = datetime(2012, 2, 16, 0, 30, tzinfo=sao_paulo).timestamp()
    assert parse_start_time("2/16/2012 12:30 AM", sao_paulo) == expected
    assert (
        parse_start_time("2/16/2012 12:30 PM", UTC)
        == datetime(2012, 2, 16, 12, 30, tzinfo=UTC).timestamp()
    )
    assert (
        parse_start_time("2/16/2012 13:30", UTC)
        == datetime(2012, 2, 16, 13, 30, tzinfo=UTC).timestamp()
    )
    assert parse_start_time("2/16/2012 13:30 PM", UTC) is None
    assert parse_start_time("16.02.2012 9:00", UTC) is None


def test_zone_is_used_by_parse_sessions() -> None:
    zone = ZoneInfo("Europe/Lisbon")
    summer = b"1|Active|||||7/1/2024 9:00 AM||||||||||"
    session = parse_sessions(capture(summer), zone).sessions[0]
    assert session.start_time == datetime(2024, 7, 1, 8, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"OK", "OK"),
        (b"INVALID\r\n", "INVALID"),
        (b"LIMITREACHED", "LIMITREACHED"),
        (b"ERROR", "ERROR"),
    ],
)
def test_login_codes(body: bytes, code: str) -> None:
    assert parse_login(body) == code


def test_login_garbage() -> None:
    with pytest.raises(ParseError):
        parse_login(b"<html>")


# The UTC fast path of parse_start_time (bench/ingest.py) against the general datetime
# path, which a fixed zero offset that is not UTC itself still takes.
ZERO = timezone(timedelta(0))


@pytest.mark.parametrize(
    "text",
    [
        "2/29/2024 11:59 PM",
        "2/29/2023 1:00 AM",
        "2/29/1900 1:00 AM",
        "2/29/2000 12:00 AM",
        "4/31/2026 1:00 PM",
        "13/1/2026 1:00 PM",
        "0/1/2026 1:00 PM",
        "1/0/2026 1:00 PM",
        "12/31/9999 11:59:59 PM",
        "1/1/0001 12:00 AM",
        "1/1/0000 12:00 AM",
        "1/1/2026 0:00 AM",
        "1/1/2026 13:00 PM",
        "1/1/2026 12:00 PM",
        "1/1/2026 24:00",
        "1/1/2026 23:59:59",
        "1/1/2026 23:60",
        "1/1/2026 23:59:60",
        "1/1/1970 12:00 AM",
        "12/31/1969 11:59 PM",
    ],
)
@pytest.mark.parametrize("zone", [UTC, ZoneInfo("UTC")])
def test_utc_fast_path_agrees_with_datetime(text: str, zone: tzinfo) -> None:
    assert parse_start_time(text, zone) == parse_start_time(text, ZERO)


def test_utc_fast_path_agrees_on_random_times() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        text = (
            f"{rng.randint(0, 13)}/{rng.randint(0, 32)}/{rng.randint(1, 9999)} "
            f"{rng.randint(0, 25)}:{rng.randint(0, 61):02d}"
            + rng.choice(("", f":{rng.randint(0, 61):02d}"))
            + rng.choice(("", " AM", " PM", "pm"))
        )
        assert parse_start_time(text, ZoneInfo("UTC")) == parse_start_time(text, ZERO), text


def test_utc_date_cache_stays_bounded() -> None:
    for n in range(3 * _MIDNIGHTS_MAX):
        day = date(2000, 1, 1) + timedelta(days=n)
        assert parse_start_time(f"{day.month}/{day.day}/{day.year} 1:00 AM", UTC) == (
            datetime(day.year, day.month, day.day, 1, tzinfo=UTC).timestamp()
        )
        assert len(_MIDNIGHTS) <= _MIDNIGHTS_MAX


# -- the captures of real replies (../shared/vendor-captures) ----------------------------

V3_COLUMNS = (
    "ID",
    "Status",
    "Entry ID",
    "Entry",
    "Technician ID",
    "Technician",
    "Start Time",
    "Waiting Time",
    "Custom Field 0",
    "Custom Field 1",
    "Custom Field 2",
    "Custom Field 3",
    "Custom Field 4",
    "Custom Field 5",
    "Language",
    "Transferred To",
    "Transferred Comment",
    "Is Lead Technician",
    "HandingOff",
)


def test_english_capture_parses_whole() -> None:
    body = shared(CAPTURES / "getSession_v3-en.txt")
    assert not body.endswith(b"\n")  # as captured: no final newline
    result = parse_sessions(body)
    assert result.columns == V3_COLUMNS
    assert len(result.sessions) == 38
    assert (
        result.shifted_rows,
        result.invalid_records,
        result.invalid_values,
        result.implausible_values,
    ) == (0, 0, 0, 0)
    assert Counter(s.status for s in result.sessions) == {
        "Active": 22,
        "Waiting": 10,
        "Closed by active customer": 3,
        "On Hold": 2,
        "Offline": 1,
    }
    # Entry ID is the row's channel, the same on every row.
    assert {s.channel_id for s in result.sessions} == {"1927940688"}
    # Waiting and Offline rows: technician 0, no name.
    idle = [s for s in result.sessions if s.status in ("Waiting", "Offline")]
    assert {(s.technician_id, s.technician) for s in idle} == {("0", "")}
    # Two sessions have a second technician's row, which is not the lead.
    ids = Counter(s.id for s in result.sessions)
    assert {sid for sid, n in ids.items() if n > 1} == {"1073185217", "1073198088"}
    assert sum(not s.is_lead for s in result.sessions) == 2
    assert max(s.waiting_seconds or 0 for s in result.sessions) < 7 * 86400


def test_english_capture_start_times_fit_utc() -> None:
    # Start Time + Waiting Time of every Waiting row meets at one moment (the capture
    # time, to the minute Start Time has): read as UTC, the default `timezone`.
    result = parse_sessions(shared(CAPTURES / "getSession_v3-en.txt"))
    ends = {
        (s.start_time or 0) + (s.waiting_seconds or 0)
        for s in result.sessions
        if s.status == "Waiting"
    }
    assert max(ends) - min(ends) <= 60
    assert datetime.fromtimestamp(min(ends), UTC).date() == date(2024, 6, 19)


def test_portuguese_capture_with_built_in_aliases_counts_as_its_english_meaning() -> None:
    from exporter.vendors.rescue.collector import one_row_per_session
    from exporter.vendors.rescue.statuses import BUILTIN_STATUS_ALIASES

    result = parse_sessions(shared(CAPTURES / "getSession_v3-pt-BR.txt"))
    assert result.columns == V3_COLUMNS
    assert result.shifted_rows == result.invalid_records == 0
    sessions, _ = asyncio.run(one_row_per_session(result.sessions))
    english = Counter(BUILTIN_STATUS_ALIASES[s.status] for s in sessions)
    assert english == {"Closed by active customer": 2, "Closed by waiting customer": 2, "Active": 1}
    assert all(s.is_lead for s in result.sessions)  # `sim` is yes


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("getSession_V3-soap-one.xml", [("1053624555", "Active", 46)]),
        (
            "getSession_V3-soap-two.xml",
            [("1053624838", "Waiting", 35), ("1053624555", "Active", 573)],
        ),
    ],
)
def test_soap_captures_parse(name: str, expected: list[tuple[str, str, int]]) -> None:
    result = parse_soap_sessions(shared(CAPTURES / name))
    assert result.code == "OK"
    assert [(s.id, s.status, s.waiting_seconds) for s in result.sessions] == expected
    first = result.sessions[0]
    assert (first.channel_id, first.channel, first.technician_id, first.technician) == (
        "0",
        "",
        "26054541",
        "Agent One",
    )
    assert all(s.is_lead for s in result.sessions)
    # SOAP has seconds in Start Time.
    assert (
        result.sessions[-1].start_time == datetime(2024, 2, 19, 14, 27, 27, tzinfo=UTC).timestamp()
    )


def test_doc_sample_captures_and_simulator_agree_on_columns() -> None:
    from exporter.simulators.rescue import COLUMNS

    doc = parse_sessions(DOC_SAMPLE).columns
    assert COLUMNS[2] == doc  # the doc's sample is the v2 table
    for name in ("getSession_v3-en.txt", "getSession_v3-pt-BR.txt"):
        assert parse_sessions(shared(CAPTURES / name)).columns == COLUMNS[3]
    assert COLUMNS[1] == doc[:14]


# -- SOAP replies ---------------------------------------------------------------------


def session_v3(
    sid: str = "1",
    status: str = "SESSION_WAITING",
    wait: str = "5",
    display: str = "Waiting",
    extra: str = "",
) -> str:
    return (
        f"<SESSION_V3><iID>{sid}</iID><bStatus>{status}</bStatus><sStatus>{display}"
        f"</sStatus><iWaitingTimeInSec>{wait}</iWaitingTimeInSec>{extra}</SESSION_V3>"
    )


@pytest.mark.parametrize("envelope", [SOAP11, SOAP12])
def test_soap_both_envelopes(envelope: str) -> None:
    result = parse_soap_sessions(soap(session_v3(), envelope))
    assert [(s.id, s.status) for s in result.sessions] == [("1", "Waiting")]


def test_a_soap_field_given_twice_takes_the_first_and_counts_the_doubt() -> None:
    # Probe 8: the last of two bStatus (and of two iID) was taken, silently.
    extra = "<bStatus>SESSION_ACTIVE</bStatus><iID>2</iID>"
    result = parse_soap_sessions(soap(session_v3(extra=extra)))
    assert [(s.id, s.status) for s in result.sessions] == [("1", "Waiting")]
    assert result.invalid_values == 2


def test_soap_status_comes_from_the_enum_not_the_display_string() -> None:
    result = parse_soap_sessions(
        soap(
            session_v3(status="SESSION_PICKEDUP", display="Ativas")
            + session_v3("2", "SESSION_ONHOLD", display="Em espera")
        )
    )
    assert [s.status for s in result.sessions] == ["Active", "On Hold"]


def test_soap_unknown_enum_is_kept_verbatim_and_empty_enum_falls_back() -> None:
    result = parse_soap_sessions(
        soap(session_v3(status="SESSION_BRAND_NEW") + session_v3("2", "", display="Waiting"))
    )
    assert [s.status for s in result.sessions] == ["SESSION_BRAND_NEW", "Waiting"]


@pytest.mark.parametrize(
    ("result", "code"),
    [
        ("getSession_Error", "ERROR"),
        ("getSession_NotLoggedIn", "NOTLOGGEDIN"),
        ("getSession_InvalidParam_NodeID", "INVALIDPARAM_NODE"),
        ("getSession_Invalid_SecretAuthCode", "INVALID_SECRETAUTHCODE"),
        ("getSession_User_Deleted_Or_Disabled", "USER_DELETED_OR_DISABLED"),
    ],
)
def test_soap_result_codes_become_the_text_codes(result: str, code: str) -> None:
    assert parse_soap_sessions(soap("", result=result)).code == code


@pytest.mark.parametrize(
    "body",
    [
        soap(session_v3(), envelope="urn:not-soap"),
        soap(session_v3(), ns="urn:wrong-api"),
        soap(session_v3(), result="getSession_Surprise"),
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
        soap(session_v3())[:-30],
        (
            f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body><soap:Fault><faultstring>x'
            "</faultstring></soap:Fault></soap:Body></soap:Envelope>"
        ).encode(),
        b"OK\n\nID|Status|\n",
    ],
)
def test_hostile_soap_raises_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_soap_sessions(body)


def soap_sessions_in(container: str) -> bytes:
    """A getSession_V3 reply whose `container` (markup around "{rows}") holds one row."""
    return (
        f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body>'
        f'<getSession_V3Response xmlns="{API_NS}"><getSession_V3Result>getSession_OK'
        "</getSession_V3Result>"
        + container.format(rows=session_v3())
        + "</getSession_V3Response></soap:Body></soap:Envelope>"
    ).encode()


@pytest.mark.parametrize(
    "container",
    [
        '<aSessions xmlns="">{rows}</aSessions>',
        '<x:aSessions xmlns:x="urn:other">{rows}</x:aSessions>',
        '<aSessions><x:SESSION_V3 xmlns:x="urn:other"><iID>1</iID></x:SESSION_V3></aSessions>',
        "<aSessions><SESSION><iID>1</iID><bStatus>SESSION_WAITING</bStatus></SESSION></aSessions>",
    ],
)
def test_soap_sessions_under_another_name_are_refused_not_read_as_none(container: str) -> None:
    # Read as "OK, no sessions", every Waiting session seemed to end (a wait observed,
    # then observed again when it came back), and nothing was logged or counted.
    with pytest.raises(ParseError, match="aSessions"):
        parse_soap_sessions(soap_sessions_in(container))


@pytest.mark.parametrize(
    "container",
    ["<Sessions>{rows}</Sessions>", "{rows}", '<x:List xmlns:x="urn:o">{rows}</x:List>'],
)
def test_soap_sessions_without_asessions_are_refused_not_read_as_none(container: str) -> None:
    # Probe 13: with no aSessions at all, sessions under another container were read
    # as none, and every Waiting session's wait ended as `other`.
    with pytest.raises(ParseError, match="SESSION_V3 elements outside aSessions"):
        parse_soap_sessions(soap_sessions_in(container))


def test_soap_elements_beside_the_sessions_are_counted_as_invalid_records() -> None:
    result = parse_soap_sessions(soap_sessions_in("<aSessions>{rows}<SESSION/></aSessions>"))
    assert [s.id for s in result.sessions] == ["1"]
    assert result.invalid_records == 1


def test_soap_without_asessions_or_with_it_empty_has_no_sessions() -> None:
    for container in ("", "<aSessions/>", "<aSessions>  </aSessions>"):
        result = parse_soap_sessions(soap_sessions_in(container))
        assert (result.code, result.sessions, result.invalid_records) == ("OK", (), 0)


def test_soap_login_results() -> None:
    def login(result: str) -> bytes:
        return (
            f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body><loginResponse '
            f'xmlns="{API_NS}"><loginResult>{result}</loginResult></loginResponse>'
            "</soap:Body></soap:Envelope>"
        ).encode()

    assert parse_soap_login(login("login_OK")) == "OK"
    assert parse_soap_login(login("login_Failed")) == "INVALID"
    with pytest.raises(ParseError):
        parse_soap_login(login("login_Whatever"))


# -- hostile values (issue 11) --------------------------------------------------------


@pytest.mark.parametrize("digits", [400, 5000])
def test_huge_waiting_time_is_an_invalid_value_not_a_crash(digits: int) -> None:
    row = b"5|Waiting||||||" + b"9" * digits + b"|||||||||"
    result = parse_sessions(capture(row))
    assert [s.waiting_seconds for s in result.sessions] == [None]
    assert result.invalid_values == 1
    soap_result = parse_soap_sessions(soap(session_v3(wait="9" * digits)))
    assert soap_result.sessions[0].waiting_seconds is None
    assert soap_result.invalid_values == 1


@pytest.mark.parametrize("wait", ["\u00b2", "\u0661\u0660", "-5", "1e3", "12.5"])
def test_waiting_time_takes_ascii_digits_only(wait: str) -> None:
    row = f"5|Waiting||||||{wait}|||||||||".encode()
    result = parse_sessions(capture(row))
    assert result.sessions[0].waiting_seconds is None and result.invalid_values == 1


def test_implausible_waiting_and_start_times_are_dropped_not_the_row() -> None:
    # What Rescue counts is sessions by status: a session Offline for over a week, or
    # dated .NET's DateTime.MinValue, still exists. Only the absurd value goes.
    rows = (
        b"5|Waiting||||||604801|||||||||",  # more than a week
        b"6|Active|||||12/31/9999 11:59 PM|3|||||||||",
        b"7|Active|||||1/1/0001 12:00 AM|3|||||||||",
        b"8|Active|||||1/1/2026 1:00 AM|604800|||||||||",
    )
    result = parse_sessions(capture(*rows))
    assert [(s.id, s.waiting_seconds, s.start_time is not None) for s in result.sessions] == [
        ("5", None, False),
        ("6", 3, False),
        ("7", 3, False),
        ("8", 604800, True),
    ]
    assert (result.implausible_values, result.invalid_values) == (3, 0)
    # By ID, so that a session every poll returns is counted once (`RejectedOnce`).
    assert result.rejected_ids == (
        ("implausible_value", "5"),
        ("implausible_value", "6"),
        ("implausible_value", "7"),
    )


def test_rejected_rows_are_named_by_their_id_where_it_is_numeric() -> None:
    rows = (b"5|Waiting||||||soon|||||||||", b"x|Waiting||||||3|||||||||", b"0042||||||||||||||||")
    result = parse_sessions(capture(*rows))
    assert (result.invalid_values, result.invalid_records) == (1, 2)
    assert result.rejected_ids == (("invalid_value", "5"), ("invalid_record", "42"))


def test_too_many_rows_are_refused_before_records_are_built() -> None:
    rows = [f"{i}|Waiting|||||||||||||||".encode() for i in range(1, 12)]
    assert len(parse_sessions(capture(*rows), max_rows=11).sessions) == 11
    with pytest.raises(TooManyRows):
        parse_sessions(capture(*rows), max_rows=10)
    with pytest.raises(TooManyRows):
        parse_soap_sessions(soap(session_v3() * 11), max_rows=10)
    wrapped = DOC_SAMPLE.rstrip() + b"1663113|Active|0||337366|John Doe||2|||||||||" * 10
    assert len(parse_sessions(wrapped, max_rows=11).sessions) == 11
    with pytest.raises(TooManyRows):
        parse_sessions(wrapped, max_rows=10)  # eleven rows on three lines


def test_odd_encodings_give_encodable_text() -> None:
    text = capture(b"1|Ativas|||||||||||||||").decode()
    # Each with its byte order mark (the plain codecs write one themselves); UTF-32 LE's
    # begins with UTF-16 LE's, and was read as UTF-16.
    for body in (
        text.encode("utf-16"),
        ("\ufeff" + text).encode("utf-16-be"),
        text.encode("utf-32"),
        ("\ufeff" + text).encode("utf-32-be"),
    ):
        assert parse_sessions(body).sessions[0].status == "Ativas", body[:4]
    nul = parse_sessions(capture(b"1|Act\x00ive|||||||||||||||")).sessions[0]
    assert "\x00" not in nul.status
    for session in parse_sessions(capture(b"1|\xed\xa0\x80x|||||||||||||||")).sessions:
        session.status.encode("utf-8")  # a UTF-8-encoded lone surrogate: never unencodable


@pytest.mark.parametrize("rows_before", [0, 1])
def test_a_row_of_endless_fields_costs_no_more_than_its_text(rows_before: int) -> None:
    # Split at every `|`, a 16 MiB row of "ab|" became 5.6 million strings: the parse
    # worker peaked at 550 MB to skip one shifted row. Now split one field past the
    # header's width, whether the row comes first (the wrapped-header check) or later.
    import tracemalloc

    good = "17|Waiting|4|2/16/2012 9:00 AM|\r\n" * rows_before
    head = f"OK\r\n\r\nID|Status|Waiting Time|Start Time|\r\n{good}".encode()
    body = head + b"ab|" * (1 << 20) + b"\r\n"
    tracemalloc.start()
    try:
        result = parse_sessions(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (len(result.sessions), result.shifted_rows) == (rows_before, 1)
    assert peak < 8 * len(body)  # the text, its lines and copies: 5x (24x before)


def traced_peak(body: bytes, max_rows: int | None = None) -> tuple[str, int]:
    """(the error `parse_sessions` raised, its peak of Python allocations)."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises((ParseError, TooManyRows)) as info:
            parse_sessions(body, max_rows=max_rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(info.value), peak


@pytest.mark.parametrize(
    ("body", "error"),
    [
        # A header of a million columns, one a line and wrapped (the doc sample's shape).
        (b"OK\n\n" + b"ab|" * (1 << 20) + b"\n1|x|\n", "more than 256 columns"),
        (b"OK\n\nID|Status|\nStart Time|" + b"ab|" * (1 << 20) + b"\n", "more than 256 columns"),
        (b"OK\n\nID|Status|\nStart Time|" + b"|" * (3 << 20) + b"\n", "more than 256 columns"),
        # A wrapped table of a million rows, refused by its row count.
        (b"OK\n\nID|Status|\nStart Time|" + b"1|ab|cd|" * (1 << 20) + b"\n", "max_records"),
    ],
)
def test_a_hostile_table_is_refused_for_little_more_than_its_text(body: bytes, error: str) -> None:
    # Read field by field, these took 1-5 s each at 16 MiB, and 335-719 MiB to refuse.
    message, peak = traced_peak(body, max_rows=100_000)
    assert error in message
    assert peak < 8 * len(body)


def test_a_header_of_256_columns_is_still_read() -> None:
    header = "ID|Status|" + "".join(f"Column {i}|" for i in range(254))
    row = "7|Waiting|" + "|" * 254
    assert len(parse_sessions(f"OK\n\n{header}\n{row}\n".encode()).sessions) == 1


def test_a_long_unknown_return_value_is_not_quoted_in_part() -> None:
    # Found by a probe: cut to 40 characters before any scrub, it showed 10 of a
    # 17-character password of capitals; a parse worker knows no secret to scrub.
    with pytest.raises(ParseError) as info:
        parse_login(b"ERRORUNKNOWNREPLYFROMSERVERXXXHUNTERTWOSECRETPW\n")
    assert str(info.value) == "unknown return value of 47 characters"
    with pytest.raises(ParseError, match="unknown return value 'NOPE'"):
        parse_login(b"NOPE\n")


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        # SOAP 1.1: an unqualified faultstring, whole (scrubbed and cut where shown).
        (
            "<soap:Fault><faultcode>soap:Client</faultcode><faultstring>Server was unable\n"
            "  to read request.</faultstring></soap:Fault>",
            "Server was unable\n  to read request.",
        ),
        # SOAP 1.2: Reason/Text in the envelope's namespace.
        (
            "<soap:Fault><soap:Code><soap:Value>soap:Receiver</soap:Value></soap:Code>"
            '<soap:Reason><soap:Text xml:lang="en">Invalid authcode</soap:Text></soap:Reason>'
            "</soap:Fault>",
            "Invalid authcode",
        ),
        ("<soap:Fault/>", "(no reason given)"),
        (
            f"<soap:Fault><faultstring>{'x' * 5000}</faultstring></soap:Fault>",
            "(a reason of 5000 characters)",
        ),
    ],
)
def test_a_soap_fault_says_what_the_service_said(fault: str, said: str) -> None:
    # Found by a probe: the message was "SOAP fault", whatever the service said.
    body = f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body>{fault}</soap:Body></soap:Envelope>'
    with pytest.raises(ParseError) as info:
        parse_soap_sessions(body.encode())
    assert str(info.value) == f"SOAP fault: {said}"


@pytest.mark.parametrize("waiting", [b"13", b"x"], ids=["column-at-a-time", "row-by-row"])
def test_an_id_with_leading_zeros_is_the_number_it_spells(waiting: bytes) -> None:
    # "x" is an unreadable Waiting Time: the table is then read row by row (`_Builder`).
    zeros = b"0001663112|Waiting|4411|Billing|||2/16/2012 9:00 AM|" + waiting + b"|||||||||"
    result = parse_sessions(capture(zeros, b"0|Offline|||||||||||||||"))
    assert [s.id for s in result.sessions] == ["1663112", "0"]
    assert result.rejected_ids == ((("invalid_value", "1663112"),) if waiting == b"x" else ())
