"""Big History replies are decoded record by record (so a worker thread parsing them lets
the event loop run): the result and every error must be exactly those of one json.loads."""

from __future__ import annotations

import json

import pytest

from exporter.errors import ParseError
from exporter.vendors.securevideo.parser import ITEMWISE_BYTES, parse_history


def record(i: int) -> dict[str, object]:
    return {
        "SessionId": 1000 + i,
        "ScheduleTs": "2026-02-01T10:00:00",
        "BillableTs": "2026-02-01T10:05:00.123",
        "DurationMinutes": 12,
        "WaitTime": 3,
        "BillableStatusCd": "BILL",
        "ScheduleType": "Scheduled",
        "UserId": 5,
        "UsageDescription": "x" * 200,
        "ScheduledByUserId": 5,
        "ReportableMeetingProvider": "Zoom",
    }


def big_body(pretty: bool = False) -> bytes:
    records = [record(i) for i in range(ITEMWISE_BYTES // 300)]
    text = json.dumps(records, indent=2 if pretty else None).replace("\n", "\r\n")
    assert len(text) >= ITEMWISE_BYTES
    return text.encode()


@pytest.mark.parametrize("pretty", [False, True])
def test_a_big_reply_parses_as_a_small_one_would(pretty: bool) -> None:
    body = big_body(pretty)
    page = parse_history(body)
    assert len(page.records) == ITEMWISE_BYTES // 300
    small = parse_history(json.dumps([record(0)]).encode())
    assert page.records[0] == small.records[0]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-1],  # no closing ]
        lambda b: b.replace(b"}, {", b"} {", 1),  # a missing comma
        lambda b: b + b" []",  # text after the array
        lambda b: b"\xff" + b,  # not UTF-8
    ],
)
def test_a_big_broken_reply_fails_with_our_error(damage: object) -> None:
    body = damage(big_body())  # type: ignore[operator]
    with pytest.raises(ParseError):
        parse_history(body)
