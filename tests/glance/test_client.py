from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import structlog.testing
from yarl import URL

from exporter.admission import Admission
from exporter.errors import UpstreamError
from exporter.http import Upstream, new_client_session
from exporter.scrub import MIN_FRAGMENT
from exporter.selfmetrics import SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.vendors.glance.client import (
    COMPLETED,
    COMPLETED_ENDING,
    FeedPosition,
    GlanceClient,
    PageBudget,
    PagesSpent,
    utc,
    windows,
)
from exporter.vendors.glance.parser import NS

from ..mocking import form_sent
from ..support import collector_context
from .harness import make_account, sample
from .harness import mocked as aioresponses

BASE = "https://glance.example"
KEY = "s3cr3t-KEY-value"
DAY = 86400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def url(operation: str) -> str:
    return f"{BASE}/services/activityservice.asmx/{operation}"


@pytest.fixture
def metrics() -> SelfMetrics:
    return SelfMetrics()


@pytest.fixture
async def upstream(metrics: SelfMetrics) -> AsyncIterator[Upstream]:
    session = new_client_session()
    yield Upstream(
        session,
        vendor="glance",
        account="acme",
        timeout=5.0,
        admission=Admission(2),
        metrics=metrics,
        max_body_bytes=1 << 20,
        wall_time=FakeClock().time,
    )
    await session.close()


def make_client(
    key: str = KEY,
    partner_id: int = 12345,
    base: str = BASE + "/",
    max_records: int | None = None,
    **options: int,
) -> GlanceClient:
    """The client as its collector builds it, for `account` and the context's limits."""
    account = make_account(base, partner_id=partner_id, api_key=key)
    limits = {} if max_records is None else {"max_records_per_reply": max_records}
    ctx = collector_context(FakeClock(), Counter(), **limits)
    return GlanceClient(account, ctx, **options)


@pytest.fixture
def client() -> GlanceClient:
    return make_client()


def sent(m: aioresponses, operation: str) -> list[dict[str, Any]]:
    calls = m.requests.get(("POST", URL(url(operation))), [])
    return [form_sent(call) for call in calls]


def page(next_id: int | None, ids: list[int]) -> bytes:
    sessions = "".join(
        f"<session><id>{i}</id><type>C</type><status>C</status><duration>60</duration></session>"
        for i in ids
    )
    nxt = "" if next_id is None else f"<nextId>{next_id}</nextId>"
    return (
        f'<groupSessions xmlns="{NS}">{nxt}<users><userSessions>'
        f"<partnerUserId>U</partnerUserId><validUser>true</validUser>"
        f"<sessions>{sessions}</sessions></userSessions></users></groupSessions>"
    ).encode()


def test_utc_is_explicit() -> None:
    assert utc(T0) == "2026-01-01T00:00:00Z"
    assert utc(T0 + 0.9) == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (T0, T0, [(T0, T0)]),
        (T0, T0 + 31 * DAY, [(T0, T0 + 31 * DAY)]),
        (T0, T0 + 31 * DAY + 1, [(T0, T0 + 31 * DAY), (T0 + 31 * DAY, T0 + 31 * DAY + 1)]),
        (T0 + 0.5, T0 + 10.2, [(T0, T0 + 11)]),  # widened to whole seconds, never narrowed
        (
            T0,
            T0 + 70 * DAY,
            [(T0, T0 + 31 * DAY), (T0 + 31 * DAY, T0 + 62 * DAY), (T0 + 62 * DAY, T0 + 70 * DAY)],
        ),
    ],
)
def test_windows(start: float, end: float, expected: list[tuple[int, int]]) -> None:
    assert windows(start, end) == expected
    assert all(hi - lo <= 31 * DAY for lo, hi in windows(start, end))


async def test_active_sessions_request_shape(client: GlanceClient, upstream: Upstream) -> None:
    with aioresponses() as m:
        m.post(url("PartnerActiveSessions"), body=sample("PartnerActiveSessions"))
        reply = await client.active_sessions(upstream)
        (call,) = m.requests[("POST", URL(url("PartnerActiveSessions")))]
    assert reply.records[0].id == 61943691
    assert form_sent(call) == {"partnerId": "12345", "apiKey": KEY}
    assert call.kwargs.get("params") is None


async def test_counts_request_shape(client: GlanceClient, upstream: Upstream) -> None:
    with aioresponses() as m:
        m.post(url("PartnerSessionCounts"), body=sample("PartnerSessionCounts"))
        m.post(url("PartnerSessionCountsEnding"), body=sample("PartnerSessionCountsEnding"))
        await client.session_counts(upstream, "C", T0 - 5 * 3600, T0 + 19 * 3600)
        await client.session_counts_ending(upstream, T0, T0 + DAY)
        assert sent(m, "PartnerSessionCounts") == [
            {
                "partnerId": "12345",
                "apiKey": KEY,
                "type": "",
                "status": "C",
                "startRange": "2025-12-31T19:00:00Z",
                "endRange": "2026-01-01T19:00:00Z",
            }
        ]
        assert sent(m, "PartnerSessionCountsEnding") == [
            {
                "partnerId": "12345",
                "apiKey": KEY,
                "type": "",
                "startRange": "2026-01-01T00:00:00Z",
                "endRange": "2026-01-02T00:00:00Z",
            }
        ]


async def test_user_sessions_request_shape(client: GlanceClient, upstream: Upstream) -> None:
    with aioresponses() as m:
        m.post(url("PartnerUserSessions"), body=sample("PartnerUserSessions"))
        reply = await client.user_sessions(upstream, "JDemo", "A", T0 - DAY, T0 + 3600)
        assert reply.valid_user
        assert sent(m, "PartnerUserSessions") == [
            {
                "partnerId": "12345",
                "apiKey": KEY,
                "partnerUserId": "JDemo",
                "startRange": "2025-12-31T00:00:00Z",
                "endRange": "2026-01-01T01:00:00Z",
                "status": "A",
                "sessionKey": "",
            }
        ]


async def collect(
    client: GlanceClient, upstream: Upstream, operation: str, start: float, end: float
) -> list[int]:
    ids: list[int] = []
    async for p in client.completed(upstream, operation, start, end):
        ids.extend(s.id for s in p.sessions)
    return ids


@pytest.mark.parametrize("operation", [COMPLETED, COMPLETED_ENDING])
async def test_feed_follows_next_id_until_an_empty_page(
    client: GlanceClient, upstream: Upstream, operation: str
) -> None:
    with aioresponses() as m:
        m.post(url(operation), body=page(11, [1, 2]))
        m.post(url(operation), body=page(21, [11, 12]))
        m.post(url(operation), body=page(21, []))
        ids = await collect(client, upstream, operation, T0, T0 + 600)
        calls = sent(m, operation)
    assert ids == [1, 2, 11, 12]
    assert [c["nextId"] for c in calls] == ["0", "11", "21"]
    assert {(c["startRange"], c["endRange"], c["nResults"], c["sessionKey"]) for c in calls} == {
        ("2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z", "1000", "")
    }
    assert all(KEY not in str(u) for _, u in m.requests)


@pytest.mark.parametrize(("last_next", "pages"), [(0, 2), (None, 2), (11, 2), (-1, 2)])
async def test_feed_stops_on_zero_missing_or_repeated_next_id(
    client: GlanceClient, upstream: Upstream, last_next: int | None, pages: int
) -> None:
    with aioresponses() as m:
        m.post(url(COMPLETED_ENDING), body=page(11, [1, 2]))
        m.post(url(COMPLETED_ENDING), body=page(last_next, [11, 12]))
        m.post(url(COMPLETED_ENDING), body=page(99, [99]))  # must never be asked for
        with structlog.testing.capture_logs() as logs:
            ids = await collect(client, upstream, COMPLETED_ENDING, T0, T0 + 600)
        assert len(sent(m, COMPLETED_ENDING)) == pages
    assert ids == [1, 2, 11, 12]
    assert logs == []  # each a way the document leaves open to mark the last page


async def test_feed_stops_on_a_next_id_cycle(client: GlanceClient, upstream: Upstream) -> None:
    with aioresponses() as m:
        m.post(url(COMPLETED_ENDING), body=page(5, [1]))
        m.post(url(COMPLETED_ENDING), body=page(9, [5]))
        m.post(url(COMPLETED_ENDING), body=page(5, [9]))  # back to 5: already sent
        m.post(url(COMPLETED_ENDING), body=page(9, [5]), repeat=True)
        with structlog.testing.capture_logs() as logs:
            assert await collect(client, upstream, COMPLETED_ENDING, T0, T0 + 60) == [1, 5, 9]
        assert len(sent(m, COMPLETED_ENDING)) == 3
    # Going back ends the window as a repeat does, but is no way to mark a last page.
    assert [e["event"] for e in logs] == ["glance_feed_paging_went_back"]
    assert "taken as ended" in logs[0]["hint"]


async def test_feed_follows_a_lower_next_id_not_sent_before(
    client: GlanceClient, upstream: Upstream
) -> None:
    with aioresponses() as m:
        m.post(url(COMPLETED_ENDING), body=page(100, [1]))
        m.post(url(COMPLETED_ENDING), body=page(50, [100]))  # back, but new
        m.post(url(COMPLETED_ENDING), body=page(0, [50]))
        with structlog.testing.capture_logs() as logs:
            assert await collect(client, upstream, COMPLETED_ENDING, T0, T0 + 60) == [1, 100, 50]
    # The warning says what happened: paging went on (probe 13: it said the window ended).
    assert [(e["event"], e["hint"]) for e in logs] == [
        (
            "glance_feed_paging_went_back",
            "a page named a nextId below the one sent; paging went on from it",
        )
    ]


async def test_feed_page_cap_is_an_error(upstream: Upstream, metrics: SelfMetrics) -> None:
    client = make_client(partner_id=1, base=BASE, max_pages=3)
    with aioresponses() as m:
        for n in range(1, 10):
            m.post(url(COMPLETED_ENDING), body=page(n + 1, [n]))
        with pytest.raises(UpstreamError) as info:
            await collect(client, upstream, COMPLETED_ENDING, T0, T0 + 60)
        assert len(sent(m, COMPLETED_ENDING)) == 3
    assert info.value.reason == "vendor_error"
    assert "the rest of 2026-01-01T00:00:00Z..2026-01-01T00:01:00Z is skipped" in str(info.value)
    assert metrics.failures.values == {("glance", "acme", COMPLETED_ENDING, "vendor_error"): 1}


async def test_a_window_that_pages_without_end_is_given_up_not_read_forever(
    upstream: Upstream,
) -> None:
    # Probe 13: the window started over after the cap, so a feed that always names a
    # new nextId was read from its first page every time, and never got past it.
    client = make_client(partner_id=1, base=BASE, max_pages=3)
    position = FeedPosition(T0, T0 + 40 * DAY)
    with aioresponses() as m:
        for n in range(1, 4):
            m.post(url(COMPLETED_ENDING), body=page(n + 1, [n]))
        m.post(url(COMPLETED_ENDING), body=page(0, [99]))
        with pytest.raises(UpstreamError):
            async for _ in client.completed(
                upstream, COMPLETED_ENDING, T0, T0 + 40 * DAY, position=position
            ):
                pass
        ids = [
            s.id
            async for p in client.completed(
                upstream, COMPLETED_ENDING, T0, T0 + 40 * DAY, position=position
            )
            for s in p.sessions
        ]
        calls = sent(m, COMPLETED_ENDING)
    assert ids == [99] and position.done
    assert [(c["startRange"], c["nextId"]) for c in calls[3:]] == [("2026-02-01T00:00:00Z", "0")]


async def test_feed_splits_long_ranges_into_31_day_windows(
    client: GlanceClient, upstream: Upstream
) -> None:
    with aioresponses() as m:
        m.post(url(COMPLETED), body=page(0, [1]))
        m.post(url(COMPLETED), body=page(0, [2]))
        assert await collect(client, upstream, COMPLETED, T0, T0 + 40 * DAY) == [1, 2]
        calls = sent(m, COMPLETED)
    assert [(c["startRange"], c["endRange"], c["nextId"]) for c in calls] == [
        ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "0"),
        ("2026-02-01T00:00:00Z", "2026-02-10T00:00:00Z", "0"),
    ]


async def test_page_size_is_sent(upstream: Upstream) -> None:
    client = make_client(partner_id=1, base=BASE, page_size=7)
    with aioresponses() as m:
        m.post(url(COMPLETED), body=page(0, []))
        await collect(client, upstream, COMPLETED, T0, T0 + 1)
        assert sent(m, COMPLETED)[0]["nResults"] == "7"
    with pytest.raises(ValueError):
        make_client(partner_id=1, base=BASE, page_size=1001)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            500,
            "System.Security.Authentication.AuthenticationException: Invalid partnerId or "
            "apiKey.\r\n   at Glance.Services",
            "auth",
        ),
        (500, "Invalid API key " + KEY, "auth"),
        (500, "System.InvalidOperationException: Missing parameter: partnerUserId.", "http_5xx"),
        (500, "", "http_5xx"),
        (503, "Service Unavailable", "http_5xx"),
        (401, "Unauthorized", "auth"),
        (429, "slow down", "rate_limited"),
        (404, "nope", "http_4xx"),
        (200, "<html>maintenance</html>", "parse"),
    ],
)
async def test_error_mapping(
    client: GlanceClient,
    upstream: Upstream,
    metrics: SelfMetrics,
    status: int,
    body: str,
    reason: str,
) -> None:
    with aioresponses() as m:
        m.post(url("PartnerActiveSessions"), status=status, body=body)
        with pytest.raises(UpstreamError) as info:
            await client.active_sessions(upstream)
    assert info.value.reason == reason
    assert KEY not in str(info.value)
    assert metrics.failures.values == {("glance", "acme", "PartnerActiveSessions", reason): 1}
    assert metrics.requests.values == {("glance", "acme", "PartnerActiveSessions"): 1}


async def test_asmx_message_is_kept_for_the_log(client: GlanceClient, upstream: Upstream) -> None:
    with aioresponses() as m:
        m.post(
            url("PartnerActiveSessions"),
            status=500,
            body="\r\nSystem.ArgumentException: Bad thing for " + KEY + "\r\n   at X.Y()",
        )
        with pytest.raises(UpstreamError) as info:
            await client.active_sessions(upstream)
    assert "System.ArgumentException: Bad thing for <redacted>" in info.value.message
    assert "at X.Y" not in info.value.message


async def test_an_aspnet_error_page_is_read_by_its_title(
    client: GlanceClient, upstream: Upstream
) -> None:
    # Found by a probe: its first line, `<!DOCTYPE html>`, was all the message said, and
    # a refused key on such a page was `http_5xx`, "usually passes by itself".
    page = (
        "<!DOCTYPE html>\r\n<html>\r\n    <head>\r\n        <title>Invalid apiKey &#39;"
        + KEY
        + "&#39; for\r\n partnerId 1</title>\r\n        <style>body {}</style>\r\n"
        "    </head><body><h2>Server Error in '/' Application.</h2></body></html>"
    )
    with aioresponses() as m:
        m.post(url("PartnerActiveSessions"), status=500, body=page)
        with pytest.raises(UpstreamError) as info:
            await client.active_sessions(upstream)
    assert info.value.reason == "auth"
    assert info.value.message == "HTTP 500: Invalid apiKey '<redacted>' for partnerId 1"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
async def test_a_key_in_an_error_body_of_another_encoding_is_scrubbed_and_still_auth(
    client: GlanceClient, upstream: Upstream, encoding: str
) -> None:
    # Read as UTF-8, a UTF-16 key is `G\0L\0K...`: no scrubber matches that, and with
    # its NULs blanked after the scrub the log showed the key spaced out.
    body = f"Invalid apiKey {KEY} for partnerId 1\r\n   at X.Y()".encode(encoding)
    with aioresponses() as m:
        m.post(url("PartnerActiveSessions"), status=500, body=body)
        with pytest.raises(UpstreamError) as info:
            await client.active_sessions(upstream)
    assert info.value.reason == "auth"
    assert "Invalid apiKey <redacted> for partnerId 1" in info.value.message
    assert KEY[:MIN_FRAGMENT] not in str(info.value).replace(" ", "")


async def test_a_key_wrapped_onto_the_next_line_of_an_error_leaves_no_piece(
    upstream: Upstream,
) -> None:
    key = "GlanceKey-Sup3rSecret-abcdef123456"
    client = make_client(key, partner_id=1, base=BASE)
    body = f"SoapException: Invalid apiKey {key[:28]}\r\n{key[28:]} for partnerId 1"
    with aioresponses() as m:
        m.post(url("PartnerActiveSessions"), status=500, body=body)
        with pytest.raises(UpstreamError) as info:
            await client.active_sessions(upstream)
    # Read with its lines joined, the key shows whole, and the message is that reading.
    assert (
        info.value.message == "HTTP 500: SoapException: Invalid apiKey <redacted> for partnerId 1"
    )
    assert info.value.reason == "auth"


async def test_connection_failure_is_counted(client: GlanceClient, upstream: Upstream) -> None:
    with aioresponses() as m:
        m.post(url("PartnerActiveSessions"), exception=ConnectionResetError("gone"))
        with pytest.raises(UpstreamError) as info:
            await client.active_sessions(upstream)
    assert info.value.reason == "connection"


@pytest.mark.parametrize("offset", [0, 1, 2040, 2044, 2047, 5000])
@pytest.mark.parametrize("encode", [str, quote_plus, lambda k: quote(k, safe="")])
async def test_an_echoed_key_never_reaches_the_error_wherever_it_falls(
    upstream: Upstream, offset: int, encode: Callable[[str], str]
) -> None:
    # The old client cut the body at 2048 bytes before masking: a key straddling the
    # cut, or form-encoded, went to the log. The scrubber sees the whole line first.
    key = "GLK-9f1c+e7/a2=b&c?d"
    client = make_client(key, partner_id=1, base=BASE)
    body = "x" * offset + f" apiKey={encode(key)}&partnerId=1 was refused\r\n   at X.Y()"
    with aioresponses() as m:
        m.post(url("PartnerActiveSessions"), status=500, body=body)
        with pytest.raises(UpstreamError) as info:
            await client.active_sessions(upstream)
    text = str(info.value)
    for form in (key, quote_plus(key), quote(key, safe=""), key[:8], quote_plus(key)[:8]):
        assert form not in text
    assert len(info.value.message) <= 220


async def test_a_reply_over_max_records_is_refused(
    upstream: Upstream, metrics: SelfMetrics
) -> None:
    client = make_client(partner_id=1, base=BASE, max_records=2)
    with aioresponses() as m:
        m.post(url(COMPLETED_ENDING), body=page(0, [1, 2, 3]))
        with pytest.raises(UpstreamError) as info:
            await collect(client, upstream, COMPLETED_ENDING, T0, T0 + 60)
    assert info.value.reason == "limit_exceeded"
    assert metrics.failures.values == {("glance", "acme", COMPLETED_ENDING, "limit_exceeded"): 1}


async def test_the_page_budget_stops_and_the_position_carries_on(upstream: Upstream) -> None:
    client = make_client(partner_id=1, base=BASE)
    position = FeedPosition(T0, T0 + 40 * DAY)  # two windows
    budget = PageBudget(2)
    ids: list[int] = []
    with aioresponses() as m:
        m.post(url(COMPLETED), body=page(11, [1, 2]))
        m.post(url(COMPLETED), body=page(21, [11, 12]))
        m.post(url(COMPLETED), body=page(0, [21]))
        m.post(url(COMPLETED), body=page(0, [31]))
        with pytest.raises(PagesSpent):  # noqa: PT012 - the feed raises mid-way
            async for p in client.completed(
                upstream, COMPLETED, T0, T0, position=position, budget=budget
            ):
                ids.extend(s.id for s in p.sessions)
        assert (position.next_id, position.start) == (21, T0)
        budget = PageBudget(5)
        async for p in client.completed(
            upstream, COMPLETED, T0, T0, position=position, budget=budget
        ):
            ids.extend(s.id for s in p.sessions)
        calls = sent(m, COMPLETED)
    assert ids == [1, 2, 11, 12, 21, 31]
    assert position.done and budget.left == 3
    assert [(c["startRange"], c["nextId"]) for c in calls] == [
        ("2026-01-01T00:00:00Z", "0"),
        ("2026-01-01T00:00:00Z", "11"),
        ("2026-01-01T00:00:00Z", "21"),
        ("2026-02-01T00:00:00Z", "0"),
    ]
