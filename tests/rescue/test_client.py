from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioresponses import aioresponses
from multidict import CIMultiDict
from yarl import URL

from exporter import scrub
from exporter.errors import UpstreamError
from exporter.http import Upstream, new_client_session
from exporter.logs import get_logger
from exporter.selfmetrics import SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.vendors.base import CollectorContext
from exporter.vendors.rescue.client import RescueClient, UnknownNodeError
from exporter.vendors.rescue.config import RescueAccount

from ..mocking import form_sent, mocked
from .harness import account, failures, upstream


def ignore_rejects(reason: str, count: int) -> None:
    """Rejected records are not what these tests look at."""


BASE = "https://secure.logmeinrescue.com"
GET = f"{BASE}/API/getSession.aspx"
LOGIN = f"{BASE}/API/login.aspx"
TABLE = "OK\r\n\r\nID|Status|Waiting Time|\r\n17|Waiting|4|\r\n"
COOKIE = "ASP.NET_SessionId=abc123; path=/; HttpOnly"
LOGIN_FIELDS: dict[str, Any] = {
    "auth_code": None,
    "email": "ops@example.com",
    "password": "pw-secret",
}


def context(clock: FakeClock, **limits: int) -> CollectorContext:
    return CollectorContext(
        clock=clock,
        log=get_logger(test="rescue"),
        label_value_limit=50,
        reject=ignore_rejects,
        started_at=clock.time(),
        **limits,
    )


class Env:
    def __init__(
        self, mock: aioresponses, up: Upstream, metrics: SelfMetrics, clock: FakeClock
    ) -> None:
        self.mock, self.up, self.metrics, self.clock = mock, up, metrics, clock

    def post(self, url: str, **kwargs: Any) -> None:
        self.mock.post(url, **kwargs)

    def calls(self, url: str) -> list[Any]:
        return list(self.mock.requests.get(("POST", URL(url)), []))

    def client(self, acc: RescueAccount | None = None) -> RescueClient:
        return RescueClient(acc or account(), context(self.clock))


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
    assert form_sent(call) == {"node": "337366", "noderef": "NODE", "authcode": "code-123"}
    assert call.kwargs["params"] is None
    assert "Cookie" not in (call.kwargs["headers"] or {})
    assert not env.calls(LOGIN)


@pytest.mark.parametrize(
    ("version", "endpoint"),
    [(1, "getSession.aspx"), (2, "getSession_v2.aspx"), (3, "getSession_v3.aspx")],
)
async def test_api_version_picks_the_endpoint(env: Env, version: int, endpoint: str) -> None:
    url = f"{BASE}/API/{endpoint}"
    env.post(url, body=TABLE)
    acc = account(api_version=version, nodes=[{"id": 9, "ref": "CHANNEL"}])
    await env.client(acc).get_sessions(env.up, acc.nodes[0])
    (call,) = env.calls(url)
    assert form_sent(call)["noderef"] == "CHANNEL"


async def test_login_then_cookie(env: Env) -> None:
    env.post(LOGIN, body="OK", headers={"Set-Cookie": COOKIE})
    env.post(GET, body=TABLE, repeat=True)
    acc = account(**LOGIN_FIELDS)
    client = env.client(acc)
    await client.get_sessions(env.up, acc.nodes[0])
    env.clock.advance(60)
    await client.get_sessions(env.up, acc.nodes[0])
    (login,) = env.calls(LOGIN)
    assert form_sent(login) == {"email": "ops@example.com", "pwd": "pw-secret"}
    gets = env.calls(GET)
    assert len(gets) == 2
    for call in gets:
        assert call.kwargs["headers"]["Cookie"] == "ASP.NET_SessionId=abc123"
        assert "authcode" not in form_sent(call)


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


@pytest.mark.parametrize(
    ("body", "reason"), [("INVALID", "auth"), ("ERROR", "vendor_error"), ("<html>", "parse")]
)
async def test_login_failures(env: Env, body: str, reason: str) -> None:
    env.post(LOGIN, body=body)
    acc = account(**LOGIN_FIELDS)
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == reason
    assert "pw-secret" not in str(info.value)
    assert not env.calls(GET)


async def test_the_login_cookie_is_scrubbed_like_any_credential(env: Env) -> None:
    # Every vendor string passes the scrubber before a log, an error or a label; the
    # cookie is a credential for as long as it lives, so an echo of it is redacted.
    env.post(LOGIN, body="OK", headers={"Set-Cookie": "ASP.NET_SessionId=ck-7f3a9e21; path=/"})
    env.post(GET, body=TABLE)
    acc = account(**LOGIN_FIELDS)
    await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert "ck-7f3a9e21" not in scrub.scrub("technician ASP.NET_SessionId=ck-7f3a9e21")


async def test_login_ok_without_cookie(env: Env) -> None:
    env.post(LOGIN, body="OK")
    acc = account(**LOGIN_FIELDS)
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == "vendor_error"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("INVALID_SECRETAUTHCODE", "auth"),
        ("USER_DELETED_OR_DISABLED", "auth"),
        ("NOTLOGGEDIN", "auth"),
        ("ERROR", "vendor_error"),
        ("INVALIDPARAM_NODE", "vendor_error"),
    ],
)
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


async def test_a_405_without_opt_in_is_a_failure_with_a_hint_and_no_get(env: Env) -> None:
    env.post(GET, status=405, body="Method Not Allowed")
    acc = account()
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == "http_4xx"
    assert "allow_credentials_in_url" in str(info.value)
    assert not [k for k in env.mock.requests if k[0] == "GET"]  # the code never left in a URL
    assert failures(env.metrics) == {("getSession", "http_4xx"): 1}


async def test_with_opt_in_a_405_falls_back_to_get_for_that_request_only(env: Env) -> None:
    env.post(GET, status=405, body="Method Not Allowed")
    env.post(GET, body=TABLE)
    env.mock.get(f"{GET}?authcode=code-123&node=337366&noderef=NODE", body=TABLE, repeat=True)
    acc = account(allow_credentials_in_url=True)
    client = env.client(acc)
    assert [s.id for s in (await client.get_sessions(env.up, acc.nodes[0])).sessions] == ["17"]
    await client.get_sessions(env.up, acc.nodes[0])
    assert len(env.calls(GET)) == 2  # the second request is a POST again: nothing sticks
    gets = env.mock.requests[("GET", URL(f"{GET}?authcode=code-123&node=337366&noderef=NODE"))]
    assert len(gets) == 1
    assert client.get_fallbacks == {"getSession": 1}
    assert not env.metrics.failures.values  # a refused method is no failure


async def test_a_cookie_request_carries_no_credential_so_it_may_fall_back(env: Env) -> None:
    env.post(LOGIN, body="OK", headers={"Set-Cookie": COOKIE})
    env.post(GET, status=405)
    env.mock.get(f"{GET}?node=337366&noderef=NODE", body=TABLE)
    acc = account(**LOGIN_FIELDS)
    client = env.client(acc)
    await client.get_sessions(env.up, acc.nodes[0])
    assert client.get_fallbacks == {"getSession": 1}
    (get,) = env.mock.requests[("GET", URL(f"{GET}?node=337366&noderef=NODE"))]
    assert get.kwargs["headers"]["Cookie"] == "ASP.NET_SessionId=abc123"


async def test_a_405_to_login_never_puts_the_password_in_a_url(env: Env) -> None:
    env.post(LOGIN, status=405)
    acc = account(**LOGIN_FIELDS)
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert (info.value.operation, info.value.reason) == ("login", "http_4xx")
    assert not [k for k in env.mock.requests if k[0] == "GET"]


async def test_too_many_rows_is_limit_exceeded(env: Env) -> None:
    rows = "".join(f"{i}|Waiting|4|\r\n" for i in range(1, 12))
    env.post(GET, body=f"OK\r\n\r\nID|Status|Waiting Time|\r\n{rows}")
    acc = account()
    client = RescueClient(acc, context(env.clock, max_records_per_reply=10))
    with pytest.raises(UpstreamError) as info:
        await client.get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == "limit_exceeded"
    assert failures(env.metrics) == {("getSession", "limit_exceeded"): 1}


# -- SOAP ---------------------------------------------------------------------------------

SOAP_URL = f"{BASE}/API/API.asmx"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
API_NS = "https://secure.logmeinrescue.com/API/API.asmx"


def soap_reply(result: str = "getSession_OK", sessions: str = "", envelope: str = SOAP12) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{envelope}">'
        f'<soap:Body><getSession_V3Response xmlns="{API_NS}">'
        f"<getSession_V3Result>{result}</getSession_V3Result>"
        f"<aSessions>{sessions}</aSessions></getSession_V3Response></soap:Body>"
        "</soap:Envelope>"
    )


SOAP_SESSION = (
    "<SESSION_V3><iID>17</iID><bStatus>SESSION_WAITING</bStatus>"
    "<sStatus>Aguardando</sStatus><iWaitingTimeInSec>4</iWaitingTimeInSec>"
    "<bIsLead>true</bIsLead></SESSION_V3>"
)


async def test_soap12_request_shape(env: Env) -> None:
    env.post(SOAP_URL, body=soap_reply(sessions=SOAP_SESSION))
    acc = account(api="soap", auth_code="a&b<c")
    result = await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert [(s.id, s.status, s.waiting_seconds) for s in result.sessions] == [("17", "Waiting", 4)]
    (call,) = env.calls(SOAP_URL)
    headers = call.kwargs["headers"]
    assert headers["Content-Type"] == (
        f'application/soap+xml; charset=utf-8; action="{API_NS}/getSession_V3"'
    )
    assert "SOAPAction" not in headers
    body = call.kwargs["data"]
    assert isinstance(body, bytes)
    from lxml import etree

    root = etree.fromstring(body)
    assert root.tag == f"{{{SOAP12}}}Envelope"
    soap_body = root.find(f"{{{SOAP12}}}Body")
    assert soap_body is not None
    (op,) = soap_body
    assert op.tag == f"{{{API_NS}}}getSession_V3"
    assert {etree.QName(e).localname: e.text for e in op} == {
        "iNodeID": "337366",
        "eNodeRef": "NODE",
        "sAuthCode": "a&b<c",
    }


async def test_soap11_request_shape_and_reply(env: Env) -> None:
    env.post(SOAP_URL, body=soap_reply(sessions=SOAP_SESSION, envelope=SOAP11))
    acc = account(api="soap11")
    result = await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert [s.status for s in result.sessions] == ["Waiting"]
    (call,) = env.calls(SOAP_URL)
    assert call.kwargs["headers"]["Content-Type"] == "text/xml; charset=utf-8"
    assert call.kwargs["headers"]["SOAPAction"] == f'"{API_NS}/getSession_V3"'
    assert f"{{{SOAP11}}}".strip("{}").encode() in call.kwargs["data"]


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        ("getSession_Error", "vendor_error"),
        ("getSession_Invalid_SecretAuthCode", "auth"),
        ("getSession_User_Deleted_Or_Disabled", "auth"),
        ("getSession_NotLoggedIn", "auth"),
    ],
)
async def test_soap_result_codes_map_like_the_text_ones(env: Env, result: str, reason: str) -> None:
    env.post(SOAP_URL, body=soap_reply(result))
    acc = account(api="soap")
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == reason
    assert failures(env.metrics) == {("getSession", reason): 1}


@pytest.mark.parametrize("api", ["soap", "soap11"])
async def test_a_soap_fault_sent_with_500_says_what_the_service_said(env: Env, api: str) -> None:
    # Found by a probe: SOAP over HTTP sends faults with 500, as ASMX services do, and
    # the message was "HTTP 500" alone; only a fault in a 200 was quoted.
    envelope = SOAP11 if api == "soap11" else SOAP12
    fault = (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{envelope}">'
        "<soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>Server was "
        "unable to process request. ---&gt; Node 337366 is locked</faultstring></soap:Fault>"
        "</soap:Body></soap:Envelope>"
    )
    env.post(SOAP_URL, status=500, body=fault)
    acc = account(api=api)
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == "http_5xx"
    assert info.value.message == (
        "HTTP 500: SOAP fault: Server was unable to process request. ---> Node 337366 is locked"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html><title>Runtime Error</title></html>", "HTTP 500: Runtime Error"),
        ("", "HTTP 500"),
        ("<soap:Envelope", "HTTP 500: <soap:Envelope"),
        ("<x/>" + "x" * 70_000, "HTTP 500: <x/>" + "x" * 196 + "…"),
    ],
)
async def test_a_500_that_is_no_soap_fault_is_quoted_by_its_first_line(
    env: Env, body: str, message: str
) -> None:
    env.post(SOAP_URL, status=500, body=body)
    acc = account(api="soap")
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert (info.value.reason, info.value.message) == ("http_5xx", message)


async def test_a_soap_fault_too_big_to_read_on_the_loop_is_quoted_by_its_first_line(
    env: Env,
) -> None:
    fault = (
        f'<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope xmlns:soap="{SOAP12}">'
        f"<soap:Body><soap:Fault><faultstring>{'x' * 70_000}</faultstring></soap:Fault>"
        "</soap:Body></soap:Envelope>"
    )
    env.post(SOAP_URL, status=500, body=fault)
    acc = account(api="soap")
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert info.value.message == 'HTTP 500: <?xml version="1.0" encoding="utf-8"?>'


async def test_soap_invalid_node_is_the_nodes_fault(env: Env) -> None:
    env.post(SOAP_URL, body=soap_reply("getSession_InvalidParam_NodeID"))
    acc = account(api="soap")
    with pytest.raises(UnknownNodeError):
        await env.client(acc).get_sessions(env.up, acc.nodes[0])


async def test_soap_login_then_cookie_and_relogin_on_notloggedin(env: Env) -> None:
    login_ok = (
        f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body>'
        f'<loginResponse xmlns="{API_NS}"><loginResult>login_OK</loginResult>'
        "</loginResponse></soap:Body></soap:Envelope>"
    )
    env.post(SOAP_URL, body=soap_reply("getSession_NotLoggedIn"))
    env.post(SOAP_URL, body=login_ok, headers={"Set-Cookie": COOKIE})
    env.post(SOAP_URL, body=soap_reply(sessions=SOAP_SESSION))
    acc = account(api="soap", **LOGIN_FIELDS)
    client = env.client(acc)
    client.cookie, client.cookie_used_at = "ASP.NET_SessionId=old", env.clock.time()
    result = await client.get_sessions(env.up, acc.nodes[0])
    assert [s.id for s in result.sessions] == ["17"]
    calls = env.calls(SOAP_URL)
    assert len(calls) == 3 and client.logins == 1
    assert b"<sPassword>pw-secret</sPassword>" in calls[1].kwargs["data"]
    assert b"<sAuthCode></sAuthCode>" in calls[2].kwargs["data"]
    assert calls[0].kwargs["headers"]["Cookie"] == "ASP.NET_SessionId=old"
    assert calls[2].kwargs["headers"]["Cookie"] == "ASP.NET_SessionId=abc123"


def cookies(*set_cookie: str) -> CIMultiDict[str]:
    return CIMultiDict(("Set-Cookie", value) for value in set_cookie)


async def test_a_session_cookie_that_cannot_be_sent_back_is_a_vendor_error(env: Env) -> None:
    # Python's cookie parser turns \012 into a line break; sent back in a header, it
    # raised ValueError in aiohttp, and the account crashed every cycle ("internal").
    env.post(LOGIN, body="OK", headers=cookies('ASP.NET_SessionId="abc\\012Injected: 1"'))
    acc = account(**LOGIN_FIELDS)
    with pytest.raises(UpstreamError) as info:
        await env.client(acc).get_sessions(env.up, acc.nodes[0])
    assert info.value.reason == "vendor_error"
    assert "usable ASP.NET_SessionId cookie" in str(info.value)
    assert not env.calls(GET)


async def test_only_credentials_are_held_as_secrets(env: Env) -> None:
    # Every cookie's value was held: a vendor setting `a=acme` blanked the word "acme"
    # out of every log line and page of every account.
    env.post(
        LOGIN,
        body="OK",
        headers=cookies(
            "ASP.NET_SessionId=sid-5ce1a77b; path=/",
            "lb=Canal-rescue; path=/",
            ".ASPXAUTH=F0rm5-4uth-t1cket; path=/; HttpOnly",
        ),
    )
    env.post(GET, body=TABLE)
    acc = account(**LOGIN_FIELDS)
    await env.client(acc).get_sessions(env.up, acc.nodes[0])
    (get,) = env.calls(GET)
    assert get.kwargs["headers"]["Cookie"] == (
        "ASP.NET_SessionId=sid-5ce1a77b; lb=Canal-rescue; .ASPXAUTH=F0rm5-4uth-t1cket"
    )
    assert scrub.scrub("sid-5ce1a77b") == "<redacted>"
    assert scrub.scrub("F0rm5-4uth-t1cket") == "<redacted>"  # named like a credential
    assert scrub.scrub("channel Canal-rescue") == "channel Canal-rescue"


async def test_a_flood_of_cookies_sends_back_only_what_fits(env: Env) -> None:
    # 100 cookies of 8,000 characters held as secrets froze the loop for 9 s and took
    # 1.5 GB; sent back, they make a header no server takes.
    long = [f"c{i}={'x' * 8000}" for i in range(100)]
    medium = [f"m{i}={'y' * 500}" for i in range(100)]
    env.post(LOGIN, body="OK", headers=cookies(*long, *medium, "ASP.NET_SessionId=sid-9"))
    env.post(GET, body=TABLE)
    acc = account(**LOGIN_FIELDS)
    await env.client(acc).get_sessions(env.up, acc.nodes[0])
    (get,) = env.calls(GET)
    sent = get.kwargs["headers"]["Cookie"]
    assert sent.startswith("ASP.NET_SessionId=sid-9; m0=")
    assert "x" * 100 not in sent
    assert len(sent) <= 8192


def test_a_cookie_of_the_longest_length_is_kept() -> None:
    from multidict import CIMultiDictProxy

    from exporter.http import Reply
    from exporter.vendors.rescue.client import MAX_COOKIE_LENGTH, SESSION_COOKIE, session_cookie

    def sent(value: str) -> tuple[str, tuple[str, ...]] | None:
        headers = CIMultiDictProxy(cookies(f"{SESSION_COOKIE}={value}; path=/"))
        return session_cookie(Reply.of(200, b"OK", headers))

    longest = "v" * (MAX_COOKIE_LENGTH - len(SESSION_COOKIE))
    assert sent(longest) == (f"{SESSION_COOKIE}={longest}", (longest,))
    assert sent(longest + "v") is None
