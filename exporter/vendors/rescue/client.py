"""getSession over `Upstream`, text or SOAP, with either an auth code or a login cookie kept
per account.

Credentials travel in POST bodies (form fields or the SOAP envelope) and the Cookie
header, never in a URL. The doc shows the text API answering GET too: if the service
answers a POST with 405, that one request is asked again with GET, but only when it
carries no credential or the account opted in (`allow_credentials_in_url`); otherwise the
405 is a failure whose message says so. Every fallback is counted; none sticks.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable
from functools import partial
from http.cookies import CookieError, SimpleCookie
from xml.sax.saxutils import escape

from ... import scrub
from ...clock import Clock
from ...errors import UpstreamError
from ...http import Reply, Upstream
from ..base import CollectorContext
from .config import Node, RescueAccount
from .parser import (
    SessionList,
    TooManyRows,
    parse_login,
    parse_sessions,
    parse_soap_login,
    parse_soap_sessions,
    soap_fault_detail,
)
from .statuses import API_NAMESPACE, SOAP11_NAMESPACE, SOAP12_NAMESPACE

GET_SESSION = "getSession"
LOGIN = "login"
ENDPOINTS = {1: "getSession.aspx", 2: "getSession_v2.aspx", 3: "getSession_v3.aspx"}
SOAP_ENDPOINT = "API.asmx"
SOAP_GET_SESSION = "getSession_V3"

# The vendor drops a login after 20 minutes idle; log in afresh a little before that
# instead of spending a request on a NOTLOGGEDIN.
IDLE_EXPIRY = 20 * 60.0
IDLE_MARGIN = 60.0
# login.aspx answers LIMITREACHED after ten calls in three minutes: stay away that long.
LOGIN_LIMIT_BACKOFF = 180.0
# Logins we allow ourselves in that time, below the vendor's ten: a vendor dropping the
# login after every other call had each node log in again each cycle, and three nodes
# reached LIMITREACHED in 20 s, locking every client of that user out for 3 minutes.
LOGINS_PER_LIMIT = 8

AUTH_CODES = frozenset({"INVALID_SECRETAUTHCODE", "USER_DELETED_OR_DISABLED", "INVALID"})
# The parse result standing for a reply over `max_records_per_reply` (a limit, not a
# vendor code): it is refused as `limit_exceeded`.
TOO_MANY_ROWS = "TOO_MANY_ROWS"
NO_GET_HINT = (
    "HTTP 405 to POST; a GET would carry credentials in its URL: set "
    "allow_credentials_in_url: true to allow that, or use api: soap"
)


class UnknownNodeError(UpstreamError):
    """getSession said INVALIDPARAM_NODE: this node, not the account, is at fault."""


class RescueClient:
    def __init__(self, account: RescueAccount, ctx: CollectorContext) -> None:
        self.account = account
        self.clock: Clock = ctx.clock
        self.log = ctx.log
        self.max_rows: int | None = ctx.max_records_per_reply
        self.cookie: str | None = None
        self.cookie_used_at = 0.0
        self.login_blocked_until = 0.0
        self.logins = 0
        self._login_times: deque[float] = deque(maxlen=LOGINS_PER_LIMIT)
        # Requests asked again with GET after a 405 to their POST, by operation.
        self.get_fallbacks: Counter[str] = Counter()
        self._warned_unframed = False  # `_unframed`

    @property
    def _holder(self) -> str:
        return f"rescue/{self.account.common.name}"

    @property
    def url(self) -> str:
        if self.account.uses_soap:
            return f"{self.account.common.base_url}/API/{SOAP_ENDPOINT}"
        return f"{self.account.common.base_url}/API/{ENDPOINTS[self.account.api_version]}"

    async def get_sessions(self, upstream: Upstream, node: Node) -> SessionList:
        """One node's current sessions; raises a counted `UpstreamError` on failure."""
        fresh_login = False
        if self.account.uses_login and not self._cookie_alive():
            await self.login(upstream)
            fresh_login = True
        reply = await self._get(upstream, node)
        if reply.code == "NOTLOGGEDIN" and self.account.uses_login and not fresh_login:
            # The cookie expired under us: one new login, one retry, never a loop. Not a
            # failure (the retry decides), but said once: it explains the extra login.
            self.log.info(
                "rescue_login_expired",
                node=node.id,
                ref=node.ref,
                hint="logged in again; check the vendor's session timeout if "
                "this comes every cycle",
            )
            self.cookie = None
            scrub.hold(self._holder, ())
            await self.login(upstream)
            reply = await self._get(upstream, node)
        return self._check(upstream, node, reply)

    def _headers(self) -> dict[str, str]:
        if self.account.auth_code is None and self.cookie is not None:
            return {"Cookie": self.cookie}
        return {}

    async def _get(self, upstream: Upstream, node: Node) -> SessionList:
        zone = self.account.zone
        parser: Callable[..., SessionList]
        if self.account.uses_soap:
            code = self.account.auth_code.reveal() if self.account.auth_code else ""
            reply = await self._soap(
                upstream,
                GET_SESSION,
                SOAP_GET_SESSION,
                {"iNodeID": str(node.id), "eNodeRef": node.ref, "sAuthCode": code},
            )
            parser = parse_soap_sessions
        else:
            data = {"node": str(node.id), "noderef": node.ref}
            if self.account.auth_code is not None:
                data["authcode"] = self.account.auth_code.reveal()
            reply = await self._send(
                upstream,
                GET_SESSION,
                self.url,
                data,
                self._headers(),
                credentials=self.account.auth_code is not None,
            )
            parser = parse_sessions
            self._unframed(reply)
        self.cookie_used_at = self.clock.time()
        return await upstream.parse_off_loop(
            GET_SESSION, partial(_bounded, parser, zone, self.max_rows), reply.body
        )

    def _unframed(self, reply: Reply) -> None:
        """Say once that text replies come without Content-Length or chunked framing:
        one cut short where a row ends then looks whole (nothing in the text marks its
        end), and the sessions cut off would be taken for ended. XML and JSON end
        themselves; this text does not."""
        if self._warned_unframed:
            return
        headers = reply.headers
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        if "Content-Length" in headers or chunked:
            return
        self._warned_unframed = True
        self.log.warning(
            "rescue_reply_unframed",
            hint="getSession answered without Content-Length or chunked encoding (HTTP/1.0, "
            "or a proxy): a reply cut short at a row's end cannot be told from a whole one; "
            "use api: soap, or fix the proxy",
        )

    async def _send(
        self,
        upstream: Upstream,
        operation: str,
        url: str,
        data: dict[str, str],
        headers: dict[str, str],
        *,
        credentials: bool,
    ) -> Reply:
        reply = await upstream.fetch(
            operation, "POST", url, data=data, headers=headers, ok_statuses=(200, 405)
        )
        if reply.status == 200:
            return reply
        # 405: for this request only. The next one is a POST again, so a proxy that once
        # refused POST cannot move every later credential into URLs.
        if credentials and not self.account.allow_credentials_in_url:
            raise upstream.error(operation, "http_4xx", NO_GET_HINT)
        self.get_fallbacks[operation] += 1
        return await upstream.fetch(operation, "GET", url, params=data, headers=headers)

    async def _soap(
        self, upstream: Upstream, operation: str, method: str, params: dict[str, str]
    ) -> Reply:
        envelope, content_type = soap_request(method, params, self.account.api)
        headers = {**self._headers(), "Content-Type": content_type}
        if self.account.api == "soap11":
            headers["SOAPAction"] = f'"{API_NAMESPACE}/{method}"'
        return await upstream.fetch(
            operation,
            "POST",
            self.url,
            data=envelope,
            headers=headers,
            error_detail=soap_fault_detail,
        )

    def _check(self, upstream: Upstream, node: Node, reply: SessionList) -> SessionList:
        code = reply.code
        if code == "OK":
            return reply
        if code == TOO_MANY_ROWS:
            raise upstream.error(
                GET_SESSION,
                "limit_exceeded",
                f"more than max_records_per_reply ({self.max_rows}) sessions "
                f"for {node.ref} {node.id}",
            )
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
        # Monotonic: a step of the wall clock back locked the account out for its size.
        now = self.clock.monotonic()
        if now < self.login_blocked_until:
            wait = self.login_blocked_until - now
            raise upstream.error(
                LOGIN,
                "rate_limited",
                f"LIMITREACHED earlier; not logging in for {wait:.0f}s",
                retry_after=wait,
            )
        recent = self._login_times
        if len(recent) == LOGINS_PER_LIMIT and now - recent[0] < LOGIN_LIMIT_BACKOFF:
            wait = recent[0] + LOGIN_LIMIT_BACKOFF - now
            raise upstream.error(
                LOGIN,
                "rate_limited",
                f"logged in {LOGINS_PER_LIMIT} times in {LOGIN_LIMIT_BACKOFF:.0f}s; not "
                f"again for {wait:.0f}s, before the vendor's LIMITREACHED",
                retry_after=wait,
            )
        email, password = self.account.email, self.account.password
        assert email is not None and password is not None  # noqa: S101 - config guarantees it
        self.logins += 1
        recent.append(now)
        if self.account.uses_soap:
            # The doc's PHP and C# SOAP samples: `login`, then the same cookie container.
            reply = await self._soap(
                upstream, LOGIN, LOGIN, {"sEmail": email, "sPassword": password.reveal()}
            )
            code = upstream.parse(LOGIN, parse_soap_login, reply.body)
        else:
            reply = await self._send(
                upstream,
                LOGIN,
                f"{self.account.common.base_url}/API/login.aspx",
                {"email": email, "pwd": password.reveal()},
                {},
                credentials=True,
            )
            code = upstream.parse(LOGIN, parse_login, reply.body)
        if code == "LIMITREACHED":
            self.login_blocked_until = self.clock.monotonic() + LOGIN_LIMIT_BACKOFF
            raise upstream.error(
                LOGIN, "rate_limited", "LIMITREACHED", retry_after=LOGIN_LIMIT_BACKOFF
            )
        if code in AUTH_CODES:
            raise upstream.error(LOGIN, "auth", code)
        if code != "OK":
            raise upstream.error(LOGIN, "vendor_error", code)
        found = session_cookie(reply)
        if found is None:
            raise upstream.error(
                LOGIN,
                "vendor_error",
                f"OK without a usable {SESSION_COOKIE} cookie (missing, malformed or "
                f"over {MAX_COOKIE_LENGTH} characters)",
            )
        cookie, credentials = found
        self.cookie, self.cookie_used_at = cookie, self.clock.time()
        # The session id is a credential for as long as it lives: a vendor echoing it,
        # or a log quoting our request, must not show it. Not every cookie's value: the
        # others are the vendor's words, and held as secrets they would be blanked out
        # of every log line and page ("acme", "rescue").
        scrub.hold(self._holder, credentials)


def _bounded(
    parser: Callable[..., SessionList], zone: object, max_rows: int | None, body: bytes
) -> SessionList:
    # Through `Upstream.parse` like any reply (a parse error stays `parse`), while a reply
    # over the row limit comes back as its own code for `_check` to refuse.
    try:
        return parser(body, zone, max_rows)
    except TooManyRows:
        return SessionList(TOO_MANY_ROWS)


def soap_request(method: str, params: dict[str, str], api: str = "soap") -> tuple[bytes, str]:
    """(envelope, Content-Type) of one API.asmx call; SOAP 1.2 unless `api` is soap11."""
    soap11 = api == "soap11"
    namespace = SOAP11_NAMESPACE if soap11 else SOAP12_NAMESPACE
    fields = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in params.items())
    envelope = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{namespace}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        f'<soap:Body><{method} xmlns="{API_NAMESPACE}">{fields}</{method}></soap:Body>'
        "</soap:Envelope>"
    )
    if soap11:
        content_type = "text/xml; charset=utf-8"
    else:
        content_type = f'application/soap+xml; charset=utf-8; action="{API_NAMESPACE}/{method}"'
    return envelope.encode("utf-8"), content_type


SESSION_COOKIE = "ASP.NET_SessionId"
# RFC 6265's cookie-octet: printable ASCII but space, `"`, `,`, `;` and `\\`. A value with
# anything else (Python's cookie parser turns `\\012` into a line break) cannot be sent
# back in a header.
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*\Z")
# A browser's limit for one cookie; ASP.NET's session ids have 24 characters.
MAX_COOKIE_LENGTH = 4096
# What we send back, all cookies together: a vendor setting a hundred long cookies gets
# only the first that fit (the session cookie always comes first).
MAX_COOKIE_HEADER = 8192


def session_cookie(reply: Reply) -> tuple[str, tuple[str, ...]] | None:
    """(the Cookie header to send back, the credentials in it) from the login reply's
    Set-Cookie headers, or None without a usable session cookie. Cookies that could not
    be sent back (bad characters, too long) are left out. The credentials are the
    session id and the value of any cookie named like one (`.ASPXAUTH`, a token).

    The shared HTTP session has no cookie jar on purpose (accounts must not share
    cookies), so each account keeps its own.
    """
    jar: SimpleCookie = SimpleCookie()
    for header in reply.headers.getall("Set-Cookie", []):
        try:
            jar.load(header)
        except CookieError:
            continue
    usable = {
        name: morsel.value
        for name, morsel in jar.items()
        if len(name) + len(morsel.value) <= MAX_COOKIE_LENGTH and _COOKIE_VALUE.match(morsel.value)
    }
    session_id = usable.pop(SESSION_COOKIE, None)
    if not session_id:
        return None
    pairs = [f"{SESSION_COOKIE}={session_id}"]
    credentials = [session_id]
    length = len(pairs[0])
    for name, value in usable.items():
        length += len(name) + len(value) + 3  # "; " and "="
        if length > MAX_COOKIE_HEADER:
            break
        pairs.append(f"{name}={value}")
        if _CREDENTIAL_NAME.search(name):
            credentials.append(value)
    return "; ".join(pairs), tuple(credentials)


# Cookie names that say their value is a credential.
_CREDENTIAL_NAME = re.compile("auth|sess|token|login|key", re.IGNORECASE)
