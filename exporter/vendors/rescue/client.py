"""getSession over `Upstream`, with either an auth code or a login cookie kept per account.

Credentials travel in POST bodies and the Cookie header. Only if the service refuses POST
(HTTP 405; the vendor documents GET too) does the client fall back to GET with a query
string, and the core never logs URLs, so no log line or error message can carry them.
"""

from __future__ import annotations

from functools import partial
from http.cookies import CookieError, SimpleCookie

from ...clock import Clock
from ...errors import UpstreamError
from ...http import Reply, Upstream
from .config import Node, RescueAccount
from .parser import SessionList, parse_login, parse_sessions

GET_SESSION = "getSession"
LOGIN = "login"
ENDPOINTS = {1: "getSession.aspx", 2: "getSession_v2.aspx", 3: "getSession_v3.aspx"}

# The vendor drops a login after 20 minutes idle; log in afresh a little before that
# instead of spending a request on a NOTLOGGEDIN.
IDLE_EXPIRY = 20 * 60.0
IDLE_MARGIN = 60.0
# login.aspx answers LIMITREACHED after ten calls in three minutes: stay away that long.
LOGIN_LIMIT_BACKOFF = 180.0

AUTH_CODES = frozenset({"INVALID_SECRETAUTHCODE", "USER_DELETED_OR_DISABLED", "INVALID"})


class UnknownNodeError(UpstreamError):
    """getSession said INVALIDPARAM_NODE: this node, not the account, is at fault."""


class RescueClient:
    def __init__(self, account: RescueAccount, clock: Clock) -> None:
        self.account = account
        self.clock = clock
        self.cookie: str | None = None
        self.cookie_used_at = 0.0
        self.login_blocked_until = 0.0
        self.logins = 0
        # Set once the service has answered a POST with 405 Method Not Allowed.
        self.use_get = False

    @property
    def url(self) -> str:
        return f"{self.account.common.base_url}/API/{ENDPOINTS[self.account.api_version]}"

    async def get_sessions(self, upstream: Upstream, node: Node) -> SessionList:
        """One node's current sessions; raises a counted `UpstreamError` on failure."""
        fresh_login = False
        if self.account.uses_login and not self._cookie_alive():
            await self.login(upstream)
            fresh_login = True
        reply = await self._get(upstream, node)
        if reply.code == "NOTLOGGEDIN" and self.account.uses_login and not fresh_login:
            # The cookie expired under us: one new login, one retry, never a loop.
            self.cookie = None
            await self.login(upstream)
            reply = await self._get(upstream, node)
        return self._check(upstream, node, reply)

    async def _get(self, upstream: Upstream, node: Node) -> SessionList:
        data = {"node": str(node.id), "noderef": node.ref}
        headers: dict[str, str] = {}
        if self.account.auth_code is not None:
            data["authcode"] = self.account.auth_code.reveal()
        elif self.cookie is not None:
            headers["Cookie"] = self.cookie
        reply = await self._send(upstream, GET_SESSION, self.url, data, headers)
        self.cookie_used_at = self.clock.time()
        parse = partial(parse_sessions, zone=self.account.zone)
        return upstream.parse(GET_SESSION, parse, reply.body)

    async def _send(self, upstream: Upstream, operation: str, url: str, data: dict[str, str],
                    headers: dict[str, str] | None = None) -> Reply:
        if not self.use_get:
            reply = await upstream.fetch(operation, "POST", url, data=data, headers=headers,
                                         ok_statuses=(200, 405))
            if reply.status == 200:
                return reply
            self.use_get = True
        return await upstream.fetch(operation, "GET", url, params=data, headers=headers)

    def _check(self, upstream: Upstream, node: Node, reply: SessionList) -> SessionList:
        code = reply.code
        if code == "OK":
            return reply
        where = f"{code} for {node.ref} {node.id}"
        if code == "INVALIDPARAM_NODE":
            err = upstream.error(GET_SESSION, "vendor_error", where)
            raise UnknownNodeError(err.operation, err.reason, err.message)
        if code in AUTH_CODES or code == "NOTLOGGEDIN":
            raise upstream.error(GET_SESSION, "auth", where)
        raise upstream.error(GET_SESSION, "vendor_error", where)

    def _cookie_alive(self) -> bool:
        idle = self.clock.time() - self.cookie_used_at
        return self.cookie is not None and idle < IDLE_EXPIRY - IDLE_MARGIN

    async def login(self, upstream: Upstream) -> None:
        now = self.clock.time()
        if now < self.login_blocked_until:
            wait = self.login_blocked_until - now
            raise upstream.error(LOGIN, "rate_limited",
                                 f"LIMITREACHED earlier; not logging in for {wait:.0f}s",
                                 retry_after=wait)
        email, password = self.account.email, self.account.password
        assert email is not None and password is not None  # config guarantees it
        self.logins += 1
        reply = await self._send(upstream, LOGIN, f"{self.account.common.base_url}/API/login.aspx",
                                 {"email": email, "pwd": password.reveal()})
        code = upstream.parse(LOGIN, parse_login, reply.body)
        if code == "LIMITREACHED":
            self.login_blocked_until = self.clock.time() + LOGIN_LIMIT_BACKOFF
            raise upstream.error(LOGIN, "rate_limited", "LIMITREACHED",
                                 retry_after=LOGIN_LIMIT_BACKOFF)
        if code in AUTH_CODES:
            raise upstream.error(LOGIN, "auth", code)
        if code != "OK":
            raise upstream.error(LOGIN, "vendor_error", code)
        cookie = session_cookie(reply)
        if cookie is None:
            raise upstream.error(LOGIN, "vendor_error", "OK without a session cookie")
        self.cookie, self.cookie_used_at = cookie, self.clock.time()


def session_cookie(reply: Reply) -> str | None:
    """The Cookie header to send back, from the login reply's Set-Cookie headers.

    The shared HTTP session has no cookie jar on purpose (accounts must not share
    cookies), so each account keeps its own.
    """
    jar: SimpleCookie = SimpleCookie()
    for header in reply.headers.getall("Set-Cookie", []):
        try:
            jar.load(header)
        except CookieError:
            continue
    if "ASP.NET_SessionId" not in jar:
        return None
    return "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items())
