"""A Glance Activity Service on loopback, with a seeded, moving population of sessions.

Every session's whole life (arrival, wait, time active, final status) is drawn when it
arrives, from one seeded generator, in arrival order. The world at time t is therefore a
pure function of the seed and t, however often and whenever it is asked: requests and
the ground-truth accessors first advance it to the injected clock's now.
"""

from __future__ import annotations

import bisect
import copy
import functools
import random
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from lxml import etree

from ..clock import Clock
from .base import RECENT_REQUESTS, Simulator
from .faults import Faults

# The vendor's limits and names, from ../shared/vendor-docs/glance-activity-service.txt,
# written here rather than imported from the client: a wrong constant in the client must
# be caught by this double, not shared with it.
NS = "http://www.glancenetworks.com/services"  # every reply's xmlns
OPERATIONS = (  # the six methods of the Activity Service
    "PartnerActiveSessions",
    "PartnerSessionCounts",
    "PartnerSessionCountsEnding",
    "PartnerCompletedSessions",
    "PartnerCompletedSessionsEnding",
    "PartnerUserSessions",
)
MAX_WINDOW = 31 * 86400  # "The maximum range is 31 days."
PAGE_SIZE = 1000  # nResults "must be between 1 and 1000"

DEMO_PARTNER_ID = 20417
DEMO_API_KEY = "demo-glance-api-key-not-secret"  # public on purpose: the simulator's only key

XSD = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
EAST = ZoneInfo("America/New_York")  # Glance reads a date without a zone as US East time

# (partnerUserId, userName, firstName, lastName, weight): two busy users for the demo.
USERS = (
    ("JDemo", "demo.glance.net", "Jack", "Demo", 4.0),
    ("ASmith", "asmith.glance.net", "Alice", "Smith", 4.0),
    ("BJones", "bjones.glance.net", "Bob", "Jones", 1.0),
    ("CLee", "clee.glance.net", "Chen", "Lee", 1.0),
    ("DGarcia", "dgarcia.glance.net", "Dana", "Garcia", 1.0),
    ("EMartin", "emartin.glance.net", "Emil", "Martin", 1.0),
    ("FNguyen", "fnguyen.glance.net", "Fran", "Nguyen", 1.0),
    ("GBrown", "gbrown.glance.net", "Gus", "Brown", 1.0),
)
SESSION_TYPES: Mapping[str, float] = {"C": 0.5, "G": 0.35, "V": 0.15}
# Sessions an agent joined end mostly Completed; the other letters are undocumented
# outcomes. Q and T happen only to sessions nobody joined (below).
FINAL_STATUSES: Mapping[str, float] = {
    "C": 0.86,
    "X": 0.05,
    "D": 0.02,
    "E": 0.02,
    "J": 0.015,
    "K": 0.015,
    "L": 0.01,
    "U": 0.01,
}
# Sessions no agent joined: the visitor gave up (Q), timed out (T), or the session was
# closed otherwise (X, L, U: an answered-looking X without an agent has no wait).
UNJOINED_STATUSES: Mapping[str, float] = {"Q": 0.4, "T": 0.3, "X": 0.2, "L": 0.05, "U": 0.05}
# Share of sessions no agent ever joins.
UNJOINED_SHARE = 0.12
MAX_LIFETIME = 600 + 7200 + 1  # longest wait + longest active time, seconds
# Sessions older than this are forgotten, so a demo that runs for months stays small: three
# of the doc's 31-day windows back, more than any query of ours or of a test reaches.
RETENTION = 3 * MAX_WINDOW
END_STYLES = ("empty_page", "zero", "same")
# Every reply says at which instant of the world it was computed, so a test running the
# real clock can tell exactly what a poll could have seen.
WORLD_TIME_HEADER = "X-Simulator-Time"


@dataclass(frozen=True)
class SimSession:
    id: int
    type: str
    user: str
    start: int
    wait: int
    active: int  # 0: nobody joined, the session ended while waiting
    final_status: str
    guests: int
    key: str

    @property
    def end(self) -> int:
        return self.start + self.wait + self.active

    @property
    def joined(self) -> bool:
        """An agent joined the waiting visitor (at start + wait)."""
        return self.active > 0

    @property
    def outcome(self) -> str:
        """Ground truth in the exporter's outcome vocabulary."""
        return {"C": "answered", "X": "answered", "Q": "abandoned", "T": "timed_out"}.get(
            self.final_status, "other"
        )

    @property
    def observed_wait(self) -> int | None:
        """The wait the exporter must observe: the agent's arrival after the visitor's
        for sessions an agent joined, the whole session for Q and T, else none."""
        if self.final_status in ("Q", "T"):
            return self.duration
        return self.wait if self.joined else None

    @property
    def duration(self) -> int:
        return self.end - self.start

    def status_at(self, now: float) -> str:
        if now < self.start + self.wait:
            return "W"
        if now < self.end:
            return "A"
        return self.final_status

    def in_progress(self, now: float) -> bool:
        return self.start <= now < self.end

    def completed(self, now: float) -> bool:
        return self.end <= now


class AsmxError(Exception):
    """What an ASMX service answers with HTTP 500 and a plain-text message."""


class GlanceSimulator(Simulator):
    def __init__(
        self,
        clock: Clock,
        seed: int = 0,
        *,
        history: float = 2 * 86400,
        rate: float = 4 / 60,
        partner_id: int = DEMO_PARTNER_ID,
        api_key: str = DEMO_API_KEY,
        session_types: Mapping[str, float] = SESSION_TYPES,
        final_statuses: Mapping[str, float] = FINAL_STATUSES,
        end_style: str = "empty_page",
    ) -> None:
        if end_style not in END_STYLES:
            raise ValueError(f"end_style must be one of {END_STYLES}")
        self.clock = clock
        self.faults = Faults(seed, malformed=malformed_reply)
        self.partner_id = partner_id
        self.api_key = api_key
        self.end_style = end_style
        self.rate = rate
        # The latest requests (operation, parameters), for tests; bounded for the demo.
        self.requests: deque[tuple[str, dict[str, str]]] = deque(maxlen=RECENT_REQUESTS)
        self._rng = random.Random(seed)
        self._types = session_types
        self._finals = final_statuses
        self._users = [u[0] for u in USERS]
        self._user_weights = [u[4] for u in USERS]
        self._sessions: list[SimSession] = []
        self._starts: list[int] = []
        self._completed_xml: dict[SimSession, etree._Element] = {}  # see `_sessions_xml`
        self._next_id = 61_000_000
        self._now = clock.time() - history
        # Never forget what the caller asked to have in the past (the benchmarks' long feeds).
        self._retention = max(RETENTION, history + MAX_LIFETIME)
        self._next_arrival = self._now
        self.advance()

    # -- the world ---------------------------------------------------------------------

    def advance(self) -> float:
        """Bring the world up to the clock; draws happen in arrival order only."""
        now = self.clock.time()
        while self._next_arrival <= now:
            self._arrive(int(self._next_arrival))
            self._next_arrival += self._rng.expovariate(self.rate)
        self._now = max(self._now, now)
        self._forget(self._now - self._retention)
        return self._now

    def _forget(self, before: float) -> None:
        """Drop sessions that started before `before`, in batches (cheap per request)."""
        if self._starts and self._starts[0] < before:
            i = bisect.bisect_left(self._starts, before)
            if i >= 1000 or i == len(self._starts):
                for forgotten in self._sessions[:i]:
                    self._completed_xml.pop(forgotten, None)
                del self._starts[:i], self._sessions[:i]

    def _arrive(self, start: int) -> None:
        rng = self._rng
        session_type = _pick(rng, self._types)
        user = rng.choices(self._users, self._user_weights)[0]
        roll = rng.random()
        wait = (
            rng.randint(3, 30)
            if roll < 0.7
            else (rng.randint(30, 180) if roll < 0.95 else rng.randint(180, 600))
        )
        if rng.random() < UNJOINED_SHARE:
            active, final = 0, _pick(rng, UNJOINED_STATUSES)
        else:
            long_one = rng.random() < 0.05
            active = (
                rng.randint(1800, 7200)
                if long_one
                else int(30 + min(5400.0, rng.expovariate(1 / 240)))
            )
            final = _pick(rng, self._finals)
        self._sessions.append(
            SimSession(
                id=self._next_id,
                type=session_type,
                user=user,
                start=start,
                wait=wait,
                active=active,
                final_status=final,
                guests=rng.randint(1, 3),
                key=str(rng.randint(1000, 9999)),
            )
        )
        self._starts.append(start)
        self._next_id += rng.randint(1, 40)  # ids are shared with other partners: gaps

    def _started_between(self, lo: float, hi: float) -> list[SimSession]:
        i = bisect.bisect_left(self._starts, lo)
        j = bisect.bisect_right(self._starts, hi)
        return self._sessions[i:j]

    # -- ground truth for tests --------------------------------------------------------

    @property
    def sessions(self) -> list[SimSession]:
        self.advance()
        return list(self._sessions)

    def in_progress(self) -> list[SimSession]:
        now = self.advance()
        return [s for s in self._started_between(now - MAX_LIFETIME, now) if s.in_progress(now)]

    def completed_ended(self, lo: float, hi: float) -> list[SimSession]:
        """Completed sessions that ended in [lo, hi], as PartnerCompletedSessionsEnding."""
        now = self.advance()
        return [
            s
            for s in self._started_between(lo - MAX_LIFETIME, hi)
            if lo <= s.end <= hi and s.completed(now)
        ]

    def completed_started(self, lo: float, hi: float) -> list[SimSession]:
        """Completed sessions that started in [lo, hi], as PartnerCompletedSessions."""
        now = self.advance()
        return [s for s in self._started_between(lo, hi) if s.completed(now)]

    def user_in_progress(self, user: str, lo: float, hi: float) -> list[SimSession]:
        now = self.advance()
        return [s for s in self._started_between(lo, hi) if s.user == user and s.in_progress(now)]

    def session_counts(
        self, lo: float, hi: float, status: str, session_type: str = ""
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """(type, status) -> (count, averageDuration) for sessions started in [lo, hi]."""
        now = self.advance()
        rows: list[tuple[SimSession, str, float]] = []
        for s in self._started_between(lo, hi):
            if status == "A" and s.in_progress(now):
                rows.append((s, s.status_at(now), now - s.start))
            elif status == "C" and s.completed(now):
                rows.append((s, s.final_status, s.duration))
        return _group(rows, session_type)

    def session_counts_ending(
        self, lo: float, hi: float, session_type: str = ""
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """(type, status) -> (count, averageDuration) for sessions ended in [lo, hi]."""
        rows = [(s, s.final_status, float(s.duration)) for s in self.completed_ended(lo, hi)]
        return _group(rows, session_type)

    # -- HTTP --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = self.new_app()
        app.router.add_route("POST", "/services/activityservice.asmx/{op}", self._handle)
        app.router.add_route("GET", "/services/activityservice.asmx/{op}", self._handle)
        return app

    def demo_accounts(self, base_url: str) -> list[dict[str, Any]]:
        return [
            {
                "name": "demo-glance",
                "base_url": base_url,
                "partner_id": self.partner_id,
                "api_key": self.api_key,
                "users": ["JDemo", "ASmith"],
                "interval": "5s",
                # The last hour's sessions at once, so service level, abandonment and speed of
                # answer have data within the demo's first minutes (a Q is a few an hour).
                "lookback": "1h",
            }
        ]

    async def _handle(self, request: web.Request) -> web.Response:
        operation = request.match_info["op"]
        form: Mapping[str, object] = (
            await request.post() if request.method == "POST" else request.query
        )
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        self.requests.append((operation, params))
        try:
            if operation not in OPERATIONS:
                raise AsmxError(
                    "System.InvalidOperationException: Request format is unrecognized for "
                    f"URL unexpectedly ending in '/{operation}'."
                )
            self._authenticate(params)
            now = self.advance()
            root = self._handlers()[operation](params, now)
        except AsmxError as exc:
            return web.Response(
                status=500,
                text=f"{exc}\r\n   at Glance.Services.ActivityService.{operation}()",
                content_type="text/plain",
            )
        body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
        return web.Response(
            body=body,
            content_type="text/xml",
            charset="utf-8",
            headers={WORLD_TIME_HEADER: repr(now)},
        )

    def _handlers(self) -> dict[str, Callable[[dict[str, str], float], etree._Element]]:
        return {
            "PartnerActiveSessions": self._op_active,
            "PartnerSessionCounts": self._op_counts,
            "PartnerSessionCountsEnding": self._op_counts_ending,
            "PartnerCompletedSessions": self._op_completed_started,
            "PartnerCompletedSessionsEnding": self._op_completed_ending,
            "PartnerUserSessions": self._op_user_sessions,
        }

    def _authenticate(self, params: Mapping[str, str]) -> None:
        partner = _need(params, "partnerId")
        key = _need(params, "apiKey")
        if not partner.strip().isdigit():
            raise AsmxError(
                f"System.ArgumentException: Cannot convert {partner[:40]} to "
                "System.Int32.\r\nParameter name: partnerId"
            )
        if int(partner) != self.partner_id or key != self.api_key:
            raise AsmxError(
                "System.Security.Authentication.AuthenticationException: "
                "Invalid partnerId or apiKey."
            )

    def _op_active(self, params: dict[str, str], now: float) -> etree._Element:
        root = _new_root("ArrayOfActiveSession")
        for s in self.in_progress():
            item = _sub(root, "activeSession")
            name, first, last = _user_names(s.user)
            status = s.status_at(now)
            for tag, value in (
                ("id", s.id),
                ("type", s.type),
                ("status", status),
                ("startTime", _utc(s.start)),
                ("key", s.key),
                ("isReverse", "false"),
                ("userName", name),
                ("firstName", first),
                ("lastName", last),
                ("partnerUserId", s.user),
                ("nguests", s.guests if status == "A" else 0),
            ):
                _sub(item, tag, value)
        return root

    def _op_counts(self, params: dict[str, str], now: float) -> etree._Element:
        session_type = _need(params, "type", optional_value=True)
        status = _need(params, "status")
        if status not in ("A", "C"):
            raise AsmxError('System.ArgumentException: status must be "A" or "C".')
        lo, hi = _range(params)
        return _counts_xml(self.session_counts(lo, hi, status, session_type))

    def _op_counts_ending(self, params: dict[str, str], now: float) -> etree._Element:
        session_type = _need(params, "type", optional_value=True)
        lo, hi = _range(params)
        return _counts_xml(self.session_counts_ending(lo, hi, session_type))

    def _op_completed_started(self, params: dict[str, str], now: float) -> etree._Element:
        return self._completed(params, now, ending=False)

    def _op_completed_ending(self, params: dict[str, str], now: float) -> etree._Element:
        return self._completed(params, now, ending=True)

    def _completed(self, params: dict[str, str], now: float, ending: bool) -> etree._Element:
        lo, hi = _range(params)
        key = _need(params, "sessionKey", optional_value=True)
        n_results = _int_param(params, "nResults")
        if not 1 <= n_results <= PAGE_SIZE:
            raise AsmxError(
                "System.ArgumentOutOfRangeException: nResults must be between 1 "
                "and 1000.\r\nParameter name: nResults"
            )
        next_id = _int_param(params, "nextId")
        found = self.completed_ended(lo, hi) if ending else self.completed_started(lo, hi)
        matches = [s for s in found if s.id >= next_id and (not key or s.key == key)]
        page, rest = matches[:n_results], matches[n_results:]
        if self.end_style == "empty_page":
            reply_next = page[-1].id + 1 if page else next_id
        elif rest:
            reply_next = rest[0].id
        else:
            reply_next = 0 if self.end_style == "zero" else next_id
        root = _new_root("groupSessions")
        _sub(root, "nextId", reply_next)
        users = _sub(root, "users")
        by_user: dict[str, list[SimSession]] = {}
        for s in page:
            by_user.setdefault(s.user, []).append(s)
        for user, sessions in by_user.items():
            group = _sub(users, "userSessions")
            _sub(group, "userName", _user_names(user)[0])
            _sub(group, "partnerUserId", user)
            _sub(group, "validUser", "true")
            _sessions_xml(group, sessions, now, self._completed_xml)
        return root

    def _op_user_sessions(self, params: dict[str, str], now: float) -> etree._Element:
        user = _need(params, "partnerUserId")
        status = _need(params, "status")
        key = _need(params, "sessionKey", optional_value=True)
        if status not in ("A", "C"):
            raise AsmxError('System.ArgumentException: status must be "A" or "C".')
        lo, hi = _range(params)
        root = _new_root("userSessions")
        valid = user in self._users
        _sub(root, "validUser", "true" if valid else "false")
        chosen = (
            [
                s
                for s in self._started_between(lo, hi)
                if s.user == user
                and (not key or s.key == key)
                and (s.in_progress(now) if status == "A" else s.completed(now))
            ]
            if valid
            else []
        )
        _sessions_xml(root, chosen, now, self._completed_xml)
        return root


# -- helpers -----------------------------------------------------------------------------


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def _user_names(user: str) -> tuple[str, str, str]:
    for pid, name, first, last, _ in USERS:
        if pid == user:
            return name, first, last
    return "", "", ""


def _group(
    rows: Iterable[tuple[SimSession, str, float]], session_type: str
) -> dict[tuple[str, str], tuple[int, int]]:
    totals: dict[tuple[str, str], list[float]] = {}
    for s, status, duration in rows:
        if session_type and s.type != session_type:
            continue
        totals.setdefault((s.type, status), []).append(duration)
    return {k: (len(v), round(sum(v) / len(v))) for k, v in sorted(totals.items())}


def _counts_xml(groups: Mapping[tuple[str, str], tuple[int, int]]) -> etree._Element:
    root = _new_root("ArrayOfSessionCount")
    for (session_type, status), (count, average) in groups.items():
        item = _sub(root, "sessionCount")
        _sub(item, "type", session_type)
        _sub(item, "status", status)
        _sub(item, "count", count)
        _sub(item, "averageDuration", average)
    return root


def _sessions_xml(
    parent: etree._Element,
    sessions: Iterable[SimSession],
    now: float,
    memo: dict[SimSession, etree._Element],
) -> None:
    container = _sub(parent, "sessions")
    for s in sessions:
        if not s.completed(now):
            _session_xml(container, s, now)
            continue
        # A completed session's element no longer depends on the time: built once and
        # copied (in C) into every later reply, so many accounts polling one world do not
        # queue on this process building the same elements (bench/accounts.py).
        cached = memo.get(s)
        if cached is None:
            cached = memo[s] = _session_xml(_MEMO_PARENT, s, now)
            _MEMO_PARENT.remove(cached)
        container.append(copy.deepcopy(cached))


def _session_xml(container: etree._Element, s: SimSession, now: float) -> etree._Element:
    done = s.completed(now)
    elapsed = s.duration if done else int(now - s.start)
    item = _sub(container, "session")
    for tag, value in (
        ("id", s.id),
        ("type", s.type),
        ("status", s.status_at(now)),
        ("startTime", _utc(s.start)),
        ("key", s.key),
        ("width", 0),
        ("height", 0),
        ("duration", elapsed),
        ("kbytes", 20 + elapsed // 20),
        ("isReverse", "false"),
    ):
        _sub(item, tag, value)
    guests = _sub(item, "guests")
    # The visitor starts the session and waits; an agent joins after `wait`, further
    # visitors after the agent (like the documented sample: visitor, then agent).
    joined = s.joined and now >= s.start + s.wait
    people = [("visitor", s.start)]
    if joined:
        answered = s.start + s.wait
        people.append(("agent", answered))
        people.extend(("visitor", answered + n) for n in range(1, s.guests))
    for kind, since in people:
        guest = _sub(guests, "guest")
        for tag, value in (
            ("type", kind),
            ("status", "C" if done else "A"),
            ("startTime", _utc(since)),
            ("duration", elapsed),
            ("kbytes", 10 + elapsed // 40),
            ("ip", "192.0.2.10"),
        ):
            _sub(guest, tag, value)
        where = _sub(guest, "location")
        _sub(where, "city", "Boston")
        _sub(where, "region", "MA")
        _sub(where, "countryCode", "US")
    return item


def _new_root(tag: str) -> etree._Element:
    """A root element declaring the namespaces exactly as the documented replies do."""
    return etree.fromstring(f'<{tag} xmlns="{NS}" xmlns:xsd="{XSD}" xmlns:xsi="{XSI}"/>')


# Where `_sessions_xml` builds the elements it keeps: under the replies' own namespace
# declarations, so a copy appended to a reply serialises exactly as one built in place.
_MEMO_PARENT = _new_root("sessions")


def _sub(parent: etree._Element, tag: str, value: object = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{NS}}}{tag}")
    if value is not None:
        child.text = str(value)
    return child


@functools.lru_cache(maxsize=65536)
def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _need(params: Mapping[str, str], name: str, optional_value: bool = False) -> str:
    """ASMX needs every parameter present; some may be empty ("value is optional")."""
    value = params.get(name)
    if value is None or (not optional_value and not value.strip()):
        raise AsmxError(f"System.InvalidOperationException: Missing parameter: {name}.")
    return value.strip()


def _int_param(params: Mapping[str, str], name: str) -> int:
    text = _need(params, name)
    try:
        return int(text)
    except ValueError:
        raise AsmxError(
            f"System.ArgumentException: Cannot convert {text[:40]} to "
            f"System.Int32.\r\nParameter name: {name}"
        ) from None


_DATE = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{1,2}(?::?\d{2})?)?)?"
)


def parse_glance_date(text: str) -> float:
    """Dates as the web services conventions describe them, zone-less ones in US East."""
    match = _DATE.fullmatch(text.strip())
    if match is None:
        raise AsmxError("System.FormatException: String was not recognized as a valid DateTime.")
    day, clock_time, zone = match.groups()
    try:
        naive = datetime.fromisoformat(f"{day}T{clock_time or '00:00:00'}")
    except ValueError:
        raise AsmxError(
            "System.FormatException: String was not recognized as a valid DateTime."
        ) from None
    if zone == "Z":
        return naive.replace(tzinfo=UTC).timestamp()
    if zone:
        digits = zone[1:]
        if ":" in digits:
            hours, minutes = digits.split(":")
        else:
            hours, minutes = (digits[:-2], digits[-2:]) if len(digits) > 2 else (digits, "0")
        sign = -1 if zone[0] == "-" else 1
        try:
            offset = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
        except ValueError:
            raise AsmxError("System.FormatException: The UTC offset is out of range.") from None
        return naive.replace(tzinfo=offset).timestamp()
    return naive.replace(tzinfo=EAST).timestamp()


def _range(params: Mapping[str, str]) -> tuple[float, float]:
    lo = parse_glance_date(_need(params, "startRange"))
    hi = parse_glance_date(_need(params, "endRange"))
    if hi < lo:
        raise AsmxError("System.ArgumentException: endRange is before startRange.")
    if hi - lo > MAX_WINDOW:
        raise AsmxError("System.ArgumentException: The maximum range is 31 days.")
    return lo, hi


def malformed_reply(body: bytes) -> bytes:
    """Well-formed XML that is not what was asked for: the root element renamed."""
    start = body.find(b"<", body.find(b"?>") + 1)
    end = body.find(b" ", start)
    if start < 0 or end < 0:
        return b"<unexpected/>"
    root = body[start + 1 : end]
    return body.replace(b"<" + root, b"<unexpected", 1).replace(
        b"</" + root + b">", b"</unexpected>", 1
    )
