from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioresponses import aioresponses
from yarl import URL

from exporter.clock import FakeClock
from exporter.errors import UpstreamError
from exporter.http import Upstream, new_client_session
from exporter.selfmetrics import SelfMetrics
from exporter.vendors.rescue.client import RescueClient, UnknownNodeError
from exporter.vendors.rescue.config import RescueAccount

from ..mocking import mocked
from .harness import account, failures, upstream

BASE = "https://secure.logmeinrescue.com"
GET = f"{BASE}/API/getSession.aspx"
LOGIN = f"{BASE}/API/login.aspx"
TABLE = "OK\r\n\r\nID|Status|Waiting Time|\r\n17|Waiting|4|\r\n"
COOKIE = "ASP.NET_SessionId=abc123; path=/; HttpOnly"
LOGIN_FIELDS: dict[str, Any] = {"auth_code": None, "email": "ops@example.com",
                                "password": "pw-secret"}


class Env:
    def __init__(self, mock: aioresponses, up: Upstream, metrics: SelfMetrics,
                 clock: FakeClock) -> None:
        self.mock, self.up, self.metrics, self.clock = mock, up, metrics, clock

    def post(self, url: str, **kwargs: Any) -> None:
        self.mock.post(url, **kwargs)

    def calls(self, url: str) -> list[Any]:
        return list(self.mock.requests.get(("POST", URL(url)), []))

    def client(self, acc: RescueAccount | None = None) -> RescueClient:
        return RescueClient(acc or account(), self.clock)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock()
    metrics = SelfMetrics()
    session = new_client_session()
    with mocked() as mock:
        yield Env(mock, upstream(session, metrics, clock), metrics, clock)
    await session.close()


async def test_auth_code_goes_in_the_post_body(env: Env) -> None:
    env.post(GET, body=TABLE)
    acc = account()
    result = await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert [s.id for s in result.sessions] == ["17"]
    (call,) = env.calls(GET)
    assert call.kwargs["data"] == {"node": "337366", "noderef": "NODE", "authcode": "code-123"}
    assert call.kwargs["params"] is None
    assert "Cookie" not in (call.kwargs["headers"] or {})
    assert not env.calls(LOGIN)


@pytest.mark.parametrize("version,endpoint", [(1, "getSession.aspx"),
                                              (2, "getSession_v2.aspx"),
                                              (3, "getSession_v3.aspx")])
async def test_api_version_picks_the_endpoint(env: Env, version: int, endpoint: str) -> None:
    url = f"{BASE}/API/{endpoint}"
    env.post(url, body=TABLE)
    acc = account(api_version=version, nodes=[{"id": 9, "ref": "CHANNEL"}])
    await env.client(acc).get_sessions(env.up, acc.nodes[0])
    (call,) = env.calls(url)
    assert call.kwargs["data"]["noderef"] == "CHANNEL"


async def test_login_then_cookie(env: Env) -> None:
    env.post(LOGIN, body="OK", headers={"Set-Cookie": COOKIE})
    env.post(GET, body=TABLE, repeat=True)
    acc = account(**LOGIN_FIELDS)
    client = env.client(acc)
    await client.get_sessions(env.up, acc.nodes[0])
    env.clock.advance(60)
    await client.get_sessions(env.up, acc.nodes[0])
    (login,) = env.calls(LOGIN)
    assert login.kwargs["data"] == {"email": "ops@example.com", "pwd": "pw-secret"}
    gets = env.calls(GET)
    assert len(gets) == 2
    for call in gets:
        assert call.kwargs["headers"]["Cookie"] == "ASP.NET_SessionId=abc123"
        assert "authcode" not in call.kwargs["data"]


async def test_idle_cookie_is_replaced_before_it_expires(env: Env) -> None:
    env.post(LOGIN, body="OK", headers={"Set-Cookie": COOKIE}, repeat=True)
    env.post(GET, body=TABLE, repeat=True)
    acc = account(**LOGIN_FIELDS)
    client = env.client(acc)
    await client.get_sessions(env.up, acc.nodes[0])
    env.clock.advance(19 * 60 + 30)
    await client.get_sessions(env.up, acc.nodes[0])
    assert len(env.calls(LOGIN)) == 2 and len(env.calls(GET)) == 2


async def test_notloggedin_logs_in_once_and_retries_once(env: Env) -> None:
    env.post(LOGIN, body="OK", headers={"Set-Cookie": COOKIE}, repeat=True)
    env.post(GET, body=TABLE)
    env.post(GET, body="NOTLOGGEDIN")
    env.post(GET, body=TABLE)
    acc = account(**LOGIN_FIELDS)
    client = env.client(acc)
    await client.get_sessions(env.up, acc.nodes[0])
    result = await client.get_sessions(env.up, acc.nodes[0])
    assert result.sessions
    assert len(env.calls(LOGIN)) == 2 and len(env.calls(GET)) == 3


async def test_notloggedin_twice_is_an_auth_failure_not_a_loop(env: Env) -> None:
    env.post(LOGIN, body="OK", headers={"Set-Cookie": COOKIE}, repeat=True)
    env.post(GET, body=TABLE)
    env.post(GET, body="NOTLOGGEDIN", repeat=True)
    acc = account(**LOGIN_FIELDS)
    client = env.client(acc)
    await client.get_sessions(env.up, acc.nodes[0])
    with pytest.raises(UpstreamError) as info:
        await client.get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == "auth"
    assert len(env.calls(LOGIN)) == 2 and len(env.calls(GET)) == 3
    assert failures(env.metrics) == {("getSession", "auth"): 1}


async def test_notloggedin_right_after_login_does_not_log_in_again(env: Env) -> None:
    env.post(LOGIN, body="OK", headers={"Set-Cookie": COOKIE}, repeat=True)
    env.post(GET, body="NOTLOGGEDIN", repeat=True)
    acc = account(**LOGIN_FIELDS)
    with pytest.raises(UpstreamError, match="auth"):
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert len(env.calls(LOGIN)) == 1 and len(env.calls(GET)) == 1


async def test_limitreached_backs_off_for_three_minutes(env: Env) -> None:
    env.post(LOGIN, body="LIMITREACHED")
    env.post(LOGIN, body="OK", headers={"Set-Cookie": COOKIE})
    env.post(GET, body=TABLE)
    acc = account(**LOGIN_FIELDS)
    client = env.client(acc)
    with pytest.raises(UpstreamError) as info:
        await client.get_sessions(env.up, acc.nodes[0])
    assert (info.value.reason, info.value.retry_after) == ("rate_limited", 180.0)
    env.clock.advance(170)
    with pytest.raises(UpstreamError) as info:
        await client.get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == "rate_limited"
    assert info.value.retry_after == pytest.approx(10.0)
    assert len(env.calls(LOGIN)) == 1  # the second attempt never reached the vendor
    env.clock.advance(10)
    await client.get_sessions(env.up, acc.nodes[0])
    assert len(env.calls(LOGIN)) == 2


@pytest.mark.parametrize("body,reason", [("INVALID", "auth"), ("ERROR", "vendor_error"),
                                         ("<html>", "parse")])
async def test_login_failures(env: Env, body: str, reason: str) -> None:
    env.post(LOGIN, body=body)
    acc = account(**LOGIN_FIELDS)
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == reason
    assert "pw-secret" not in str(info.value)
    assert not env.calls(GET)


async def test_login_ok_without_cookie(env: Env) -> None:
    env.post(LOGIN, body="OK")
    acc = account(**LOGIN_FIELDS)
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == "vendor_error"


@pytest.mark.parametrize("code,reason", [
    ("INVALID_SECRETAUTHCODE", "auth"), ("USER_DELETED_OR_DISABLED", "auth"),
    ("NOTLOGGEDIN", "auth"), ("ERROR", "vendor_error"), ("INVALIDPARAM_NODE", "vendor_error"),
])
async def test_get_session_codes(env: Env, code: str, reason: str) -> None:
    env.post(GET, body=f"{code}\r\n")
    acc = account()
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == reason
    assert isinstance(info.value, UnknownNodeError) == (code == "INVALIDPARAM_NODE")
    assert "code-123" not in str(info.value)
    assert failures(env.metrics) == {("getSession", reason): 1}
    assert len(env.calls(GET)) == 1


async def test_http_errors_map_to_core_reasons(env: Env) -> None:
    env.post(GET, status=503)
    acc = account()
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == "http_5xx"


async def test_a_service_refusing_post_is_asked_with_get_from_then_on(env: Env) -> None:
    env.post(GET, status=405, body="Method Not Allowed")
    env.mock.get(f"{GET}?authcode=code-123&node=337366&noderef=NODE", body=TABLE, repeat=True)
    acc = account()
    client = env.client(acc)
    assert [s.id for s in (await client.get_sessions(env.up, acc.nodes[0])).sessions] == ["17"]
    await client.get_sessions(env.up, acc.nodes[0])
    assert len(env.calls(GET)) == 1  # POST tried once, then GET only
    assert client.use_get
    assert not env.metrics.failures.values  # a refused method is no failure
