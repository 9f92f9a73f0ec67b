"""The simulated SecureVideo population: sessions whose whole life is drawn at creation.

Time is cut into slots; each slot's sessions come from a generator seeded by (seed, slot),
and a session's fields at time t are a pure function of its drawn life and t. So the
world at t does not depend on when, or how often, anybody looked at it: tests can
replay any poll schedule against the same ground truth.

All times are whole milliseconds since the epoch, as SecureVideo's timestamps carry
at most millisecond precision here; accessors return seconds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

SLOT_MS = 30_000
# Forget sessions this old: no query the exporter makes reaches back further than a month.
RETENTION_MS = 40 * 86_400_000
FIRST_SESSION_ID = 100_000
HOSTS = (
    "Aaron Johnson",
    "Iam Demo",
    "Maria Lopez",
    "Wei Chen",
    "Sam Okafor",
    "Priya Nair",
    "Jon Berg",
    "Ada Novak",
)
PARTICIPANTS = tuple(f"patient{n}@example.org" for n in range(1, 41))
DESCRIPTIONS = {
    "BILL": "Counted Session",
    "SVCO": "Session with SecureVideo.com - does not count towards billable limits",
    "DUPL": "Likely Duplicate Session - does not count towards billable limits",
    "COMP": "Comped Session - does not count towards billable limits",
}


def _minutes_ceil(ms: int) -> int:
    return math.ceil(ms / 60_000)


def format_ts(ms: int) -> str:
    """SecureVideo style: UTC, no offset, fraction without trailing zeros (or none)."""
    whole = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ms % 1000:03d}".rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


@dataclass(frozen=True)
class SimSession:
    session_id: int
    created_ms: int
    schedule_ms: int
    schedule_type: str
    provider: str
    join_ms: int  # the first participant (or host) arrives
    billable_ms: int | None  # the second arrives; None: nobody else ever came
    end_ms: int  # the first call ends (or the lone party gives up)
    wait_minutes: int
    first_minutes: int
    reconnect: tuple[int, int] | None
    reconnect_minutes: int
    provider_after_reconnect: str
    duration_lost: bool  # SecureVideo never learns the end time
    status: str  # BILL or SVCO, as connected
    status_change: tuple[int, str] | None  # DUPL or COMP, after the fact
    host_user_id: int
    scheduled_by: int | None
    participants: tuple[str, ...]

    @property
    def billable_ts(self) -> float | None:
        return None if self.billable_ms is None else self.billable_ms / 1000

    def connected(self, t_ms: int) -> bool:
        return self.billable_ms is not None and self.billable_ms <= t_ms

    def provider_at(self, t_ms: int) -> str:
        if self.reconnect is not None and t_ms >= self.reconnect[0]:
            return self.provider_after_reconnect
        return self.provider

    def status_at(self, t_ms: int) -> str | None:
        if not self.connected(t_ms):
            return None
        if self.status_change is not None and t_ms >= self.status_change[0]:
            return self.status_change[1]
        return self.status

    def duration_at(self, t_ms: int) -> int | None:
        """DurationMinutes: null while the host is connected or if the end is unknown."""
        if t_ms < self.end_ms or self.duration_lost:
            return None
        if self.billable_ms is None:
            return self.first_minutes
        if self.reconnect is None or t_ms < self.reconnect[0]:
            return self.first_minutes
        if t_ms < self.reconnect[1]:
            return None
        return self.first_minutes + self.reconnect_minutes

    def wait_at(self, t_ms: int) -> int | None:
        return None if self.duration_at(t_ms) is None else self.wait_minutes

    def record(self, t_ms: int) -> dict[str, Any]:
        """The History JSON object as the API shows it at t."""
        connected = self.connected(t_ms)
        status = self.status_at(t_ms)
        host = HOSTS[self.host_user_id % len(HOSTS)]
        names = ", ".join(p.split("@")[0].title() for p in self.participants)
        what = DESCRIPTIONS[status] if status else "Not Connected"
        return {
            "SessionId": self.session_id,
            "ScheduleTs": format_ts(self.schedule_ms),
            "BillableTs": format_ts(self.billable_ms) if connected and self.billable_ms else None,
            "DurationMinutes": self.duration_at(t_ms),
            "WaitTime": self.wait_at(t_ms),
            "BillableStatusCd": status,
            "ScheduleType": self.schedule_type if connected else None,
            "UserId": self.host_user_id,
            "UsageDescription": f"{host} Session #{self.session_id} with {names} - {what}",
            "ScheduledByUserId": self.scheduled_by,
            "ReportableMeetingProvider": self.provider_at(t_ms),
        }


def _draw(rng: random.Random, session_id: int, slot_ms: int, quick: bool) -> SimSession:
    created = slot_ms + (rng.randrange(2_000, 6_000) if quick else rng.randrange(SLOT_MS))
    if quick:
        # One instant check-in per slot keeps every metric moving within a demo minute.
        schedule_type, provider = "OnDemand", rng.choice(("One-Click", "VSee"))
    else:
        schedule_type = rng.choices(("OnDemand", "Scheduled", "Rescheduled"), (5, 4, 1))[0]
        provider = rng.choices(("Zoom", "One-Click", "VSee"), (6, 3, 2))[0]
    if schedule_type == "OnDemand":
        schedule = created
        join = created + rng.randrange(1_000, 4_000 if quick else 40_000)
        scheduled_by = rng.choice((None, -1))
    else:
        quarter = 15 * 60_000
        schedule = (created // quarter + 1 + rng.randrange(2)) * quarter
        join = max(created + 1_000, schedule + rng.randrange(-120_000, 180_000))
        scheduled_by = rng.choice((None, 332, 17, -1))
    if quick:
        wait_ms = rng.randrange(1_000, 5_000)
    elif provider == "VSee" or rng.random() < 0.5:
        wait_ms = rng.randrange(1_000, 60_000)
    else:
        wait_ms = rng.randrange(60_000, 480_000)
    no_show = not quick and rng.random() < 0.06
    if no_show:
        billable, end = None, join + rng.randrange(120_000, 900_000)
        first = 0 if provider == "VSee" else _minutes_ceil(end - join)
        wait = first
    else:
        billable = join + wait_ms
        length = rng.randrange(8_000, 15_000) if quick else rng.randrange(180_000, 2_700_000)
        end = billable + length
        # Zoom and One-Click count the wait in the duration; VSee counts host-connected
        # time only and always reports a wait of 0.
        first = _minutes_ceil(end - billable if provider == "VSee" else end - join)
        wait = 0 if provider == "VSee" else wait_ms // 60_000
    reconnect: tuple[int, int] | None = None
    if not no_show and not quick and rng.random() < 0.12:
        start = end + rng.randrange(60_000, 900_000)
        reconnect = (start, start + rng.randrange(60_000, 900_000))
    switched = rng.choice(("Zoom", "One-Click", "VSee")) if rng.random() < 0.3 else provider
    status = "SVCO" if rng.random() < 0.05 else "BILL"
    change: tuple[int, str] | None = None
    if billable is not None and status == "BILL":
        roll = rng.random()
        if roll < 0.05:
            change = (billable + rng.randrange(30_000, 600_000), "DUPL")
        elif roll < 0.10:
            change = (end + rng.randrange(60_000, 3_600_000), "COMP")
    return SimSession(
        session_id=session_id,
        created_ms=created,
        schedule_ms=schedule,
        schedule_type=schedule_type,
        provider=provider,
        join_ms=join,
        billable_ms=billable,
        end_ms=end,
        wait_minutes=wait,
        first_minutes=first,
        reconnect=reconnect,
        reconnect_minutes=_minutes_ceil(reconnect[1] - reconnect[0]) if reconnect else 0,
        provider_after_reconnect=switched if reconnect else provider,
        duration_lost=not no_show and not quick and rng.random() < 0.02,
        status=status,
        status_change=change,
        host_user_id=rng.randrange(1, 9),
        scheduled_by=scheduled_by,
        participants=tuple(rng.sample(PARTICIPANTS, rng.randrange(1, 4))),
    )


class World:
    def __init__(self, seed: int, origin: float) -> None:
        self.seed = seed
        self._origin_slot = int(origin * 1000) // SLOT_MS
        self._next_slot = self._origin_slot
        self._next_id = FIRST_SESSION_ID
        self.sessions: list[SimSession] = []
        self.now_ms = self._origin_slot * SLOT_MS

    def advance_to(self, now: float) -> None:
        """Draw every slot that has begun by `now`; sessions only show once created."""
        now_ms = int(now * 1000)
        self.now_ms = max(self.now_ms, now_ms)
        last_slot = self.now_ms // SLOT_MS
        while self._next_slot <= last_slot:
            slot = self._next_slot
            rng = random.Random(f"securevideo:{self.seed}:{slot}")
            for i in range(1 + rng.choice((0, 0, 1, 1, 2))):
                self.sessions.append(_draw(rng, self._next_id, slot * SLOT_MS, quick=i == 0))
                self._next_id += 1
            self._next_slot += 1
        cutoff = self.now_ms - RETENTION_MS
        if self.sessions and self.sessions[0].created_ms < cutoff:
            self.sessions = [s for s in self.sessions if s.created_ms >= cutoff]

    def visible(self, t: float | None = None) -> Iterator[SimSession]:
        t_ms = self.now_ms if t is None else int(t * 1000)
        return (s for s in self.sessions if s.created_ms <= t_ms)

    def query(
        self,
        t: float,
        *,
        month: date | None = None,
        start: date | None = None,
        end: date | None = None,
        host_user_id: int | None = None,
        participant_email: str | None = None,
    ) -> list[dict[str, Any]]:
        """The History reply at t, with the documented filter semantics."""
        t_ms = int(t * 1000)
        low: int | None = None
        high: int | None = None
        if month is not None:  # Month takes precedence over StartDt and EndDt
            first = month.replace(day=1)
            following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            low, high = _day_ms(first), _day_ms(following)
        else:
            if start is not None:
                low = _day_ms(start)
            if end is not None:
                # "prior to 11:59:59pm UTC on the indicated end date", as documented
                high = _day_ms(end) + 86_399_000
        email = participant_email.lower() if participant_email else None
        result = []
        for s in self.visible(t):
            if (low is not None or high is not None) and not s.connected(t_ms):
                continue
            if low is not None and s.billable_ms is not None and s.billable_ms < low:
                continue
            if high is not None and s.billable_ms is not None and s.billable_ms >= high:
                continue
            if host_user_id is not None and s.host_user_id != host_user_id:
                continue
            if email is not None and email not in s.participants:
                continue
            result.append(s.record(t_ms))
        return result


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000
