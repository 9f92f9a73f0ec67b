from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aioresponses import aioresponses as _aioresponses
from yarl import URL

from exporter.errors import UpstreamError
from exporter.logs import get_logger
from exporter.simulators.clock import FakeClock
from exporter.vendors.base import CollectorContext
from exporter.vendors.securevideo.client import FEED, MONTH, HistoryClient

from ..mocking import mocked as aioresponses
from .harness import Harness, account, harness


def ignore_rejects(reason: str, count: int) -> None:
    """Rejected records are not what these tests look at."""


BASE = "https://api.securevideo.com"
KEY, SECRET = "sv-ident-123", "sv-secret-XYZ-987"


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness(FakeClock(ts("2026-03-10T12:00:00"))) as result:
        yield result


def client(**fields: object) -> HistoryClient:
    ctx = CollectorContext(
        clock=FakeClock(),
        log=get_logger(test="securevideo"),
        label_value_limit=50,
        reject=ignore_rejects,
        started_at=0.0,
    )
    return HistoryClient(account(BASE, api_key=KEY, api_secret=SECRET, **fields), ctx)


def sent(mocked: _aioresponses) -> list[tuple[str, URL, dict[str, object]]]:
    return [
        (method, url, call.kwargs)
        for (method, url), calls in mocked.requests.items()
        for call in calls
    ]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        ("2026-03-10T12:00:00", "2026-03-09", "2026-03-10"),
        ("2026-03-10T00:00:00", "2026-03-09", "2026-03-10"),  # midnight belongs to the new day
        ("2026-03-09T23:59:59.999", "2026-03-08", "2026-03-09"),
        ("2026-03-01T00:00:30", "2026-02-28", "2026-03-01"),  # across a month boundary
        ("2026-01-01T00:00:30", "2025-12-31", "2026-01-01"),  # and a year boundary
        ("2024-03-01T08:00:00", "2024-02-29", "2024-03-01"),  # leap day
    ],
)
def test_feed_window_is_yesterday_and_today_in_utc(now: str, start: str, end: str) -> None:
    assert client().feed_params(ts(now)) == {"startDt": start, "endDt": end}


def test_feed_days_widens_the_window_and_month_is_the_first_day() -> None:
    c = client(feed_days=7, participant_email="pat+1@example.org")
    now = ts("2026-03-03T05:00:00")
    assert c.feed_params(now) == {
        "startDt": "2026-02-25",
        "endDt": "2026-03-03",
        "participantEmail": "pat+1@example.org",
    }
    assert c.month_params(now) == {"month": "2026-03-01", "participantEmail": "pat+1@example.org"}
    assert client(feed_days=1).feed_params(now) == {"startDt": "2026-03-03", "endDt": "2026-03-03"}


async def test_feed_request_shape(h: Harness) -> None:
    with aioresponses() as mocked:
        mocked.get(f"{BASE}/history?startDt=2026-03-09&endDt=2026-03-10", body=b"[]")
        page = await client().feed(h.upstream, h.clock.time())
    assert page.records == ()
    ((method, url, kwargs),) = sent(mocked)
    assert method == "GET"
    assert (url.host, url.path) == ("api.securevideo.com", "/history")
    assert dict(url.query) == {"startDt": "2026-03-09", "endDt": "2026-03-10"}
    headers: Any = kwargs["headers"]
    assert headers["Authorization"] == basic(KEY, SECRET)
    assert kwargs.get("auth") is None
    assert KEY not in str(url) and SECRET not in str(url)


async def test_host_user_and_participant_filters_and_month(h: Harness) -> None:
    c = client(host_user_id=5, participant_email="alex@example.com")
    with aioresponses() as mocked:
        mocked.get(
            f"{BASE}/history/5?month=2026-03-01&participantEmail=alex%40example.com",
            body=b'[{"SessionId": 1, "BillableTs": "2026-03-02T10:00:00"}]',
        )
        counts = await c.month(h.upstream, h.clock.time())
    assert counts.counts == {None: 1}
    ((_, url, _),) = sent(mocked)
    assert url.path == "/history/5"
    assert dict(url.query) == {"month": "2026-03-01", "participantEmail": "alex@example.com"}
    assert h.metrics.requests.values == {("securevideo", "clinic", MONTH): 1.0}


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, "auth"),
        (403, "auth"),
        (400, "http_4xx"),
        (404, "http_4xx"),
        (500, "http_5xx"),
        (503, "http_5xx"),
    ],
)
async def test_error_statuses_map_to_reasons_with_the_vendor_message(
    h: Harness, status: int, reason: str
) -> None:
    body = b'{"Message": "Authorization has been denied for this request.", "MessageDetail": null}'
    with aioresponses() as mocked:
        mocked.get(f"{BASE}/history?startDt=2026-03-09&endDt=2026-03-10", status=status, body=body)
        with pytest.raises(UpstreamError) as caught:
            await client().feed(h.upstream, h.clock.time())
    assert caught.value.reason == reason
    assert caught.value.operation == FEED
    assert str(caught.value) == (
        f"history: {reason}: HTTP {status}: Authorization has been denied for this request."
    )
    assert h.failures() == {(FEED, reason): 1.0}


async def test_rate_limit_carries_retry_after(h: Harness) -> None:
    with aioresponses() as mocked:
        mocked.get(
            f"{BASE}/history?startDt=2026-03-09&endDt=2026-03-10",
            status=429,
            headers={"Retry-After": "120"},
            body=b"Too Many Requests",
        )
        with pytest.raises(UpstreamError) as caught:
            await client().feed(h.upstream, h.clock.time())
    assert (caught.value.reason, caught.value.retry_after) == ("rate_limited", 120.0)
    assert caught.value.message == "HTTP 429: Too Many Requests"  # the body, quoted


async def test_http_date_retry_after_is_relative_to_our_clock(h: Harness) -> None:
    with aioresponses() as mocked:
        mocked.get(
            f"{BASE}/history?month=2026-03-01",
            status=429,
            headers={"Retry-After": "Tue, 10 Mar 2026 12:05:00 GMT"},
        )
        with pytest.raises(UpstreamError) as caught:
            await client().month(h.upstream, h.clock.time())
    assert caught.value.retry_after == 300.0


async def test_a_200_error_object_is_a_vendor_error(h: Harness) -> None:
    with aioresponses() as mocked:
        mocked.get(
            f"{BASE}/history?startDt=2026-03-09&endDt=2026-03-10",
            body=b'{"Message": "An error has occurred."}',
        )
        with pytest.raises(UpstreamError) as caught:
            await client().feed(h.upstream, h.clock.time())
    assert caught.value.reason == "vendor_error"
    assert "An error has occurred." in caught.value.message


async def test_garbage_is_a_parse_failure(h: Harness) -> None:
    with aioresponses() as mocked:
        mocked.get(f"{BASE}/history?startDt=2026-03-09&endDt=2026-03-10", body=b"<html>")
        with pytest.raises(UpstreamError) as caught:
            await client().feed(h.upstream, h.clock.time())
    assert caught.value.reason == "parse"
    assert h.failures() == {(FEED, "parse"): 1.0}


async def test_credentials_echoed_by_the_vendor_are_masked(h: Harness) -> None:
    body = f'{{"Message": "Unknown API key {KEY} / {SECRET}"}}'.encode()
    with aioresponses() as mocked:
        mocked.get(f"{BASE}/history?startDt=2026-03-09&endDt=2026-03-10", status=401, body=body)
        with pytest.raises(UpstreamError) as caught:
            await client().feed(h.upstream, h.clock.time())
    text = str(caught.value)
    assert KEY not in text and SECRET not in text
    assert text.count("<redacted>") == 2


def test_credentials_do_not_show_in_the_account_or_client_repr() -> None:
    c = client()
    assert KEY not in repr(c.account) and SECRET not in repr(c.account)
    assert SECRET not in repr(c)
