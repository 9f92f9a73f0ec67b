from __future__ import annotations

import datetime
import json
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import scrub
from exporter.config import Secret
from exporter.errors import ParseError
from exporter.vendors.securevideo.parser import (
    _DAYS,
    _DAYS_MAX,
    MAX_RECORDS,
    HistoryPage,
    HistoryRecord,
    _parse_general,
    _parse_timestamp_strict,
    _parse_typed,
    parse_error_message,
    parse_history,
    parse_timestamp,
    stamp_column,
)

from .harness import DOC_SAMPLE

NOV_3_2016 = 1478131200  # 2016-11-03T00:00:00Z


def test_doc_sample_verbatim() -> None:
    page = parse_history(DOC_SAMPLE)
    assert page.skipped == 0
    assert page.records == (
        HistoryRecord(
            session_id=105236,
            schedule_ts=NOV_3_2016 + 21 * 3600 + 45 * 60 + 9.467,
            billable_ts=NOV_3_2016 + 21 * 3600 + 46 * 60 + 16.1,
            duration_minutes=25.0,
            wait_minutes=4.0,
            billable_status="BILL",
            schedule_type="OnDemand",
            user_id=4,
            provider="Zoom",
        ),
        HistoryRecord(
            session_id=105022,
            schedule_ts=NOV_3_2016 + 22 * 3600,
            billable_ts=NOV_3_2016 + 21 * 3600 + 56 * 60 + 30.72,
            duration_minutes=31.0,
            wait_minutes=0.0,
            billable_status="SVCO",
            schedule_type="Rescheduled",
            user_id=1,
            provider="One-Click",
        ),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-11-03T22:00:00", NOV_3_2016 + 79200),
        ("2016-11-03T22:00:00Z", NOV_3_2016 + 79200),
        ("2016-11-03T21:46:16.1", NOV_3_2016 + 78376.1),
        ("2016-11-03T21:45:09.467", NOV_3_2016 + 78309.467),
        ("2016-11-03T21:45:09.4670000", NOV_3_2016 + 78309.467),
        ("2016-11-03T00:00:00.0000001", NOV_3_2016 + 1e-7),
    ],
)
def test_timestamps_with_0_to_7_fractional_digits(text: str, expected: float) -> None:
    assert parse_timestamp(text) == pytest.approx(expected, abs=1e-9)


def test_timestamp_rounding_matches_milliseconds_exactly() -> None:
    assert parse_timestamp("2016-11-03T21:46:16.1") == 1478209576100 / 1000


@pytest.mark.parametrize(
    "text",
    [
        "2016-11-03T21:46:16.12345678",
        "2016-11-03T21:46:16+01:00",
        "2016-11-03 21:46:16",
        "2016-13-03T21:46:16",
        "2016-02-30T00:00:00",
        "2016-11-03T24:00:00",
        "0000-01-01T00:00:00",
        "2016-11-03",
        "",
        "٢٠١٦-11-03T21:46:16",
        "2016-11-03T21:46:16.",
        "2016-11-03T21:46:16ZZ",
    ],
)
def test_malformed_timestamps_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_nulls_absent_and_unknown_fields() -> None:
    body = json.dumps(
        [
            {"SessionId": 1},
            {
                "SessionId": 2,
                "ScheduleTs": None,
                "BillableTs": None,
                "DurationMinutes": None,
                "WaitTime": None,
                "BillableStatusCd": None,
                "ScheduleType": None,
                "UserId": None,
                "ReportableMeetingProvider": None,
                "CustomerId": 9,
                "CustomerName": "Acme",
                "Brand-New": {"nested": [1, 2, {"x": None}]},
            },
        ]
    ).encode()
    page = parse_history(body)
    assert page.skipped == 0
    assert page.records == (HistoryRecord(session_id=1), HistoryRecord(session_id=2))


def test_unknown_enum_values_are_kept_verbatim() -> None:
    body = (
        b'[{"SessionId": 3, "BillableStatusCd": "TRIA", "ScheduleType": "Recurring",'
        b' "ReportableMeetingProvider": "Teams"}]'
    )
    (record,) = parse_history(body).records
    assert (record.billable_status, record.schedule_type, record.provider) == (
        "TRIA",
        "Recurring",
        "Teams",
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"SessionId": 4, "DurationMinutes": "abc"},
        {"SessionId": 4, "DurationMinutes": "25"},
        {"SessionId": 4, "WaitTime": True},
        {"SessionId": 4, "WaitTime": -1},
        {"SessionId": 4, "DurationMinutes": [25]},
        {"SessionId": 4, "BillableTs": 1478209576},
        {"SessionId": 4, "BillableTs": "yesterday"},
        {"SessionId": 4, "BillableStatusCd": 7},
        {"SessionId": 4, "ReportableMeetingProvider": {"name": "Zoom"}},
        {"SessionId": 4, "UserId": 1.5},
        {"SessionId": "4"},
        {"SessionId": True},
        {"SessionId": None},
        {"BillableTs": "2016-11-03T21:46:16.1"},
        "a string",
        42,
        None,
        [{"SessionId": 4}],
    ],
)
def test_a_wrongly_typed_record_is_skipped_and_counted(bad: object) -> None:
    good = {"SessionId": 5, "BillableTs": "2016-11-03T21:46:16.1", "DurationMinutes": 3}
    page = parse_history(json.dumps([good, bad, good | {"SessionId": 6}]).encode())
    assert [r.session_id for r in page.records] == [5, 6]
    assert page.skipped == 1
    assert page.first_problem is not None and page.first_problem.startswith("record 1:")


def test_problem_text_never_repeats_the_body() -> None:
    page = parse_history(b'[{"SessionId": 1, "DurationMinutes": "s3cret-looking"}]')
    assert page.first_problem is not None and "s3cret" not in page.first_problem


def test_fractional_minutes_are_accepted() -> None:
    (record,) = parse_history(
        b'[{"SessionId": 1, "DurationMinutes": 2.5, "WaitTime": 0.0}]'
    ).records
    assert (record.duration_minutes, record.wait_minutes) == (2.5, 0.0)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_numbers_skip_the_record(literal: bytes) -> None:
    page = parse_history(b'[{"SessionId": 1, "DurationMinutes": ' + literal + b"}]")
    assert (page.records, page.skipped) == ((), 1)


def test_an_absurdly_long_integer_skips_the_record_quickly() -> None:
    body = b'[{"SessionId": ' + b"9" * 100_000 + b'}, {"SessionId": 2}]'
    started = time.perf_counter()
    page = parse_history(body)
    assert time.perf_counter() - started < 1.0
    assert [r.session_id for r in page.records] == [2]
    assert page.skipped == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"not json",
        b"<html>Service Unavailable</html>",
        b"[{",
        b'[{"SessionId": 1}',
        b"\xff\xfe\x00garbage",
        b"<<garbage|{\x00not what you expected",
        b"{}",
        b'"text"',
        b"null",
        b"42",
        b'{"Message": "An error has occurred."}',
    ],
)
def test_a_reply_that_is_not_a_json_array_fails_as_a_whole(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_history(body)


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_nesting_is_a_parse_error_not_a_crash(opener: bytes) -> None:
    with pytest.raises(ParseError):
        parse_history(opener * 200_000)
    nested_in_record = b'[{"SessionId": 1, "X": ' + b"[" * 200_000 + b"]" * 200_000 + b"}]"
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_history(nested_in_record)


@pytest.mark.parametrize("where", ["in a string", "between values"])
def test_bytes_not_utf8_anywhere_are_a_parse_error(where: str) -> None:
    record = json.dumps(json.loads(DOC_SAMPLE)[0]).encode()
    if where == "in a string":
        body = b"[" + record.replace(b'"BILL"', b'"\x80BILL"') + b"]"
    else:
        body = b"[" + record + b",\x80]"
    assert b"\x80" in body
    with pytest.raises(ParseError, match="not UTF-8, UTF-16 or UTF-32 text"):
        parse_history(body)


def test_a_byte_order_mark_is_tolerated() -> None:
    page = parse_history(b"\xef\xbb\xbf" + DOC_SAMPLE)
    assert len(page.records) == 2


def test_a_huge_reply_parses_in_bounded_time() -> None:
    record = json.loads(DOC_SAMPLE)[0]
    body = json.dumps([record | {"SessionId": i} for i in range(40_000)]).encode()
    assert len(body) > 10_000_000
    started = time.perf_counter()
    page = parse_history(body)
    assert time.perf_counter() - started < 10.0
    assert len(page.records) == 40_000


def test_duplicate_keys_take_the_last_value_like_any_json_reader() -> None:
    (record,) = parse_history(b'[{"SessionId": 1, "SessionId": 2}]').records
    assert record.session_id == 2


def test_error_message_with_detail() -> None:
    body = b'{"Message": "The request is invalid.", "MessageDetail": "bad startDt"}'
    assert parse_error_message(body) == "The request is invalid. (bad startDt)"
    assert parse_error_message(b'{"Message": "Denied", "MessageDetail": null}') == "Denied"


def test_an_error_message_quoting_a_secret_across_two_lines_is_scrubbed() -> None:
    # Found by a probe: printed as "S3cr&t/V  +d<e>o'=x", both halves in the log.
    Secret("S3cr&t/V+d<e>o'=x")
    body = b'{"Message": "Denied", "MessageDetail": "secret S3cr&t/V\\r\\n+d<e>o\'=x refused"}'
    message = parse_error_message(body)
    # Other tests register other secrets in the process's one scrubber: this one only.
    assert message is not None and message.endswith("<redacted> refused)")
    assert "S3cr" not in message and "o'=x" not in message


@pytest.mark.parametrize(
    "body",
    [b"Unauthorized", b"", b"[]", b'{"message": "lower"}', b'{"Message": 5}', b"[" * 100_000],
)
def test_not_an_error_object(body: bytes) -> None:
    assert parse_error_message(body) is None


@contextmanager
def known_secret(secret: str) -> Iterator[None]:
    """`secret` known to the scrubber for a while, as config makes every credential."""
    scrub.hold("securevideo-parser-test", (secret,))
    try:
        yield
    finally:
        scrub.hold("securevideo-parser-test", ())


def test_error_message_is_cut_cleaned_and_redacted() -> None:
    secret = "x" * 150 + "TAIL"
    body = json.dumps({"Message": "bad\nkey\x1b[31m " + secret + " " + "y" * 10_000}).encode()
    with known_secret(secret):
        message = parse_error_message(body)
    assert message is not None
    assert len(message) <= 200 and message.endswith("...")
    assert "\n" not in message and "\x1b" not in message
    assert "xxxxx" not in message and "<redacted>" in message


@pytest.mark.parametrize("chunk", [1, 7, 100, 1024, 1 << 16])
def test_a_month_in_tiny_chunks_counts_the_same_with_few_tries_a_record(chunk: int) -> None:
    # Decoded again from the record's start at every chunk, a record arriving in small
    # chunks was quadratic (1 MiB in 1 KiB chunks: 0.3 s of the event loop).
    from exporter.vendors.securevideo.parser import MonthCounter, count_month

    base = json.loads(DOC_SAMPLE)
    long_record = base[0] | {"SessionId": 9, "UsageDescription": "x" * 20_000}
    records = [*base, long_record, base[1] | {"SessionId": 10, "WaitTime": 12345678901}]
    body = json.dumps(records).encode()
    counter = MonthCounter(1000)
    decoder = counter._json
    tries = 0

    def counted(text: str, pos: int) -> tuple[Any, int]:
        nonlocal tries
        tries += 1
        return decoder.raw_decode(text, pos)

    counter._json = SimpleNamespace(raw_decode=counted)  # type: ignore[assignment]
    for start in range(0, len(body), chunk):
        counter.feed(body[start : start + chunk])
    assert counter.finish() == count_month(body)
    # Doubling: about log2(size / chunk) tries for each record, not size / chunk.
    assert tries <= len(records) * (2 + max(1, len(body) // chunk).bit_length())


@pytest.mark.parametrize(
    "encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"]
)
@pytest.mark.parametrize("chunk", [1, 3, 1 << 16])
def test_a_month_in_any_json_encoding_counts_as_the_feed_reads_it(
    encoding: str, chunk: int
) -> None:
    # Found by a probe: a UTF-16 or UTF-32 reply was read by the feed (json.loads tells
    # the encoding) and refused by the month counter, which took UTF-8 only.
    from exporter.vendors.securevideo.parser import MonthCounter, count_month

    body = DOC_SAMPLE.decode("utf-8").encode(encoding)
    counter = MonthCounter(1000)
    for start in range(0, len(body), chunk):
        counter.feed(body[start : start + chunk])
    counts = counter.finish()
    assert counts == count_month(DOC_SAMPLE)
    assert sum(counts.counts.values()) == len(parse_history(body).records) > 0


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le"])
def test_a_month_with_a_lone_surrogate_counts_as_the_feed_reads_it(encoding: str) -> None:
    # Found by a review: json.loads decodes with surrogatepass, the month counter did not,
    # so a lone surrogate in a string was read by the feed and refused by the month.
    from exporter.vendors.securevideo.parser import count_month

    text = DOC_SAMPLE.decode("utf-8").replace('"BILL"', '"BI\ud800LL"', 1)
    body = text.encode(encoding, "surrogatepass")
    counts = count_month(body)
    assert sum(counts.counts.values()) == len(parse_history(body).records) > 0


def test_an_error_object_larger_than_any_real_one_is_not_decoded() -> None:
    # Decoded whole on the event loop, 16 MiB of integers in an error body held it 1.3 s.
    padding = ",".join(["1"] * 40_000)
    body = ('{"Message": "bad", "a": [' + padding + "]}").encode()
    assert len(body) > 65_536
    assert parse_error_message(body) is None
    assert parse_error_message(b'{"Message": "bad", "a": [1]}') == "bad"


def test_a_secret_made_whole_by_blanking_control_characters_is_redacted() -> None:
    # Blanked after the mask, "correct\thorse" became a passphrase again, in our own log.
    secret = "correct horse battery"
    body = json.dumps({"Message": "bad key correct\thorse\x85battery"}).encode()
    with known_secret(secret):
        assert parse_error_message(body) == "bad key <redacted>"


# -- the fast paths (bench/ingest.py): identical to the strict ones, edge by edge ----------

FAST_PATH_EDGES = [
    *(
        f"2016-11-03T21:46:16{'.' + '1234567'[:n] if n else ''}{z}"
        for n in range(9)
        for z in ("", "Z")
    ),  # 0-7 fractional digits accepted, 8 refused
    "2024-02-29T12:00:00",
    "2000-02-29T00:00:00.5Z",  # leap days
    "2023-02-29T12:00:00",
    "1900-02-29T00:00:00",
    "2016-04-31T00:00:00",  # no such day
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59.9999999Z",
    "1969-12-31T23:59:59.9",
    "2016-11-03T23:59:59",
    "2016-11-03T23:59:60",
    "2016-11-03T23:60:00",
    "2016-11-03T24:00:00",
    "2016-00-03T00:00:00",
    "2016-11-00T00:00:00",
    # What int() would accept but the strict pattern does not: signs, underscores, spaces.
    "2016-11-03T+1:00:00",
    "2016-11-03T1_:00:00",
    "2016-11-03T 1:00:00",
    "2016-11-03T21:46:16.+1",
    "2016-11-03T21:46:16._1",
    "2016-11-03T21:46:16. 1",
    "+016-11-03T21:46:16",
    "2016-1_-03T21:46:16",
    "2016-11-03T21:46:1\u0666",
    "2016-11-03T21:46:16.\u0661",
    "2016-11-03T21:46:16.Z",
    "2016-11-03T21:46:16.",
    "Z",
    "2016-11-03T21:46:16ZZ",
    "2016-11-03T21:46:16z",
    "2016-11-03t21:46:16",
    "2016-11-03 21:46:16",
    "2016/11/03T21:46:16",
    "2016-11-03T21-46-16",
    "2016-11-03T21:46",
    "20161103T214616",
    "2016-11-03T21:46:16+00:00",
    " 2016-11-03T21:46:16",
    "",
]


def _outcome(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except ValueError:
        return ValueError


@pytest.mark.parametrize("text", FAST_PATH_EDGES)
def test_fast_timestamp_path_agrees_with_the_strict_one(text: str) -> None:
    assert _outcome(parse_timestamp, text) == _outcome(_parse_timestamp_strict, text)


def test_fast_timestamp_path_values() -> None:
    assert parse_timestamp("2024-02-29T12:00:00") == 1709208000.0
    assert parse_timestamp("2016-11-03T21:46:16.1234567Z") == (1478209576 * 10**7 + 1234567) / 10**7
    with pytest.raises(ValueError):
        parse_timestamp("2023-02-29T12:00:00")
    with pytest.raises(ValueError):
        parse_timestamp("2016-11-03T21:46:16.12345678")


def test_fast_timestamp_path_agrees_on_random_timestamps() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        digits = rng.randint(0, 8)
        text = (
            f"{rng.randint(1, 9999):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}"
            f"T{rng.randint(0, 25):02d}:{rng.randint(0, 61):02d}:{rng.randint(0, 61):02d}"
            + (f".{rng.randrange(10**digits):0{digits}d}" if digits else "")
            + rng.choice(("", "Z"))
        )
        assert _outcome(parse_timestamp, text) == _outcome(_parse_timestamp_strict, text), text


def _column_outcome(texts: Sequence[str | None]) -> object:
    try:
        return stamp_column(texts)
    except ValueError:
        return ValueError


def _one_at_a_time(texts: Sequence[str | None]) -> object:
    try:
        return [None if text is None else parse_timestamp(text) for text in texts]
    except ValueError:
        return ValueError


@pytest.mark.parametrize(
    "text",
    [*FAST_PATH_EDGES, "2016-11-03T21:46:16\n2016-11-03T21:46:16", "2016-11-03T21:46:16\n", "\n"],
)
def test_a_column_of_timestamps_is_read_as_one_at_a_time(text: str) -> None:
    good = "2016-11-03T21:46:16.5"
    for column in ([text], [None, text, None], [good, text], [text, good, None, good]):
        assert _column_outcome(column) == _one_at_a_time(column), column  # floats exact


def test_a_column_of_random_timestamps_is_read_as_one_at_a_time() -> None:
    rng = random.Random(11)
    for _ in range(300):
        column: list[str | None] = []
        for _ in range(rng.randint(0, 12)):
            digits = rng.choice((0, 0, 3, 6, 6, 7))
            column.append(
                None
                if rng.random() < 0.1
                else (
                    f"{rng.randint(1990, 2040):04d}-{rng.randint(1, 12):02d}-"
                    f"{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
                    f"{rng.randint(0, 59):02d}"
                    + (f".{rng.randrange(10**digits):0{digits}d}" if digits else "")
                    + rng.choice(("", "", "", "Z"))
                )
            )
        assert _column_outcome(column) == _one_at_a_time(column), column
    assert stamp_column([]) == []


def test_the_day_cache_stays_bounded() -> None:
    start = datetime.date(2020, 1, 1)
    for n in range(3 * _DAYS_MAX):
        day = start + datetime.timedelta(days=n)
        assert parse_timestamp(f"{day.isoformat()}T00:00:01") == (
            datetime.datetime(
                day.year, day.month, day.day, 0, 0, 1, tzinfo=datetime.UTC
            ).timestamp()
        )
        assert len(_DAYS) <= _DAYS_MAX


@pytest.mark.parametrize(
    ("field", "value", "kept"),
    [
        ("SessionId", 10**18 - 1, True),
        ("SessionId", -(10**18 - 1), False),  # negative (probe 13)
        ("SessionId", 0, True),
        ("SessionId", 10**18, False),
        ("SessionId", -(10**18), False),
        ("UserId", 10**18 - 1, True),
        ("UserId", 10**18, False),
        # A number of minutes is plausible up to a week, far below 18 digits.
        ("DurationMinutes", 10080, True),
        ("DurationMinutes", 10**18 - 1, False),
        ("DurationMinutes", 10**18, False),
        ("WaitTime", 10**19, False),
        ("ScheduleTs", 10**18, False),
        ("BillableStatusCd", 10**30, False),
    ],
)
def test_integers_past_18_digits_are_refused_by_both_loaders(
    field: str, value: int, kept: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps([{"SessionId": 1, field: value}, {"SessionId": 2}]).encode()
    fast = parse_history(body)
    # Uncapped integers make the parser use the json hook throughout (the strict loader).
    monkeypatch.setattr(sys, "get_int_max_str_digits", lambda: 0)
    strict = parse_history(body)
    assert fast == strict
    assert len(fast.records) == (2 if kept else 1)


@pytest.mark.parametrize(
    "body", [b"1" * 30, b"-" + b"1" * 5000, b'{"a": 1}', b"not json", b"[" * 200_000, b'"x"']
)
def test_a_bad_reply_fails_in_the_strict_loaders_words(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ParseError) as fast:
        parse_history(body)
    monkeypatch.setattr(sys, "get_int_max_str_digits", lambda: 0)
    with pytest.raises(ParseError) as strict:
        parse_history(body)
    assert str(fast.value) == str(strict.value)


def test_an_integer_over_the_interpreter_cap_skips_only_its_record() -> None:
    body = b'[{"SessionId": 1, "UserId": ' + b"7" * 5000 + b'}, {"SessionId": 2}]'
    page = parse_history(body)
    assert [r.session_id for r in page.records] == [2]
    assert page.first_problem == "record 0: UserId is not a whole number"


# -- the typed fast path decides exactly as the general one ---------------------------------

_ODD_NUMBERS = st.sampled_from(
    [
        0,
        -0.0,
        1,
        -1,
        7 * 1440,
        7 * 1440 + 1,
        10**18 - 1,
        10**18,
        -(10**18) + 1,
        10**25,
        1e308,
        1e-400,
        0.5,
        True,
        float("nan"),
        float("inf"),
        -float("inf"),
    ]
)
_ODD_TEXT = st.sampled_from(["BILL", "", "Zoom", "\ud800", "é", "a\x00b", "\ufeff"])
_TIMES = st.sampled_from(
    [
        "2016-11-03T21:46:16.1",
        "2016-11-03T22:00:00",
        "2016-11-03T22:00:00Z",
        "2099-12-31T23:59:59.9999999",
    ]
)
_ODD_TIMES = st.sampled_from(
    [
        "2016-02-30T00:00:00",
        "9999-01-01T00:00:00",
        "1999-12-31T23:59:59",
        "2016-11-03",
        "2016-11-03T24:00:00",
        "",
        "2016-11-03T21:46:16.12345678",
        "2100-01-01T00:00:01",
    ]
)
_MINUTES = st.one_of(st.integers(0, 12_000), st.floats(0, 12_000))


def _mostly(
    valid: st.SearchStrategy[object],
    *odd: st.SearchStrategy[object],
) -> st.SearchStrategy[object]:
    """Valid values three times in four, so that whole records often are valid but for
    one field, which is where the two paths could part."""
    return st.one_of(valid, valid, valid, st.none(), *odd)


_FIELDS: dict[str, st.SearchStrategy[object]] = {
    "SessionId": _mostly(
        st.integers(1, 10**9), st.integers(-(10**19), 10**19), _ODD_NUMBERS, _ODD_TEXT
    ),
    "ScheduleTs": _mostly(_TIMES, _ODD_TIMES, _ODD_NUMBERS),
    "BillableTs": _mostly(_TIMES, _ODD_TIMES),
    "DurationMinutes": _mostly(_MINUTES, st.floats(-1, 20_000), _ODD_NUMBERS, _ODD_TEXT),
    "WaitTime": _mostly(_MINUTES, st.integers(-5, 20_000), _ODD_NUMBERS),
    "BillableStatusCd": _mostly(st.sampled_from(["BILL", "SVCO"]), _ODD_TEXT, _ODD_NUMBERS),
    "ScheduleType": _mostly(st.sampled_from(["OnDemand", "Scheduled"]), _ODD_TEXT),
    "UserId": _mostly(st.integers(1, 10**6), st.integers(-(10**19), 10**19), _ODD_TEXT),
    "ReportableMeetingProvider": _mostly(st.sampled_from(["Zoom", "VSee"]), _ODD_TEXT),
    "Extra": st.one_of(st.none(), st.lists(st.integers(), max_size=3)),
}


@st.composite
def _history_item(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([1, "x", None, [], [1]]))
    names = draw(st.sets(st.sampled_from(sorted(_FIELDS))))
    if draw(st.integers(0, 7)):
        names.add("SessionId")
    return {name: draw(_FIELDS[name]) for name in sorted(names)}


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_history_item(), max_size=6), st.sampled_from(["", " ", "\ufeff"]), st.integers(1, 8)
)
def test_typed_path_decides_as_the_general_path(
    items: list[object], prefix: str, max_records: int
) -> None:
    body = (prefix + json.dumps(items)).encode("utf-8", "surrogatepass")

    def outcome(parse: Callable[[bytes, int], HistoryPage]) -> HistoryPage | str:
        try:
            return parse(body, max_records)
        except ParseError as exc:
            return f"ParseError: {exc}"

    assert outcome(parse_history) == outcome(_parse_general)


def test_typed_path_takes_a_plain_reply() -> None:
    """The fast path must actually run for an ordinary reply (else the property above
    proves nothing about it)."""
    assert _parse_typed(DOC_SAMPLE, MAX_RECORDS) == _parse_general(DOC_SAMPLE)
    assert _parse_typed(b'[{"SessionId": 1, "WaitTime": NaN}]', MAX_RECORDS) is None


_VALID_RECORD: dict[str, object] = {
    "SessionId": 7,
    "ScheduleTs": "2016-11-03T21:00:00",
    "BillableTs": "2016-11-03T21:46:16.1",
    "DurationMinutes": 12,
    "WaitTime": 3.5,
    "BillableStatusCd": "BILL",
    "ScheduleType": "Scheduled",
    "UserId": 42,
    "ReportableMeetingProvider": "Zoom",
}
_EDGE_VALUES: list[object] = [
    None,
    0,
    -0.0,
    -1,
    0.5,
    7 * 1440,
    7 * 1440 + 0.001,
    10**18 - 1,
    10**18,
    -(10**18) + 1,
    -(10**18),
    10**25,
    1e308,
    1e-400,
    True,
    float("nan"),
    float("inf"),
    "",
    "BILL",
    "\ud800",
    "é",
    "2016-11-03T22:00:00",
    "2016-02-30T00:00:00",
    "2100-01-01T00:00:01",
    "1999-12-31T23:59:59",
    [1],
    {"a": 1},
]


@pytest.mark.parametrize("field", sorted(_VALID_RECORD))
def test_typed_path_decides_as_the_general_path_at_every_edge(field: str) -> None:
    """One valid record with one field set to each edge value in turn, then removed."""
    missing = {k: v for k, v in _VALID_RECORD.items() if k != field}
    for record in [*({**_VALID_RECORD, field: value} for value in _EDGE_VALUES), missing]:
        body = json.dumps([record, _VALID_RECORD]).encode("utf-8", "surrogatepass")
        assert parse_history(body) == _parse_general(body), record


@pytest.mark.parametrize(
    "body", [b"[[1, 2], [3]]", b'[null, 1, "x"]', b'[[{"SessionId": 1}]]', b"[true]"]
)
def test_an_array_of_no_objects_is_no_history_reply(body: bytes) -> None:
    # Probe 13: read as a reply of skipped records, it was a success that zeroed every
    # gauge of the account; the month counted none.
    from exporter.vendors.securevideo.parser import count_month

    with pytest.raises(ParseError, match="none of them a JSON object"):
        parse_history(body)
    with pytest.raises(ParseError, match="none of them a JSON object"):
        count_month(body)


def test_objects_among_other_items_are_read_and_the_others_skipped() -> None:
    page = parse_history(b'[null, {"SessionId": 5}, [1]]')
    assert [r.session_id for r in page.records] == [5] and page.skipped == 2


@pytest.mark.parametrize("session_id", [-1, -5, -(10**17)])
def test_a_negative_session_id_is_an_invalid_record_in_the_feed_and_the_month(
    session_id: int,
) -> None:
    from exporter.vendors.securevideo.parser import count_month

    body = json.dumps(
        [{"SessionId": session_id, "BillableTs": "2026-01-02T10:00:00", "BillableStatusCd": "BILL"}]
    ).encode()
    page, month = parse_history(body), count_month(body)
    assert (page.records, page.skipped, page.first_problem) == (
        (),
        1,
        "record 0: SessionId is negative",
    )
    assert (month.counts, month.skipped) == ({}, 1)


def test_a_month_record_too_long_to_read_says_so_not_that_it_is_not_json() -> None:
    # Probe 13: a valid record of 2 MB failed the month as "is not JSON".
    from exporter.vendors.securevideo.parser import MAX_RECORD_CHARS, MonthCounter

    record = json.dumps({"SessionId": 1, "UsageDescription": "U" * 2 * MAX_RECORD_CHARS})
    body = ("[" + record + "]").encode()
    counter = MonthCounter(1000)

    def count() -> None:
        for start in range(0, len(body), 1 << 16):
            counter.feed(body[start : start + (1 << 16)])
        counter.finish()

    with pytest.raises(ParseError, match=r"record 0 does not end within 1 MiB"):
        count()


def test_a_deeply_nested_month_record_is_named_as_such() -> None:
    from exporter.vendors.securevideo.parser import count_month

    body = b'[{"SessionId": 1, "X": ' + b"[" * 200_000 + b"]" * 200_000 + b"}]"
    with pytest.raises(ParseError, match="record 0 is nested too deeply"):
        count_month(body)


def test_the_month_skips_a_session_billed_after_now_as_the_feed_does() -> None:
    # Probe 13: the month gauge counted sessions billed next year, which the feed skips
    # as implausible ("BillableTs more than a day after now").
    from exporter.vendors.securevideo.parser import count_month

    now = datetime.datetime(2026, 12, 10, 12, 0, tzinfo=datetime.UTC).timestamp()
    body = json.dumps(
        [
            {"SessionId": 1, "BillableTs": "2026-12-10T11:00:00", "BillableStatusCd": "COMP"},
            {"SessionId": 2, "BillableTs": "2027-01-01T00:00:00", "BillableStatusCd": "COMP"},
        ]
    ).encode()
    month = count_month(body, latest=now + 86400)
    assert (month.counts, month.skipped, month.implausible) == ({"COMP": 1}, 1, 1)
    assert month.rejected_ids == (("implausible_value", 2),)
    assert count_month(body).counts == {"COMP": 2}  # no bound given: every one counts
