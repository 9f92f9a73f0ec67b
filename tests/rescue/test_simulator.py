from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import parse_config
from exporter.errors import ParseError
from exporter.simulators.clock import FakeClock
from exporter.simulators.rescue import (
    CHANNELS,
    COLUMNS,
    GROUP_ID,
    PORTUGUESE,
    TECHNICIANS,
    RescueSimulator,
)
from exporter.vendors.rescue import VENDOR
from exporter.vendors.rescue.config import RescueAccount
from exporter.vendors.rescue.parser import parse_sessions, parse_soap_sessions
from exporter.vendors.rescue.statuses import STATUSES

from .harness import histogram, rig, samples


async def post(
    sim: RescueSimulator, path: str, data: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[str, Any]:
    async with TestClient(TestServer(sim.app())) as client:
        response = await client.post(path, data=data, headers=headers or {})
        return await response.text(), response


async def test_world_is_populated_at_construction_and_deterministic() -> None:
    a, b = RescueSimulator(FakeClock(), 4), RescueSimulator(FakeClock(), 4)
    assert a.status_counts()["Waiting"] > 0 and a.status_counts()["Active"] > 0
    body_a, _ = await post(a, "/API/getSession.aspx", {"authcode": a.auth_code, "node": "337366"})
    body_b, _ = await post(b, "/API/getSession.aspx", {"authcode": b.auth_code, "node": "337366"})
    assert body_a == body_b
    c = RescueSimulator(FakeClock(), 5)
    assert c.status_counts() != a.status_counts() or c.auth_code != a.auth_code


async def test_real_capture_shape_and_columns_per_version() -> None:
    sim = RescueSimulator(FakeClock(), 1)
    for version, path in (
        (1, "getSession.aspx"),
        (2, "getSession_v2.aspx"),
        (3, "getSession_v3.aspx"),
    ):
        body, response = await post(sim, f"/API/{path}", {"authcode": sim.auth_code})
        assert response.content_type == "text/plain"
        # The captures' layout: LF line ends, each line ending with `|`.
        assert body.startswith("OK\n\n" + "|".join(COLUMNS[version]) + "|\n")
        assert body.endswith("|\n") and "\r" not in body
        parsed = parse_sessions(body.encode())
        assert parsed.columns == COLUMNS[version]
        assert {s.id for s in parsed.sessions} == {str(s.id) for s in sim.sessions()}
        assert len(parsed.sessions) == len(sim.sessions()) + sim.extra_technician_rows()


async def test_node_membership() -> None:
    sim = RescueSimulator(FakeClock(), 2)
    everyone = {s.id for s in sim.sessions()}
    per_channel = [{s.id for s in sim.sessions(c.id, "CHANNEL")} for c in CHANNELS]
    assert set().union(*per_channel) <= everyone
    assert sum(map(len, per_channel)) == len([s for s in sim.sessions() if s.channel])
    tech = TECHNICIANS[0]
    assert all(s.technician == tech for s in sim.sessions(tech.id, "NODE"))


async def test_error_codes_on_demand() -> None:
    sim = RescueSimulator(FakeClock(), 1)
    for code in (
        "ERROR",
        "NOTLOGGEDIN",
        "INVALIDPARAM_NODE",
        "INVALID_SECRETAUTHCODE",
        "USER_DELETED_OR_DISABLED",
    ):
        sim.fail_next(code)
        body, _ = await post(sim, "/API/getSession.aspx", {"authcode": sim.auth_code})
        assert body == code
    body, _ = await post(sim, "/API/getSession.aspx", {"authcode": sim.auth_code, "node": "5"})
    assert body == "INVALIDPARAM_NODE"
    body, _ = await post(sim, "/API/getSession.aspx", {"authcode": "nope"})
    assert body == "INVALID_SECRETAUTHCODE"
    body, _ = await post(sim, "/API/getSession.aspx", {"node": str(GROUP_ID)})
    assert body == "NOTLOGGEDIN"


async def test_login_cookie_idle_expiry_and_limit() -> None:
    clock = FakeClock()
    sim = RescueSimulator(clock, 1)
    creds = {"email": sim.email, "pwd": sim.password}
    body, response = await post(sim, "/API/login.aspx", creds)
    assert body == "OK"
    cookie = response.cookies["ASP.NET_SessionId"].value
    headers = {"Cookie": f"ASP.NET_SessionId={cookie}"}
    clock.advance(19 * 60)
    body, _ = await post(sim, "/API/getSession.aspx", {}, headers)
    assert body.startswith("OK")
    clock.advance(20 * 60)
    body, _ = await post(sim, "/API/getSession.aspx", {}, headers)
    assert body == "NOTLOGGEDIN"
    assert (await post(sim, "/API/login.aspx", {**creds, "pwd": "x"}))[0] == "INVALID"
    for _ in range(9):
        assert (await post(sim, "/API/login.aspx", creds))[0] == "OK"
    assert (await post(sim, "/API/login.aspx", creds))[0] == "LIMITREACHED"
    clock.advance(181)
    assert (await post(sim, "/API/login.aspx", creds))[0] == "OK"


async def test_request_auth_code_shape() -> None:
    sim = RescueSimulator(FakeClock(), 1)
    body, _ = await post(
        sim, "/API/requestAuthCode.aspx", {"email": sim.email, "pwd": sim.password}
    )
    assert body == f"OK\r\nAUTHCODE: {sim.auth_code}\r\n"
    assert (await post(sim, "/API/requestAuthCode.aspx", {"email": sim.email}))[0] == "INVALID"


async def test_portuguese_localisation() -> None:
    sim = RescueSimulator(FakeClock(), 1)
    sim.language = "pt"
    body, _ = await post(sim, "/API/getSession.aspx", {"authcode": sim.auth_code})
    statuses = {s.status for s in parse_sessions(body.encode()).sessions}
    assert "Aguardando" in statuses
    assert statuses <= set(PORTUGUESE.values()) | set(STATUSES)
    v3, _ = await post(sim, "/API/getSession_v3.aspx", {"authcode": sim.auth_code})
    assert "|sim||\n" in v3  # Is Lead Technician, as in the pt-BR capture
    assert PORTUGUESE["Active"] == "Ativas"  # the captured string, not a guess


SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


@pytest.mark.parametrize("api", ["soap", "soap11"])
async def test_soap_answers_in_the_envelope_it_was_asked_in(api: str) -> None:
    from exporter.vendors.rescue.client import soap_request

    sim = RescueSimulator(FakeClock(), 1)
    sim.language = "pt"
    body, content_type = soap_request(
        "getSession_V3",
        {"iNodeID": str(GROUP_ID), "eNodeRef": "NODE", "sAuthCode": sim.auth_code},
        api,
    )
    async with TestClient(TestServer(sim.app())) as client:
        response = await client.post(
            "/API/API.asmx", data=body, headers={"Content-Type": content_type}
        )
        reply = await response.read()
    namespace = SOAP11 if api == "soap11" else SOAP12
    assert reply.count(namespace.encode()) == 1
    parsed = parse_soap_sessions(reply)
    assert {s.id for s in parsed.sessions} == {str(s.id) for s in sim.sessions()}
    assert b"<sStatus>Ativas</sStatus>" in reply or b"<sStatus>Aguardando</sStatus>" in reply
    assert b"<sEntry/>" in reply or b"<sCustomField2/>" in reply  # empty as self-closing


async def test_soap_errors_and_faults() -> None:
    from exporter.vendors.rescue.client import soap_request

    sim = RescueSimulator(FakeClock(), 1)
    async with TestClient(TestServer(sim.app())) as client:

        async def ask(params: dict[str, str]) -> bytes:
            body, content_type = soap_request("getSession_V3", params)
            response = await client.post(
                "/API/API.asmx", data=body, headers={"Content-Type": content_type}
            )
            return await response.read()

        assert b"getSession_Invalid_SecretAuthCode" in await ask(
            {"iNodeID": "1", "eNodeRef": "NODE", "sAuthCode": "nope"}
        )
        assert b"getSession_InvalidParam_NodeID" in await ask(
            {"iNodeID": "5", "eNodeRef": "NODE", "sAuthCode": sim.auth_code}
        )
        assert b"getSession_NotLoggedIn" in await ask(
            {"iNodeID": str(GROUP_ID), "eNodeRef": "NODE", "sAuthCode": ""}
        )
        response = await client.post("/API/API.asmx", data=b"<not-soap/>")
        assert response.status == 500 and b"Fault" in await response.read()
        sim.faults.inject("malformed")
        with pytest.raises(ParseError):
            parse_soap_sessions(
                await ask(
                    {"iNodeID": str(GROUP_ID), "eNodeRef": "NODE", "sAuthCode": sim.auth_code}
                )
            )


async def test_faults_middleware_installed() -> None:
    sim = RescueSimulator(FakeClock(), 1)
    sim.faults.inject("http_503")
    _, response = await post(sim, "/API/getSession.aspx", {"authcode": sim.auth_code})
    assert response.status == 503


async def test_demo_account_parses_and_every_metric_moves_within_a_minute() -> None:
    async with rig() as r:
        (entry,) = r.sim.demo_accounts(r.base_url)
        assert entry["interval"] == "5s" and entry["name"] == "demo-helpdesk"
        config = parse_config({"rescue": [entry]}, {"rescue": VENDOR})
        acc = config.accounts[0]
        assert isinstance(acc, RescueAccount)
        assert {n.ref for n in acc.nodes} == {"NODE", "CHANNEL"}
        fields = {k: v for k, v in entry.items() if k not in ("name", "base_url", "interval")}
        collector = r.collector(**fields)
        for i in range(12):
            if i:
                r.clock.advance(5)
            await collector.collect(r.upstream)
        names = {name for (name, _), value in samples(collector).items() if value > 0}
        assert {
            "rescue_sessions",
            "rescue_session_status_oldest_change_timestamp_seconds",
            "rescue_session_wait_seconds_count",
        } <= names
        assert histogram(collector, str(GROUP_ID))[0] > 0
