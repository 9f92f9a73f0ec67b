"""The real collector against a hostile History server over loopback (issue 11): strings
that do not encode, absurd numbers and dates, credentials quoted back, values equal to a
credential, replies over the configured limits. Nothing crashes, leaks or poisons a series;
every bad record is counted; /metrics always renders."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter.errors import UpstreamError
from exporter.simulators.clock import FakeClock
from exporter.snapshot import render
from exporter.vendors.securevideo import parser
from exporter.vendors.securevideo.collector import SecureVideoCollector

from ..support import collector_context
from .harness import Harness, account, harness, pick, samples, total

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()
KEY = "sv-hostile-key+/=&?"
SECRET = "sv-hostile-secret/+=Zz"
TOKEN = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()

Handler = Callable[[web.Request], web.Response]


def good(sid: int, **fields: Any) -> dict[str, Any]:
    return {
        "SessionId": sid,
        "ScheduleTs": "2026-03-10T11:00:00",
        "BillableTs": "2026-03-10T11:02:00",
        "DurationMinutes": 20,
        "WaitTime": 2,
        "BillableStatusCd": "BILL",
        "ScheduleType": "Scheduled",
        "ReportableMeetingProvider": "Zoom",
        **fields,
    }


class Vendor:
    """Serves `feed` for the date-window query and `month` for the month query, as raw
    bytes, so a test can send what `json.dumps` would never write."""

    def __init__(self) -> None:
        self.feed: bytes = b"[]"
        self.month: bytes = b"[]"
        self.status = 200
        self.month_delay = 0.0
        self.queries: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(dict(request.query))
        is_month = "month" in request.query
        if is_month and self.month_delay:
            await asyncio.sleep(self.month_delay)  # a slow vendor, not synchronisation
        body = self.month if is_month else self.feed
        return web.Response(status=self.status, body=body, content_type="application/json")


@asynccontextmanager
async def vendor() -> AsyncIterator[tuple[Vendor, str]]:
    v = Vendor()
    app = web.Application()
    app.router.add_get("/history", v.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield v, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def collector(h: Harness, url: str, **ctx: Any) -> SecureVideoCollector:
    context = collector_context(h.clock, h.rejected, started_at=0.0, label_limit=50, **ctx)
    acct = account(url, api_key=KEY, api_secret=SECRET)
    return SecureVideoCollector(acct, context)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness(FakeClock(NOW)) as result:
        yield result


async def test_a_lone_surrogate_is_made_encodable_and_metrics_render(h: Harness) -> None:
    # Valid JSON: a \ud800 escape on its own. Before, every render failed on it for good.
    records = [
        good(
            1,
            ReportableMeetingProvider="Zoom\\ud800",
            BillableStatusCd="BI\\udfffLL",
            ScheduleType="\\ud83dSched",
        )
    ]
    body = json.dumps(records).replace("\\\\u", "\\u").encode()
    assert b'"Zoom\\ud800"' in body
    async with vendor() as (v, url):
        v.feed = v.month = body
        c = collector(h, url)
        await c.collect(h.upstream)
    text = render(c.families()).text.decode("utf-8")  # the whole exposition is UTF-8
    # (How many U+FFFD stand in for one surrogate is sanitize.clean_text's business.)
    assert 'provider="Zoom\ufffd' in text
    assert 'billable_status="BI\ufffd' in text and '\ufffdLL"' in text
    assert total(samples(c.families()), "securevideo_sessions_month") == 1


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("WaitTime", "1e308"),
        ("WaitTime", "NaN"),
        ("WaitTime", "Infinity"),
        ("WaitTime", "-1"),
        ("WaitTime", "-Infinity"),
        ("DurationMinutes", "1e308"),
        ("DurationMinutes", "NaN"),
        ("DurationMinutes", "Infinity"),
        ("DurationMinutes", "-5"),
        ("DurationMinutes", "10081"),
        ("BillableTs", '"9999-12-31T23:59:59"'),
        ("BillableTs", '"0001-01-01T00:00:00"'),
        ("ScheduleTs", '"9999-12-31T23:59:59"'),
        ("ScheduleTs", '"0001-01-01T00:00:00"'),
    ],
)
async def test_absurd_numbers_and_dates_reject_the_record(
    h: Harness, field: str, literal: str
) -> None:
    bad = json.dumps(good(2, **{field: "PLACEHOLDER"})).replace('"PLACEHOLDER"', literal)
    body = f"[{json.dumps(good(1))}, {bad}]".encode()
    async with vendor() as (v, url):
        v.feed = body
        c = collector(h, url)
        await c.collect(h.upstream)
    m = samples(c.families())
    assert total(m, "securevideo_sessions_total") == 1  # the good one only
    for name in ("duration", "wait", "consult", "start_delay"):
        assert total(m, f"securevideo_session_{name}_seconds_count") == 1
        assert math.isfinite(total(m, f"securevideo_session_{name}_seconds_sum"))
    assert total(m, "securevideo_session_wait_seconds_sum") == 120
    assert h.rejected == {"implausible_value": 1}
    assert h.failures() == {}


async def test_sessions_billed_in_the_future_are_rejected_never_remembered(h: Harness) -> None:
    # Counted and remembered until 2099 (pruning goes by BillableTs), five of them filled
    # a memory of five for good: every later day's sessions failed with limit_exceeded.
    ahead = [
        good(i, BillableTs=stamp, DurationMinutes=None)
        for i, stamp in ((90, "2099-12-31T10:00:00"), (91, "2026-03-11T13:00:00"))
    ]
    async with vendor() as (v, url):
        c = collector(h, url, max_remembered_ids=2)
        v.feed = json.dumps([good(1), *ahead]).encode()
        await c.collect(h.upstream)
        h.clock.advance(60)
        v.feed = json.dumps([good(1), good(2), *ahead]).encode()
        await c.collect(h.upstream)
    m = samples(c.families())
    assert total(m, "securevideo_sessions_total") == 2
    assert total(m, "securevideo_sessions_in_progress") == 0
    assert h.rejected == {"implausible_value": 2}  # the two, once though both polls hold them
    assert h.failures() == {}


def echoes() -> list[str]:
    padded = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    return [
        KEY,
        SECRET,
        quote_plus(KEY),
        quote(SECRET, safe=""),
        padded,
        padded.rstrip("="),
        quote(padded, safe=""),
        base64.urlsafe_b64encode(f"{KEY}:{SECRET}".encode()).decode(),
        f"Basic {padded}",
    ]


@pytest.mark.parametrize("echo", echoes())
@pytest.mark.parametrize("status", [200, 401, 500])
async def test_credentials_quoted_back_never_reach_an_error(
    h: Harness, echo: str, status: int
) -> None:
    message = {
        "Message": f"Denied for header Authorization: {echo} (check it)",
        "MessageDetail": echo,
    }
    async with vendor() as (v, url):
        v.status, v.feed = status, json.dumps(message).encode()
        c = collector(h, url)
        with pytest.raises(UpstreamError) as caught:
            await c.collect(h.upstream)
    text = str(caught.value)
    assert "<redacted>" in text
    for form in echoes():
        assert form not in text
    assert TOKEN.rstrip("=") not in text


async def test_a_month_error_quoting_credentials_is_scrubbed_in_the_log(h: Harness) -> None:
    events: list[dict[str, Any]] = []
    async with vendor() as (v, url):
        v.month = json.dumps({"Message": f"bad token {TOKEN.rstrip('=')}"}).encode()
        c = collector(h, url)
        c.ctx.log = _Recorder(events)  # type: ignore[assignment]
        await c.collect(h.upstream)  # the month fails, the cycle does not
    (event,) = [e for e in events if e["event"] == "securevideo_month_failed"]
    assert event["reason"] == "vendor_error"
    assert TOKEN.rstrip("=") not in repr(event) and "<redacted>" in event["error"]


class _Recorder:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def warning(self, event: str, **kw: Any) -> None:
        self.events.append({"event": event, **kw})

    debug = info = error = warning


async def test_vendor_data_equal_to_a_credential_never_becomes_a_label(h: Harness) -> None:
    async with vendor() as (v, url):
        v.feed = json.dumps(
            [
                good(1, ReportableMeetingProvider=SECRET),
                good(2, BillableStatusCd=KEY, ScheduleType=TOKEN),
            ]
        ).encode()
        c = collector(h, url)
        await c.collect(h.upstream)
    text = render(c.families()).text.decode()
    for form in (KEY, SECRET, TOKEN, quote_plus(KEY)):
        assert form not in text
    assert 'provider="<redacted>"' in text
    assert total(samples(c.families()), "securevideo_sessions_total") == 2


async def test_long_labels_are_cut_and_counted_once_per_value(h: Harness) -> None:
    provider = "Teams-" + "x" * 5000
    async with vendor() as (v, url):
        v.feed = json.dumps([good(1, ReportableMeetingProvider=provider)]).encode()
        c = collector(h, url, label_value_max_length=32)
        await c.collect(h.upstream)
    (labels,) = pick(samples(c.families()), "securevideo_sessions_total")
    value = dict(labels)["provider"]
    assert len(value) == 32 and value.startswith("Teams-xxx") and value.endswith("…")
    assert h.rejected["label_truncated"] >= 1
    assert "label_overflow" not in h.rejected


async def test_a_feed_over_max_records_per_reply_is_refused_whole(h: Harness) -> None:
    async with vendor() as (v, url):
        v.feed = json.dumps([good(i) for i in range(1, 12)]).encode()
        c = collector(h, url, max_records_per_reply=10)
        with pytest.raises(UpstreamError) as caught:
            await c.collect(h.upstream)
        assert caught.value.reason == "limit_exceeded"
        v.feed = json.dumps([good(i) for i in range(1, 11)]).encode()
        await c.collect(h.upstream)
    assert total(samples(c.families()), "securevideo_sessions_total") == 10
    assert h.failures() == {("history", "limit_exceeded"): 1.0}


FLOOD = (8 << 20) // 3  # elements of 8 MiB


@pytest.mark.parametrize(
    ("body", "decoded_at_most"),
    [
        # Not records the typed decoder takes: refused by the count of objects and
        # arrays before any decoding, flat or nested in one record (a review found the
        # count of top-level elements missed that).
        (b"[" + b",".join([b"{}"] * FLOOD) + b"]", 0),
        (b'[{"x":[' + b",".join([b"{}"] * FLOOD) + b"]}]", 0),
        # no objects to count: decoded one element at a time, up to the bound
        (b"[" + b",".join([b"1"] * FLOOD) + b"]", 1001),
    ],
)
def test_a_flood_of_tiny_records_is_refused_without_decoding_it_whole(
    body: bytes, decoded_at_most: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 16 MiB of `{}` records (5.6 million) took 3.6 s and 478 MiB to decode whole before
    # the record count refused them (probe 7).
    decoded = 0
    raw_decode = parser._PLAIN.raw_decode

    def counted(text: str, pos: int) -> tuple[Any, int]:
        nonlocal decoded
        decoded += 1
        return raw_decode(text, pos)

    monkeypatch.setattr(parser._PLAIN, "raw_decode", counted)
    page = parser.parse_history(body, max_records=1000)
    assert (page.records, page.over_limit) == ((), 1001)
    assert decoded == decoded_at_most


def test_a_flood_nested_in_a_record_the_typed_decoder_takes_is_skipped_not_built() -> None:
    # An unknown field is skipped by the typed decoder without being built: one record.
    body = b'[{"SessionId":1,"x":[' + b",".join([b"{}"] * FLOOD) + b"]}]"
    page = parser.parse_history(body, max_records=1000)
    assert [r.session_id for r in page.records] == [1] and page.over_limit is None


async def test_a_flood_of_empty_records_is_limit_exceeded_over_http(h: Harness) -> None:
    async with vendor() as (v, url):
        v.feed = b"[" + b",".join([b"{}"] * 3_000_000) + b"]"
        c = collector(h, url)
        with pytest.raises(UpstreamError) as caught:
            await c.collect(h.upstream)
    assert caught.value.reason == "limit_exceeded"
    assert "more than max_records_per_reply (100000) records" in caught.value.message


async def test_a_bad_record_in_every_reply_is_counted_once(h: Harness) -> None:
    # A bad session of this month was counted again by every month query (hourly), and
    # one in the feed's window by every poll.
    records = [
        good(1),
        good(2, DurationMinutes="abc"),  # skipped, known by its SessionId
        good(3, BillableTs="2026-99-10T11:02:00"),
        {"SessionId": "four", "BillableTs": "2026-03-10T11:02:00"},  # no usable id
    ]
    async with vendor() as (v, url):
        c = collector(h, url)
        v.feed = v.month = json.dumps(records).encode()
        for _ in range(3):
            await c.collect(h.upstream)
            h.clock.advance(3600)
    m = samples(c.families())
    assert total(m, "securevideo_sessions_total") == 1
    assert total(m, "securevideo_sessions_month") == 2  # the month reads no duration
    # Sessions 2 and 3 once in the feed, 3 once in the month (another query, another
    # record); the one without an id in each of the 3 feed and 3 month replies.
    assert h.rejected == {"invalid_record": 3 + 6}


async def test_a_month_over_max_remembered_ids_is_refused_and_the_cycle_stays_up(
    h: Harness,
) -> None:
    async with vendor() as (v, url):
        c = collector(h, url, max_remembered_ids=100)
        v.month = json.dumps([good(i) for i in range(1, 101)]).encode()
        await c.collect(h.upstream)
        assert total(samples(c.families()), "securevideo_sessions_month") == 100
        v.month = json.dumps([good(i) for i in range(1, 102)]).encode()
        h.clock.advance(3600)
        await c.collect(h.upstream)  # no raise
    assert total(samples(c.families()), "securevideo_sessions_month") == 100  # kept
    assert h.failures() == {("history_month", "limit_exceeded"): 1.0}


async def test_a_month_slower_than_the_cycle_deadline_fails_alone(h: Harness) -> None:
    async with vendor() as (v, url):
        v.feed = json.dumps([good(1)]).encode()
        v.month_delay = 5.0
        acct = account(url, api_key=KEY, api_secret=SECRET, cycle_timeout="1.2s")
        c = SecureVideoCollector(acct, collector(h, url).ctx)
        await c.collect(h.upstream)  # well within the 1.2 s: the month gets 0.2 s
    assert h.failures() == {("history_month", "timeout"): 1.0}
    assert total(samples(c.families()), "securevideo_sessions_total") == 1
    assert pick(samples(c.families()), "securevideo_sessions_month") == {}


async def test_too_many_new_sessions_stop_counting_without_counting_twice(h: Harness) -> None:
    async with vendor() as (v, url):
        c = collector(h, url, max_remembered_ids=5)
        v.feed = json.dumps([good(i) for i in range(1, 9)]).encode()
        for _ in range(3):
            with pytest.raises(UpstreamError) as caught:
                await c.collect(h.upstream)
            assert caught.value.reason == "limit_exceeded"
            assert "max_remembered_ids" in caught.value.message
    m = samples(c.families())
    assert total(m, "securevideo_sessions_total") == 5  # the same five, once each
    assert total(m, "securevideo_session_duration_seconds_count") == 5
    assert h.failures() == {("history", "limit_exceeded"): 3.0}


async def test_a_catch_up_over_the_record_limit_is_given_up_not_retried_for_ever(
    h: Harness,
) -> None:
    async with vendor() as (v, url):
        first = collector(h, url)
        await first.collect(h.upstream)
        saved = first.state()
        h.clock.advance(5 * 86400)  # down for five days: the next feed catches up
        second = collector(h, url, max_records_per_reply=10)
        second.restore(saved)
        v.feed = json.dumps([good(i) for i in range(1, 12)]).encode()
        with pytest.raises(UpstreamError) as caught:
            await second.collect(h.upstream)
        assert caught.value.reason == "limit_exceeded"
        v.feed = b"[]"
        await second.collect(h.upstream)  # the plain window again: up
    feeds = [q["startDt"] for q in v.queries if "startDt" in q]
    assert feeds == ["2026-03-09", "2026-03-10", "2026-03-14"]  # caught up once, then not
    assert second.state()["fed_until"] == h.clock.time()
