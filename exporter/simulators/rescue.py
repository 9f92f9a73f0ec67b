"""A LogMeIn Rescue API on loopback: login, requestAuthCode and getSession (v1, v2, v3) as
text, and `login` and `getSession_V3` over SOAP 1.1 and 1.2 on API.asmx.

The world is seeded and moves on whole seconds of the injected clock: customers arrive in
channels (a few privately to a technician), wait, and leave Waiting in every way the wait
outcomes know (picked up, given up, timed out, transferred, gone offline); served ones go
through the statuses the doc lists, some with a second technician (an extra row), close,
and linger briefly before vanishing. Each session's whole life is drawn when it arrives,
so what a poll sees depends only on the seed and the poll's time, whichever API asks.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from aiohttp import web
from lxml import etree

from ..clock import Clock
from ..errors import ParseError
from ..xmlsafe import parse_xml
from .base import RECENT_REQUESTS, Simulator
from .faults import Faults

GROUP_ID = 337366  # a technician group holding every technician and channel


@dataclass(frozen=True)
class Channel:
    id: int
    name: str


@dataclass(frozen=True)
class Technician:
    id: int
    name: str


CHANNELS = (Channel(4411, "Billing"), Channel(4412, "Hardware"), Channel(4413, "Software"))
TECHNICIANS = tuple(
    Technician(337400 + i, name)
    for i, name in enumerate(
        ("John Doe", "Ana Silva", "Wei Chen", "Priya Nair", "Tom Berg"), start=1
    )
)

# Status strings of a Portuguese account. The first three are from a real reply (the
# captures); the others are this simulator's inventions, so they need `status_aliases`
# (or `api: soap`), as an account's unseen strings would.
PORTUGUESE = {
    "Active": "Ativas",
    "Closed by active customer": "Encerrado pelo cliente ativo",
    "Closed by waiting customer": "Encerrado pelo cliente que estava esperando",
    "Waiting": "Aguardando",
    "Connecting": "Conectando",
    "On Hold": "Em espera",
    "Transferring": "Transferindo",
    "Reconnecting": "Reconectando",
    "Rebooting": "Reiniciando",
    "Rebooted": "Reiniciado",
    "Closed by customer": "Fechado pelo cliente",
    "Closed by technician": "Fechado pelo técnico",
    "Timed out": "Tempo esgotado",
    "Timed out: closed by technician": "Tempo esgotado: fechado pelo técnico",
    "Disconnected": "Desconectado",
    "Offline": "Desconectada",
    "Transferred": "Transferida",
}
YES = {"en": "yes", "pt": "sim"}
# The vendor's names, written here rather than imported from the client (a wrong
# constant in the client must be caught by this double, not shared with it). The text API
# and its statuses are in ../shared/vendor-docs/logmein-rescue-getsession.txt; the SOAP
# namespaces are the service's WSDL (https://secure.logmeinrescue.com/api/api.asmx?wsdl,
# named by that doc) and SOAP 1.1/1.2; the SOAP enum and result names are the ones seen
# on the wire and in the public clients the doc's samples come from.
API_NAMESPACE = "https://secure.logmeinrescue.com/API/API.asmx"
SOAP11_NAMESPACE = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NAMESPACE = "http://www.w3.org/2003/05/soap-envelope"
WAITING = "Waiting"
# The enum each English status is answered with over SOAP.
SOAP_ENUM = {
    "Aborted": "SESSION_ABORTED_TECHDELETEDORDISABLED",
    "Active": "SESSION_PICKEDUP",
    "Closed by active customer": "SESSION_CLOSEDBYACTIVECUSTOMER",
    "Closed by customer": "SESSION_CLOSEDBYCUSTOMER",
    "Closed by technician": "SESSION_CLOSEDBYTECHNICIAN",
    "Closed by waiting customer": "SESSION_CUSTOMERLEFTSESSION_WASNOTPICKEDUP",
    "Connecting": "SESSION_CONNECTING",
    "Disconnected": "SESSION_CLOSED_DURINGRECONNECTING",
    "Not available": "SESSION_STATUS_NOT_SUPPORTED_VALUE",
    "Offline": "SESSION_OFFLINE",
    "On Hold": "SESSION_ONHOLD",
    "Rebooted": "SESSION_CLOSED_DURINGREBOOTING",
    "Rebooting": "SESSION_REBOOTING",
    "Reconnecting": "SESSION_CONNECTIONPROBLEM",
    "Timed out": "SESSION_WAITINGTIMEOUT_PICKEDUP",
    "Timed out: closed by technician": "SESSION_TIMEOUT_TECHCONNECTIONLOSTORSESSIONWASNOTCLOSEDBYTECH",  # noqa: E501
    "Transferred": "SESSION_CLOSED_TRANSFERREDANOTHERTECH_WITHOUTPICKUP",
    "Transferring": "SESSION_TRANSFERINGBUTNOTPICKEDUP",
    "Waiting": "SESSION_WAITING",
}
# The text API's return value -> the SOAP getSessionResult saying the same.
SOAP_RESULT = {
    "OK": "getSession_OK",
    "ERROR": "getSession_Error",
    "NOTLOGGEDIN": "getSession_NotLoggedIn",
    "INVALIDPARAM_NODE": "getSession_InvalidParam_NodeID",
    "INVALID_SECRETAUTHCODE": "getSession_Invalid_SecretAuthCode",
    "USER_DELETED_OR_DISABLED": "getSession_User_Deleted_Or_Disabled",
}
# The truth of each wait this world ends, by the status the session moves to (issue 14's
# outcomes): a technician picked it up, the customer left, the queue timed out, it was
# sent on. Anything else, and leaving the list, says nothing: `other`.
WAIT_OUTCOME_OF = {
    "Connecting": "answered",
    "Active": "answered",
    "Closed by waiting customer": "abandoned",
    "Timed out": "timed_out",
    "Transferring": "transferred",
}
SOAP_FIELDS = (
    "iID",
    "bStatus",
    "sStatus",
    "iEntry",
    "sEntry",
    "iTechnician",
    "sTechnician",
    "sStartTime",
    "iWaitingTimeInSec",
    "sCustomField0",
    "sCustomField1",
    "sCustomField2",
    "sCustomField3",
    "sCustomField4",
    "sCustomField5",
    "sLanguage",
    "sTransferredTo",
    "sTransferredComment",
    "bIsLead",
    "bHandingOff",
)
SOAP_ENDPOINT = "/API/API.asmx"

V1_COLUMNS = (
    "ID",
    "Status",
    "Entry ID",
    "Entry",
    "Technician ID",
    "Technician",
    "Start Time",
    "Waiting Time",
    "Custom Field 0",
    "Custom Field 1",
    "Custom Field 2",
    "Language",
    "Transferred To",
    "Transferred Comment",
)
COLUMNS = {
    1: V1_COLUMNS,
    2: (*V1_COLUMNS, "Is Lead Technician", "HandingOff"),
    3: (
        *V1_COLUMNS[:11],
        "Custom Field 3",
        "Custom Field 4",
        "Custom Field 5",
        *V1_COLUMNS[11:],
        "Is Lead Technician",
        "HandingOff",
    ),
}
ENDPOINTS = {"/API/getSession.aspx": 1, "/API/getSession_v2.aspx": 2, "/API/getSession_v3.aspx": 3}

IDLE_EXPIRY = 20 * 60
LOGIN_LIMIT, LOGIN_WINDOW = 10, 180
LINGER = 15  # seconds a closed session stays listed
HISTORY = 900  # seconds of world simulated before the first request
# Every getSession reply says at which (whole) second of the world it was computed, so a
# test running the real clock can tell exactly what a poll could have seen.
WORLD_TIME_HEADER = "X-Simulator-Time"
PICKED_UP = frozenset({"Connecting", "Active"})
FINAL = (
    "Closed by technician",
    "Closed by customer",
    "Closed by active customer",
    "Timed out",
    "Disconnected",
    "Timed out: closed by technician",
)
# How a first wait ends, with its share: the rest are picked up.
LEAVE_WAITING = (
    ("Closed by waiting customer", 0.15),
    ("Timed out", 0.05),
    ("Transferring", 0.06),
    ("Offline", 0.04),
)
HELPER_SHARE = 0.2  # served sessions a second technician joins


@dataclass
class SimSession:
    id: int
    channel: Channel | None  # None: a private session straight to `technician`
    technician: Technician
    created: int
    custom: tuple[str, str]
    language: str
    path: list[tuple[str, int]] = field(default_factory=list)  # (status, entered at)
    gone_at: int = 0
    # A second technician who joins at a moment (a row of their own, not the lead).
    helper: tuple[Technician, int] | None = None

    def segment(self, t: float) -> tuple[str, int] | None:
        if t < self.created or t >= self.gone_at:
            return None
        current = self.path[0]
        for step in self.path:
            if step[1] > t:
                break
            current = step
        return current

    @property
    def picked_up_at(self) -> int:
        # Leaving Waiting another way than being picked up counts as never picked up.
        return next((at for status, at in self.path if status in PICKED_UP), self.gone_at)

    def in_node(self, node: int, ref: str, t: float) -> bool:
        if ref == "CHANNEL":
            return self.channel is not None and self.channel.id == node
        if node == GROUP_ID:
            return True
        return self.technician.id == node and (self.channel is None or t >= self.picked_up_at)

    def waits(self) -> list[tuple[int, int]]:
        """(entered Waiting, left Waiting) for every wait of this session."""
        return [(start, end) for start, end, _ in self.wait_outcomes()]

    def wait_outcomes(self) -> list[tuple[int, int, str]]:
        """(entered Waiting, left Waiting, outcome) for every wait of this session."""
        nexts: list[str | None] = [status for status, _ in self.path[1:]] + [None]
        ends = [at for _, at in self.path[1:]] + [self.gone_at]
        return [
            (at, end, WAIT_OUTCOME_OF.get(after or "", "other"))
            for (status, at), end, after in zip(self.path, ends, nexts, strict=True)
            if status == WAITING
        ]


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    method: str
    query: dict[str, str]
    form: dict[str, str]
    cookie: str


class RescueSimulator(Simulator):
    def __init__(
        self, clock: Clock, seed: int, *, pipe_rate: float = 0.0, timezone: str = "UTC"
    ) -> None:
        self.clock = clock
        self.faults = Faults(seed, malformed=malformed_reply)
        self._rng = random.Random(seed)
        self._cookie_rng = random.Random(seed + 1)
        self.pipe_rate = pipe_rate
        self.zone = ZoneInfo(timezone)
        self.language = "en"  # "pt" answers with Portuguese status strings
        self.email, self.password = "admin@example.com", "sim-password"
        self.auth_code = f"{self._cookie_rng.getrandbits(128):032x}"
        self.disabled = False
        self.cookies: dict[str, float] = {}  # session cookie -> last use
        self.login_calls: deque[float] = deque()
        self.logins = 0
        self.forced: deque[tuple[str, str]] = deque()
        # Share of getSession calls before which every login expires (a fault for soak
        # tests and the demo). Its own generator: the world's draws must not depend on it.
        self.expire_rate = 0.0
        self._expiry_rng = random.Random(seed + 2)
        # The latest requests, for tests; bounded, as the demo runs for days.
        self.requests: deque[RecordedRequest] = deque(maxlen=RECENT_REQUESTS)
        self._new_cookie: str | None = None  # set by a successful login, sent once
        self.live: list[SimSession] = []
        self.finished: deque[SimSession] = deque(maxlen=5000)
        self._next_id = 1663112
        self._now = math.floor(clock.time()) - HISTORY
        self._next_arrival = self._now
        self.advance()

    # -- the world -------------------------------------------------------------------

    def advance(self) -> int:
        """Bring the world to the clock's current whole second; returns it."""
        target = math.floor(self.clock.time())
        while self._next_arrival <= target:
            self.live.append(self._arrive(self._next_arrival))
            self._next_arrival += self._rng.randint(3, 12)
        self._now = max(self._now, target)
        gone = [s for s in self.live if s.gone_at <= self._now]
        self.finished.extend(gone)
        self.live = [s for s in self.live if s.gone_at > self._now]
        return self._now

    def _arrive(self, t: int) -> SimSession:
        r = self._rng
        self._next_id += r.randint(1, 3)
        private = r.random() < 0.1
        channel = None if private else r.choice(CHANNELS)
        pipe = r.random() < self.pipe_rate
        customer = f"Customer {r.randint(1, 999)}" + (" | ACME" if pipe else "")
        session = SimSession(
            self._next_id,
            channel,
            r.choice(TECHNICIANS),
            t,
            (customer, f"T-{r.randint(1000, 9999)}"),
            r.choice(("en", "pt", "de")),
        )
        path = session.path
        path.append((WAITING, t))
        t += r.randint(5, 75)
        leave, draw = None, r.random()
        for status, share in LEAVE_WAITING:
            if draw < share:
                leave = status
                break
            draw -= share
        if leave == "Transferring":
            # Sent on to another queue while waiting: a second wait follows.
            t = self._step(path, "Transferring", t, 2, 6)
            t = self._step(path, WAITING, t, 5, 40)
        elif leave is not None:
            path.append((leave, t))
            session.gone_at = t + LINGER
            return session
        t = self._serve(session, t)
        if r.random() < HELPER_SHARE:
            others = [tech for tech in TECHNICIANS if tech != session.technician]
            session.helper = (r.choice(others), t - r.randint(1, 8))
        detour = r.choice(("none", "hold", "reconnect", "reboot", "transfer", "requeue"))
        if detour == "hold":
            t = self._step(path, "On Hold", t, 5, 30)
        elif detour == "reconnect":
            t = self._step(path, "Reconnecting", t, 3, 10)
        elif detour == "reboot":
            t = self._step(path, "Rebooting", t, 10, 30)
            t = self._step(path, "Rebooted", t, 3, 8)
        elif detour == "transfer":
            t = self._step(path, "Transferring", t, 2, 8)
        elif detour == "requeue" and channel is not None:
            t = self._step(path, "Transferring", t, 2, 6)
            t = self._step(path, WAITING, t, 5, 40)
            t = self._serve(session, t)
        if detour != "none":
            t = self._step(path, "Active", t, 10, 60)
        path.append((r.choice(FINAL), t))
        session.gone_at = t + LINGER
        return session

    def _serve(self, session: SimSession, t: int) -> int:
        t = self._step(session.path, "Connecting", t, 2, 5)
        return self._step(session.path, "Active", t, 10, 90)

    def _step(self, path: list[tuple[str, int]], status: str, t: int, low: int, high: int) -> int:
        path.append((status, t))
        return t + self._rng.randint(low, high)

    # -- ground truth for tests ------------------------------------------------------

    def sessions(self, node: int = GROUP_ID, ref: str = "NODE") -> list[SimSession]:
        now = self.advance()
        return [s for s in self.live if s.segment(now) is not None and s.in_node(node, ref, now)]

    def status_counts(self, node: int = GROUP_ID, ref: str = "NODE") -> Counter[str]:
        now = self.advance()
        return Counter(seg[0] for s in self.sessions(node, ref) if (seg := s.segment(now)))

    def oldest_change(self, node: int = GROUP_ID, ref: str = "NODE") -> dict[str, float]:
        now = self.advance()
        oldest: dict[str, float] = {}
        for s in self.sessions(node, ref):
            seg = s.segment(now)
            if seg is not None:
                oldest[seg[0]] = min(oldest.get(seg[0], float(seg[1])), float(seg[1]))
        return oldest

    def waits(self, node: int = GROUP_ID, ref: str = "NODE") -> list[tuple[int, int, int]]:
        """(session id, entered Waiting, left Waiting) of every wait, past and present.
        A wait still going has the session's planned end."""
        return [(sid, start, end) for sid, start, end, _ in self.wait_outcomes(node, ref)]

    def wait_outcomes(
        self, node: int = GROUP_ID, ref: str = "NODE"
    ) -> list[tuple[int, int, int, str]]:
        """(session id, entered Waiting, left Waiting, outcome) of every wait: the outcome
        of the status it moved to, `other` for a session that left the list."""
        self.advance()
        return [
            (s.id, start, end, outcome)
            for s in (*self.finished, *self.live)
            for start, end, outcome in s.wait_outcomes()
            if s.in_node(node, ref, start)
        ]

    def extra_technician_rows(self, node: int = GROUP_ID, ref: str = "NODE") -> int:
        """Rows beyond the first per session that a poll now would list."""
        now = self.advance()
        return sum(len(self._rows(s, now)) - 1 for s in self.sessions(node, ref))

    def fail_next(self, code: str, endpoint: str = "getSession", count: int = 1) -> None:
        """Answer the next `count` calls of `endpoint` (getSession, login) with `code`."""
        self.forced.extend([(endpoint, code)] * count)

    def expire_logins(self) -> None:
        self.cookies.clear()

    # -- HTTP ------------------------------------------------------------------------

    def set_fault_rate(self, rate: float) -> None:
        super().set_fault_rate(rate)
        self.expire_rate = rate  # logins expire too, as real ones do after 20 idle minutes

    def app(self) -> web.Application:
        app = self.new_app()
        for path in ENDPOINTS:
            app.router.add_route("*", path, self._get_session)
        app.router.add_route("POST", SOAP_ENDPOINT, self._soap)
        app.router.add_route("*", "/API/login.aspx", self._login)
        app.router.add_route("*", "/API/requestAuthCode.aspx", self._request_auth_code)
        return app

    async def _params(self, request: web.Request) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(
            RecordedRequest(
                request.path,
                request.method,
                dict(request.query),
                form,
                request.headers.get("Cookie", ""),
            )
        )
        return {**request.query, **form}

    def _forced(self, endpoint: str) -> str | None:
        if self.forced and self.forced[0][0] == endpoint:
            return self.forced.popleft()[1]
        return None

    async def _login(self, request: web.Request) -> web.Response:
        return self._with_cookie(_text(self._login_code(await self._params(request))))

    def _login_code(self, params: dict[str, str]) -> str:
        """OK (setting `self._new_cookie`), or the text login's return value."""
        self._new_cookie = None
        now = self.clock.time()
        self.login_calls.append(now)
        while self.login_calls and self.login_calls[0] <= now - LOGIN_WINDOW:
            self.login_calls.popleft()
        forced = self._forced("login")
        if forced is not None:
            return forced
        if len(self.login_calls) > LOGIN_LIMIT:
            return "LIMITREACHED"
        if self.disabled or not self._credentials_ok(params):
            return "INVALID"
        cookie = f"{self._cookie_rng.getrandbits(96):024x}"
        self.cookies[cookie] = now
        self.logins += 1
        self._new_cookie = cookie
        return "OK"

    def _with_cookie(self, response: web.Response) -> web.Response:
        if self._new_cookie is not None:
            response.headers["Set-Cookie"] = (
                f"ASP.NET_SessionId={self._new_cookie}; path=/; HttpOnly"
            )
            self._new_cookie = None
        return response

    async def _request_auth_code(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        if self.disabled or not self._credentials_ok(params):
            return _text("INVALID")
        return _text(f"OK\r\nAUTHCODE: {self.auth_code}\r\n")

    def _credentials_ok(self, params: dict[str, str]) -> bool:
        return params.get("email") == self.email and params.get("pwd") == self.password

    async def _get_session(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        now, code, node, ref = self._session_call(
            params.get("node", ""), params.get("noderef", "NODE"), params.get("authcode"), request
        )
        if code is not None:
            return _text(code)
        columns = COLUMNS[ENDPOINTS[request.path]]
        # The captures' layout: LF line ends, every line ending with `|`.
        lines = ["OK", "", "|".join(columns) + "|"]
        lines.extend(
            "|".join(row.get(c, "") for c in columns) + "|" for row in self.rows(node, ref, now)
        )
        response = _text("\n".join(lines) + "\n")
        response.headers[WORLD_TIME_HEADER] = str(now)
        return response

    def _session_call(
        self, node_text: str, ref: str, auth_code: str | None, request: web.Request
    ) -> tuple[int, str | None, int, str]:
        """(world second, failure code or None, node, ref) of one getSession, either API."""
        now = self.advance()
        if self.expire_rate and self._expiry_rng.random() < self.expire_rate:
            self.expire_logins()
        code = self._forced("getSession") or self._authorize(auth_code, request)
        if code is None and node_text and not self._node_exists(node_text, ref):
            code = "INVALIDPARAM_NODE"
        node, ref = (int(node_text), ref) if node_text and code is None else (GROUP_ID, "NODE")
        return now, code, node, ref

    def rows(self, node: int, ref: str, now: int) -> list[dict[str, str]]:
        """The rows a getSession of `node` lists at `now`, text columns as keys."""
        return [
            row
            for s in sorted(self.sessions(node, ref), key=lambda s: s.id)
            for row in self._rows(s, now)
        ]

    # -- SOAP (API.asmx) -------------------------------------------------------------

    async def _soap(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            RecordedRequest(
                request.path,
                request.method,
                dict(request.query),
                {},
                request.headers.get("Cookie", ""),
            )
        )
        try:
            root = parse_xml(body)
        except ParseError:
            return _soap_fault(SOAP12_NAMESPACE, "malformed request")
        envelope = etree.QName(root).namespace or ""
        if envelope not in (SOAP11_NAMESPACE, SOAP12_NAMESPACE):
            return _soap_fault(SOAP12_NAMESPACE, "not a SOAP envelope")
        call = root.find(f"{{{envelope}}}Body/*")
        if call is None or etree.QName(call).namespace != API_NAMESPACE:
            return _soap_fault(envelope, "no operation in the API namespace")
        params = {etree.QName(e).localname: (e.text or "") for e in call}
        operation = etree.QName(call).localname
        if operation == "login":
            code = self._login_code(
                {"email": params.get("sEmail", ""), "pwd": params.get("sPassword", "")}
            )
            result = {
                "OK": "login_OK",
                "INVALID": "login_Failed",
                "LIMITREACHED": "login_LimitReached",
            }.get(code, "login_Error")
            return self._with_cookie(_soap_response(envelope, "login", result, ""))
        if operation != "getSession_V3":
            return _soap_fault(envelope, f"unknown operation {operation}")
        now, failure, node, ref = self._session_call(
            params.get("iNodeID", ""),
            params.get("eNodeRef", "NODE"),
            params.get("sAuthCode") or None,
            request,
        )
        if failure is not None:
            return _soap_response(
                envelope, "getSession_V3", SOAP_RESULT.get(failure, "getSession_Error"), ""
            )
        sessions = "".join(self._soap_session(row) for row in self.rows(node, ref, now))
        response = _soap_response(
            envelope, "getSession_V3", "getSession_OK", f"<aSessions>{sessions}</aSessions>"
        )
        response.headers[WORLD_TIME_HEADER] = str(now)
        return response

    def _soap_session(self, row: dict[str, str]) -> str:
        english = row["_status"]
        values = {
            "iID": row["ID"],
            "bStatus": SOAP_ENUM[english],
            "sStatus": row["Status"],
            "iEntry": row["Entry ID"],
            "sEntry": row["Entry"],
            "iTechnician": row["Technician ID"],
            "sTechnician": row["Technician"],
            "sStartTime": row["_start_seconds"],
            "iWaitingTimeInSec": row["Waiting Time"],
            "sCustomField0": row["Custom Field 0"],
            "sCustomField1": row["Custom Field 1"],
            "sLanguage": row["Language"],
            "bIsLead": "true" if row["Is Lead Technician"] else "false",
            "bHandingOff": "false",
        }
        # Empty strings as self-closing elements, as the captures have them.
        fields = "".join(
            f"<{name}>{escape(values[name])}</{name}>" if values.get(name) else f"<{name}/>"
            for name in SOAP_FIELDS
        )
        return f"<SESSION_V3>{fields}</SESSION_V3>"

    def _authorize(self, auth_code: str | None, request: web.Request) -> str | None:
        params = {} if auth_code is None else {"authcode": auth_code}
        if "authcode" in params:
            if params["authcode"] != self.auth_code:
                return "INVALID_SECRETAUTHCODE"
        else:
            cookie = request.cookies.get("ASP.NET_SessionId", "")
            used = self.cookies.get(cookie)
            if used is None or self.clock.time() - used >= IDLE_EXPIRY:
                self.cookies.pop(cookie, None)
                return "NOTLOGGEDIN"
            self.cookies[cookie] = self.clock.time()
        return "USER_DELETED_OR_DISABLED" if self.disabled else None

    def _node_exists(self, node: str, ref: str) -> bool:
        if not node.isdigit():
            return False
        ids = (
            {c.id for c in CHANNELS}
            if ref == "CHANNEL"
            else {GROUP_ID} | {t.id for t in TECHNICIANS}
        )
        return int(node) in ids

    def _rows(self, s: SimSession, now: int) -> list[dict[str, str]]:
        """The session's lead row, and its helper's row once the helper has joined."""
        seg = s.segment(now)
        assert seg is not None  # noqa: S101 - rows() lists only sessions present at t
        status, since = seg
        # Waiting (and never picked-up Offline) channel rows have technician 0, no name.
        shown_tech = s.channel is None or now >= s.picked_up_at
        lead = self._row(
            s, status, s.created, now - since, s.technician if shown_tech else None, lead=True
        )
        if s.helper is None or now < s.helper[1] or status == WAITING:
            return [lead]
        helper, joined = s.helper
        return [lead, self._row(s, status, joined, now - max(joined, since), helper, lead=False)]

    def _row(
        self,
        s: SimSession,
        status: str,
        start: int,
        waiting: int,
        technician: Technician | None,
        *,
        lead: bool,
    ) -> dict[str, str]:
        started = datetime.fromtimestamp(start, self.zone)
        hour = started.hour % 12 or 12
        day = f"{started.month}/{started.day}/{started.year} {hour}:{started.minute:02d}"
        meridiem = "PM" if started.hour >= 12 else "AM"
        return {
            "ID": str(s.id),
            "Status": PORTUGUESE.get(status, status) if self.language == "pt" else status,
            "Entry ID": str(s.channel.id) if s.channel else "0",
            "Entry": s.channel.name if s.channel else "",
            "Technician ID": str(technician.id) if technician else "0",
            "Technician": technician.name if technician else "",
            # The text API shows no seconds; SOAP does.
            "Start Time": f"{day} {meridiem}",
            "Waiting Time": str(waiting),
            "Custom Field 0": s.custom[0],
            "Custom Field 1": s.custom[1],
            "Language": s.language,
            "Is Lead Technician": YES.get(self.language, "yes") if lead else "",
            "_status": status,
            "_start_seconds": f"{day}:{started.second:02d} {meridiem}",
        }

    def demo_accounts(self, base_url: str) -> list[dict[str, Any]]:
        return [
            {
                "name": "demo-helpdesk",
                "base_url": base_url,
                "interval": "5s",
                "auth_code": self.auth_code,
                "nodes": [
                    {"id": GROUP_ID, "ref": "NODE"},
                    {"id": CHANNELS[0].id, "ref": "CHANNEL"},
                ],
                "labels": ["channel"],
            }
        ]


def _text(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/plain", charset="utf-8")


def _soap_response(envelope: str, operation: str, result: str, rest: str) -> web.Response:
    body = (
        f'<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope xmlns:soap="{envelope}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body>'
        f'<{operation}Response xmlns="{API_NAMESPACE}">'
        f"<{operation}Result>{result}</{operation}Result>{rest}"
        f"</{operation}Response></soap:Body></soap:Envelope>"
    )
    return web.Response(body=body.encode(), content_type=_soap_type(envelope), charset="utf-8")


def _soap_fault(envelope: str, reason: str) -> web.Response:
    body = (
        f'<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope xmlns:soap="{envelope}">'
        f"<soap:Body><soap:Fault><faultstring>{escape(reason)}</faultstring></soap:Fault>"
        "</soap:Body></soap:Envelope>"
    )
    return web.Response(
        status=500, body=body.encode(), content_type=_soap_type(envelope), charset="utf-8"
    )


def _soap_type(envelope: str) -> str:
    return "text/xml" if envelope == SOAP11_NAMESPACE else "application/soap+xml"


def malformed_reply(body: bytes) -> bytes:
    """The vendor's own kind of wrong: a table without its return value (the status line
    gone), or a SOAP reply with a result code nobody documents."""
    if body.startswith(b"<?xml"):
        return body.replace(b"getSession_OK", b"getSession_Unexpected")
    _, _, rest = body.partition(b"\n")
    return rest or b"ID|Status|\n"
