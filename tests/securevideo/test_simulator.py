from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from exporter.simulators.clock import FakeClock
from exporter.simulators.securevideo import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    SecureVideoSimulator,
)
from exporter.vendors.securevideo.parser import parse_history

from .harness import served

START = datetime(2026, 2, 27, 21, tzinfo=UTC).timestamp()
AUTH = {
    "Authorization": "Basic "
    + base64.b64encode(f"{DEMO_API_KEY}:{DEMO_API_SECRET}".encode()).decode()
}
DOC_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?")
DOC_FIELDS = {
    "SessionId",
    "ScheduleTs",
    "BillableTs",
    "DurationMinutes",
    "WaitTime",
    "BillableStatusCd",
    "ScheduleType",
    "UserId",
    "UsageDescription",
    "ScheduledByUserId",
    "ReportableMeetingProvider",
}


async def get(
    url: str,
    path: str = "/history",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    **params: str,
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            url + path,
            params={**(query or {}), **params},
            headers=AUTH if headers is None else headers,
        ) as r,
    ):
        return r.status, json.loads(await r.read())


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"demo-securevideo-id:nope").decode()},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic " + base64.b64encode(f"x:{DEMO_API_SECRET}".encode()).decode()},
    ],
)
async def test_bad_credentials_get_a_401_json_error(headers: dict[str, str]) -> None:
    sim = SecureVideoSimulator(FakeClock(START), 1)
    async with served(sim) as url:
        status, body = await get(url, headers=headers)
    assert status == 401
    assert body == {
        "Message": "Authorization has been denied for this request.",
        "MessageDetail": None,
    }


@pytest.mark.parametrize(
    "params",
    [
        {"startDt": "2026-2-1"},
        {"endDt": "yesterday"},
        {"month": "2026-13-01"},
        {"month": "20260201"},
    ],
)
async def test_malformed_dates_get_a_400_json_error(params: dict[str, str]) -> None:
    sim = SecureVideoSimulator(FakeClock(START), 1)
    async with served(sim) as url:
        status, body = await get(url, query=params)
    assert status == 400
    assert body["Message"] == "The request is invalid."
    assert "yyyy-mm-dd" in body["MessageDetail"]


async def test_non_numeric_host_id_is_404() -> None:
    sim = SecureVideoSimulator(FakeClock(START), 1)
    async with served(sim) as url:
        status, body = await get(url, "/history/abc")
    assert status == 404 and "Message" in body


async def test_replies_have_the_doc_shape_and_parse() -> None:
    clock = FakeClock(START)
    sim = SecureVideoSimulator(clock, 1)
    async with served(sim) as url:
        status, records = await get(url)
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + "/history", headers=AUTH) as r,
        ):
            raw = await r.read()
            content_type = r.headers["Content-Type"]
    assert status == 200 and content_type == "application/json; charset=utf-8"
    assert len(records) > 200
    digits = set()
    for record in records:
        assert set(record) == DOC_FIELDS
        for name in ("ScheduleTs", "BillableTs"):
            if record[name] is not None:
                assert DOC_TIMESTAMP.fullmatch(record[name]), record[name]
                digits.add(len(record[name].partition(".")[2]))
        if record["DurationMinutes"] is None:
            assert record["WaitTime"] is None
        else:
            assert 0 <= record["WaitTime"] <= record["DurationMinutes"]
        if record["ReportableMeetingProvider"] == "VSee" and record["BillableTs"]:
            assert record["WaitTime"] in (0, None)
        if record["BillableTs"] is None:
            assert record["BillableStatusCd"] is None and record["ScheduleType"] is None
            if record["DurationMinutes"] is not None:
                assert record["WaitTime"] == record["DurationMinutes"]
        if record["ScheduleType"] in ("Scheduled", "Rescheduled"):
            assert record["ScheduleTs"].endswith((":00:00", ":15:00", ":30:00", ":45:00"))
    assert digits >= {0, 1, 2, 3}  # variable fractional digits, as in the doc
    page = parse_history(raw)
    assert page.skipped == 0 and len(page.records) == len(records)
    kinds = {
        (r["BillableStatusCd"], r["ScheduleType"], r["ReportableMeetingProvider"]) for r in records
    }
    assert {k[0] for k in kinds} == {None, "BILL", "SVCO", "DUPL", "COMP"}
    assert {k[1] for k in kinds} == {None, "OnDemand", "Scheduled", "Rescheduled"}
    assert {k[2] for k in kinds} == {"Zoom", "One-Click", "VSee"}


async def test_date_filters_month_precedence_host_and_participant() -> None:
    clock = FakeClock(START)
    sim = SecureVideoSimulator(clock, 2, history=3 * 86400)
    t_ms = int(clock.time() * 1000)

    def billable_day(r: dict[str, Any]) -> str:
        return str(r["BillableTs"])[:10]

    async with served(sim) as url:
        _, everything = await get(url)
        _, day = await get(url, startDt="2026-02-26", endDt="2026-02-26")
        _, open_ended = await get(url, startDt="2026-02-26")
        _, month_wins = await get(url, month="2026-02-01", startDt="2026-02-27", endDt="2026-02-27")
        _, month_mid = await get(url, month="2026-02-15")
        _, january = await get(url, month="2026-01-01")
        _, host = await get(url, "/history/4", startdt="2026-02-26", ENDDT="2026-02-27")
        someone = sim.world.sessions[5].participants[0]
        _, by_email = await get(url, participantEmail=someone.upper())
    assert any(r["BillableTs"] is None for r in everything)
    assert day and {billable_day(r) for r in day} == {"2026-02-26"}
    assert {billable_day(r) for r in open_ended} == {"2026-02-26", "2026-02-27"}
    assert all(r["BillableTs"] is not None for r in open_ended)
    assert len(month_wins) == len(month_mid) > len(day)
    assert {billable_day(r)[:7] for r in month_wins} == {"2026-02"}
    assert january == []
    assert host and {r["UserId"] for r in host} == {4}
    expected = {s.session_id for s in sim.world.visible() if someone in s.participants}
    assert {r["SessionId"] for r in by_email} == expected
    assert all(s.created_ms <= t_ms for s in sim.world.visible())


def test_a_day_query_is_that_days_connected_sessions_but_its_last_second() -> None:
    clock = FakeClock(START)
    sim = SecureVideoSimulator(clock, 2)
    t_ms = int(clock.time() * 1000)
    day = datetime(2026, 2, 27, tzinfo=UTC).date()
    got = {r["SessionId"] for r in sim.world.query(clock.time(), start=day, end=day)}
    low = int(datetime(2026, 2, 27, tzinfo=UTC).timestamp() * 1000)
    expected = {
        s.session_id
        for s in sim.world.visible()
        if s.billable_ms is not None
        and s.connected(t_ms)
        and low <= s.billable_ms < low + 86_399_000
    }
    assert got == expected and len(got) > 50


def test_world_is_a_function_of_seed_and_time_not_of_polling() -> None:
    polled_clock, quiet_clock = FakeClock(START), FakeClock(START)
    polled = SecureVideoSimulator(polled_clock, 9)
    quiet = SecureVideoSimulator(quiet_clock, 9)
    for _ in range(50):
        polled_clock.advance(37)
        polled.world.advance_to(polled_clock.time())
        polled.world.query(polled_clock.time())
    quiet_clock.set(polled_clock.time())
    quiet.world.advance_to(quiet_clock.time())
    t = polled_clock.time()
    assert polled.world.query(t) == quiet.world.query(t)
    other = SecureVideoSimulator(FakeClock(START), 10)
    assert other.world.query(START) != SecureVideoSimulator(FakeClock(START), 9).world.query(START)


def test_population_moves_reconnects_grow_durations_and_statuses_change() -> None:
    clock = FakeClock(START)
    sim = SecureVideoSimulator(clock, 4, history=86400)
    sessions = list(sim.world.visible())
    before = len(sessions)
    clock.advance(600)
    sim.world.advance_to(clock.time())
    assert len(list(sim.world.visible())) > before + 10

    grown = [s for s in sessions if s.reconnect is not None and not s.duration_lost]
    assert grown
    s = grown[0]
    assert s.reconnect is not None
    between, during, after = s.reconnect[0] - 1, s.reconnect[0], s.reconnect[1]
    assert s.duration_at(between) == s.first_minutes
    assert s.duration_at(during) is None  # the host is connected again
    assert s.duration_at(after) == s.first_minutes + s.reconnect_minutes > s.first_minutes

    changed = {s.status_change[1] for s in sessions if s.status_change is not None}
    assert changed == {"COMP", "DUPL"}
    comped = next(s for s in sessions if s.status_change and s.status_change[1] == "COMP")
    assert comped.status_change is not None
    assert comped.status_at(comped.status_change[0] - 1) == "BILL"
    assert comped.status_at(comped.status_change[0]) == "COMP"
    assert any(s.status == "SVCO" for s in sessions)
    assert any(s.billable_ms is None for s in sessions)
    assert any(s.duration_lost for s in sessions)


def test_demo_accounts_parse_as_config() -> None:
    from exporter.config import parse_config
    from exporter.vendors.securevideo import VENDOR

    sim = SecureVideoSimulator(FakeClock(START), 1)
    entries = sim.demo_accounts("http://127.0.0.1:9999")
    config = parse_config({"securevideo": entries}, {"securevideo": VENDOR})
    (acct,) = config.accounts
    assert acct.common.name == "demo-clinic" and acct.common.interval == 5.0
    assert acct.common.base_url == "http://127.0.0.1:9999"
