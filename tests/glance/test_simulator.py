"""The simulator behaves like an ASMX Activity Service and its world is deterministic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TypeAlias

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.simulators.clock import FakeClock
from exporter.simulators.glance import (
    DEMO_API_KEY,
    DEMO_PARTNER_ID,
    FINAL_STATUSES,
    GlanceSimulator,
    parse_glance_date,
)
from exporter.vendors.glance.parser import NS, parse_group_sessions, parse_user_sessions

T0 = datetime(2026, 3, 10, 15, 0, tzinfo=UTC).timestamp()
PATH = "/services/activityservice.asmx/"
AUTH = {"partnerId": str(DEMO_PARTNER_ID), "apiKey": DEMO_API_KEY}
RANGE = {"startRange": "2026-03-10T10:00:00Z", "endRange": "2026-03-10T15:00:00Z"}


# A string: aiohttp before 3.10 cannot subscript TestClient at run time.
Client: TypeAlias = "TestClient[web.Request, web.Application]"
Http = tuple[Client, GlanceSimulator, FakeClock]  # the fixture below


@pytest.fixture
async def http() -> AsyncIterator[Http]:
    clock = FakeClock(T0)
    sim = GlanceSimulator(clock, seed=1)
    client: Client = TestClient(TestServer(sim.app(), host="127.0.0.1"))
    await client.start_server()
    yield client, sim, clock
    await client.close()


def test_world_depends_on_seed_and_time_only() -> None:
    a_clock, b_clock = FakeClock(T0), FakeClock(T0)
    a, b = GlanceSimulator(a_clock, seed=9), GlanceSimulator(b_clock, seed=9)
    for _ in range(360):  # one in ten-second steps, the other in a single jump
        a_clock.advance(10)
        a.advance()
    b_clock.advance(3600)
    assert a.sessions == b.sessions
    assert a.sessions != GlanceSimulator(FakeClock(T0 + 3600), seed=10).sessions


def test_population_moves_and_has_history() -> None:
    clock = FakeClock(T0)
    sim = GlanceSimulator(clock, seed=4)
    assert sim.completed_ended(T0 - 86400, T0), "history exists at construction"
    before = len(sim.sessions)
    clock.advance(60)
    assert len(sim.sessions) > before, "a few sessions a minute arrive"
    statuses = {s.final_status for s in sim.completed_ended(T0 - 2 * 86400, T0)}
    assert set(FINAL_STATUSES) <= statuses, "every completion status occurs"
    assert any(s.wait >= 180 for s in sim.sessions), "some customers wait minutes"
    assert any(s.duration >= 3600 for s in sim.sessions), "some sessions are long"


async def test_bad_credentials_answer_like_asmx(http: Http) -> None:
    client, _, _ = http
    reply = await client.post(
        PATH + "PartnerActiveSessions", data={"partnerId": str(DEMO_PARTNER_ID), "apiKey": "nope"}
    )
    assert reply.status == 500
    assert "apiKey" in await reply.text()
    reply = await client.post(PATH + "PartnerActiveSessions", data={"partnerId": "1"})
    assert reply.status == 500
    assert "Missing parameter: apiKey" in await reply.text()


@pytest.mark.parametrize(
    ("operation", "params", "message"),
    [
        (
            "PartnerCompletedSessions",
            {
                "sessionKey": "",
                "nResults": "10",
                "nextId": "0",
                "startRange": "2026-01-01T00:00:00Z",
                "endRange": "2026-02-01T00:00:01Z",
            },
            "31 days",
        ),
        (
            "PartnerCompletedSessions",
            {**RANGE, "sessionKey": "", "nResults": "1001", "nextId": "0"},
            "between 1 and 1000",
        ),
        (
            "PartnerCompletedSessions",
            {**RANGE, "sessionKey": "", "nResults": "0", "nextId": "0"},
            "between 1 and 1000",
        ),
        (
            "PartnerCompletedSessionsEnding",
            {**RANGE, "nResults": "5", "nextId": "0"},
            "Missing parameter: sessionKey",
        ),
        ("PartnerSessionCounts", {**RANGE, "status": "C"}, "Missing parameter: type"),
        ("PartnerSessionCounts", {**RANGE, "type": "", "status": "Z"}, "status"),
        (
            "PartnerUserSessions",
            {**RANGE, "status": "A", "sessionKey": ""},
            "Missing parameter: partnerUserId",
        ),
        (
            "PartnerSessionCountsEnding",
            {"type": "", "startRange": "yesterday", "endRange": "2026-01-01"},
            "DateTime",
        ),
        ("NoSuchOperation", {}, "Request format is unrecognized"),
    ],
)
async def test_asmx_errors(
    http: Http, operation: str, params: dict[str, str], message: str
) -> None:
    client, _, _ = http
    reply = await client.post(PATH + operation, data={**AUTH, **params})
    assert reply.status == 500
    assert message in await reply.text()


async def test_pages_in_the_glance_namespace(http: Http) -> None:
    client, sim, _ = http
    params = {**AUTH, **RANGE, "sessionKey": "", "nResults": "7", "nextId": "0"}
    ids: list[int] = []
    for _ in range(1000):
        reply = await client.post(PATH + "PartnerCompletedSessionsEnding", data=params)
        body = await reply.read()
        assert reply.status == 200 and reply.content_type == "text/xml"
        assert f'xmlns="{NS}"'.encode() in body
        page = parse_group_sessions(body)
        if not page.sessions:
            break
        assert len(page.sessions) <= 7
        ids += [s.id for s in page.sessions]
        params["nextId"] = str(page.next_id)
    truth = sim.completed_ended(T0 - 5 * 3600, T0)
    assert sorted(ids) == [s.id for s in truth]  # pages group by user, so order differs
    assert len(set(ids)) == len(ids)
    assert len(ids) > 7


async def test_a_reply_is_the_same_whether_its_sessions_were_served_before() -> None:
    """Completed sessions' elements are built once and copied into later replies: the
    bytes must be those a simulator that never served them builds, and the world's
    forgetting must forget them too."""
    params = {**AUTH, **RANGE, "sessionKey": "", "nResults": "1000", "nextId": "0"}
    operations = ("PartnerCompletedSessions", "PartnerCompletedSessionsEnding")
    clocks = FakeClock(T0), FakeClock(T0)
    warm, cold = (GlanceSimulator(clock, seed=1, rate=1 / 600) for clock in clocks)
    clients: list[Client] = [
        TestClient(TestServer(sim.app(), host="127.0.0.1")) for sim in (warm, cold)
    ]
    for client in clients:
        await client.start_server()
    try:
        for operation in operations:  # every completed session of the range served once
            assert (await clients[0].post(PATH + operation, data=params)).status == 200
        for clock in clocks:
            clock.advance(600)  # sessions in progress then have completed since
        for operation in operations:
            warm_body, cold_body = [
                await (await client.post(PATH + operation, data=params)).read()
                for client in clients
            ]
            assert len(parse_group_sessions(warm_body).sessions) > 7
            assert warm_body == cold_body
    finally:
        for client in clients:
            await client.close()
    kept = len(warm._completed_xml)
    clocks[0].advance(100 * 86400)  # past the retention (93 days), by over 1,000 sessions
    warm.advance()
    assert kept > 7 and len(warm._completed_xml) == 0


async def test_get_is_accepted_too(http: Http) -> None:
    client, _, _ = http
    reply = await client.get(
        PATH + "PartnerUserSessions",
        params={**AUTH, **RANGE, "partnerUserId": "Nobody", "status": "A", "sessionKey": ""},
    )
    assert reply.status == 200
    assert parse_user_sessions(await reply.read()).valid_user is False


async def test_faults_are_installed(http: Http) -> None:
    client, sim, _ = http
    sim.faults.inject("http_503", 1)
    reply = await client.post(PATH + "PartnerActiveSessions", data=AUTH)
    assert reply.status == 503
    reply = await client.post(PATH + "PartnerActiveSessions", data=AUTH)
    assert reply.status == 200


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2012-12-01T16:08:00Z", "2012-12-01T16:08:00+00:00"),
        ("2012-12-01T16:08:00-5:00", "2012-12-01T21:08:00+00:00"),
        ("2012-12-01T16:08:00+0130", "2012-12-01T14:38:00+00:00"),
        ("2012-12-01T16:00:00", "2012-12-01T21:00:00+00:00"),  # no zone: US East (EST)
        ("2012-07-01T16:00:00", "2012-07-01T20:00:00+00:00"),  # ... or EDT in summer
        ("2012-12-01", "2012-12-01T05:00:00+00:00"),  # midnight, East Coast time
    ],
)
def test_dates_follow_the_web_services_conventions(text: str, iso: str) -> None:
    assert parse_glance_date(text) == datetime.fromisoformat(iso).timestamp()


def test_demo_accounts() -> None:
    sim = GlanceSimulator(FakeClock(T0))
    (account,) = sim.demo_accounts("http://127.0.0.1:9999")
    assert account == {
        "name": "demo-glance",
        "base_url": "http://127.0.0.1:9999",
        "partner_id": DEMO_PARTNER_ID,
        "api_key": DEMO_API_KEY,
        "users": ["JDemo", "ASmith"],
        "interval": "5s",
        "lookback": "1h",
    }
