"""Shared set-up for the SecureVideo tests: an account, a collector and its Upstream."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.core import Metric

from exporter.admission import Admission
from exporter.config import parse_config
from exporter.http import Upstream, new_client_session
from exporter.selfmetrics import SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.simulators.securevideo import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    SecureVideoSimulator,
)
from exporter.simulators.securevideo_world import World
from exporter.vendors.base import CollectorContext
from exporter.vendors.securevideo import VENDOR
from exporter.vendors.securevideo.collector import SecureVideoCollector
from exporter.vendors.securevideo.config import SecureVideoAccount

from ..support import collector_context, family_samples

ACCOUNT = "clinic"


def account(base_url: str, **fields: Any) -> SecureVideoAccount:
    entry = {
        "name": ACCOUNT,
        "base_url": base_url,
        "api_key": DEMO_API_KEY,
        "api_secret": DEMO_API_SECRET,
        **fields,
    }
    config = parse_config({"securevideo": [entry]}, {"securevideo": VENDOR})
    result = config.accounts[0]
    assert isinstance(result, SecureVideoAccount)
    return result


@dataclass
class Harness:
    clock: FakeClock
    upstream: Upstream
    metrics: SelfMetrics
    rejected: Counter[str] = field(default_factory=Counter)

    def context(self, started_at: float | None = None, limit: int = 50) -> CollectorContext:
        return collector_context(
            self.clock, self.rejected, started_at=started_at, label_limit=limit
        )

    def collector(
        self, acct: SecureVideoAccount, started_at: float | None = None, limit: int = 50
    ) -> SecureVideoCollector:
        return SecureVideoCollector(acct, self.context(started_at, limit))

    def failures(self) -> dict[tuple[str, str], float]:
        return {(op, reason): v for (_, _, op, reason), v in self.metrics.failures.values.items()}


@asynccontextmanager
async def harness(
    clock: FakeClock, max_body_bytes: int = 16 * 1024 * 1024
) -> AsyncIterator[Harness]:
    session = new_client_session()
    metrics = SelfMetrics()
    upstream = Upstream(
        session,
        vendor="securevideo",
        account=ACCOUNT,
        timeout=10.0,
        admission=Admission(4),
        metrics=metrics,
        max_body_bytes=max_body_bytes,
        wall_time=clock.time,
    )
    try:
        yield Harness(clock, upstream, metrics)
    finally:
        await session.close()


@asynccontextmanager
async def served(sim: SecureVideoSimulator) -> AsyncIterator[str]:
    server = TestServer(sim.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(families: Iterable[Metric]) -> Samples:
    """{(sample name, sorted labels): value}, as /metrics would expose them."""
    return family_samples(families)


def pick(
    all_samples: Samples, name: str, **labels: str
) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return {k: v for (n, k), v in all_samples.items() if n == name and want <= set(k)}


def total(all_samples: Samples, name: str, **labels: str) -> float:
    return sum(pick(all_samples, name, **labels).values())


NEW_YEARS_EVE = datetime(2025, 12, 31, 22, 30, tzinfo=UTC).timestamp()


@dataclass
class Truth:
    """What an exporter started at `started_at` and polling at the given times must show."""

    sessions: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    durations: dict[str, list[float]] = field(default_factory=dict)
    waits: dict[str, list[float]] = field(default_factory=dict)
    consults: dict[str, list[float]] = field(default_factory=dict)
    start_delays: dict[str, list[float]] = field(default_factory=dict)
    early_starts: Counter[str] = field(default_factory=Counter)
    _counted: set[int] = field(default_factory=set)
    _timed: set[int] = field(default_factory=set)
    _waited: set[int] = field(default_factory=set)

    def poll(self, world: World, t: float, started_at: float, feed_days: int = 2) -> None:
        t_ms = int(t * 1000)
        today = datetime.fromtimestamp(t, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        low = int((today - timedelta(days=feed_days - 1)).timestamp() * 1000)
        high = int(today.timestamp() * 1000) + 86_399_000
        for s in world.visible(t):
            if s.billable_ms is None or not s.connected(t_ms):
                continue
            if not low <= s.billable_ms < high or s.billable_ms / 1000 < started_at:
                continue
            sid, provider = s.session_id, s.provider_at(t_ms)
            if sid not in self._counted:
                self._counted.add(sid)
                status = s.status_at(t_ms)
                assert status is not None
                self.sessions[(status, s.schedule_type, provider)] += 1
                if s.schedule_type in ("Scheduled", "Rescheduled"):
                    # The simulator's times are whole milliseconds: exact in seconds.
                    delay = (s.billable_ms - s.schedule_ms) / 1000
                    self.early_starts[s.schedule_type] += delay < 0
                    self.start_delays.setdefault(s.schedule_type, []).append(max(0.0, delay))
            duration, wait = s.duration_at(t_ms), s.wait_at(t_ms)
            if duration is not None and sid not in self._timed:
                self._timed.add(sid)
                self.durations.setdefault(provider, []).append(duration * 60.0)
            if wait is not None and sid not in self._waited:
                self._waited.add(sid)
                self.waits.setdefault(provider, []).append(wait * 60.0)
                # WaitTime is null exactly when DurationMinutes is: both known at once.
                assert duration is not None
                self.consults.setdefault(provider, []).append(max(0, duration - wait) * 60.0)


def assert_matches(c: SecureVideoCollector, truth: Truth) -> None:
    m = samples(c.families())
    got = Counter(
        {
            (d["billable_status"], d["schedule_type"], d["provider"]): int(v)
            for d, v in ((dict(k), v) for k, v in pick(m, "securevideo_sessions_total").items())
        }
    )
    assert got == truth.sessions
    for name, observed in (
        ("securevideo_session_duration_seconds", truth.durations),
        ("securevideo_session_wait_seconds", truth.waits),
        ("securevideo_session_consult_seconds", truth.consults),
    ):
        for provider in ("Zoom", "One-Click", "VSee"):
            values = observed.get(provider, [])
            assert total(m, f"{name}_count", provider=provider) == len(values)
            assert total(m, f"{name}_sum", provider=provider) == pytest.approx(sum(values))
            le_600 = m.get(
                (
                    f"{name}_bucket",
                    (("account", "clinic"), ("le", "600.0"), ("provider", provider)),
                ),
                0.0,
            )
            assert le_600 == sum(1 for v in values if v <= 600)
    delay = "securevideo_session_start_delay_seconds"
    for schedule_type in ("Scheduled", "Rescheduled"):
        values = truth.start_delays.get(schedule_type, [])
        assert total(m, f"{delay}_count", schedule_type=schedule_type) == len(values)
        assert total(m, f"{delay}_sum", schedule_type=schedule_type) == pytest.approx(sum(values))
        for le in ("5.0", "20.0", "60.0", "180.0"):  # early starts are zeros under 5
            bucket = m[
                (
                    f"{delay}_bucket",
                    (("account", "clinic"), ("le", le), ("schedule_type", schedule_type)),
                )
            ]
            assert bucket == sum(1 for v in values if v <= float(le))
        assert (
            total(m, "securevideo_session_early_starts_total", schedule_type=schedule_type)
            == truth.early_starts[schedule_type]
        )


# The History JSON example from the vendor document, verbatim.
DOC_SAMPLE = b"""[
{
"SessionId": 105236,
"ScheduleTs": "2016-11-03T21:45:09.467",
"BillableTs": "2016-11-03T21:46:16.1",
"DurationMinutes": 25,
"WaitTime": 4,
"BillableStatusCd": "BILL",
"ScheduleType": "OnDemand",
"UserId": 4,
"UsageDescription": "Aaron Johnson Session #105236 with Trevor Stamp - Counted Session",
"ScheduledByUserId": 332,
"ReportableMeetingProvider": "Zoom"
},
{
"SessionId": 105022,
"ScheduleTs": "2016-11-03T22:00:00",
"BillableTs": "2016-11-03T21:56:30.72",
"DurationMinutes": 31,
"WaitTime": 0,
"BillableStatusCd": "SVCO",
"ScheduleType": "Rescheduled",
"UserId": 1,
"UsageDescription": "Iam Demo Session #105022 with George Washington, Alexander Hamilton, James Madison - Session with SecureVideo.com - does not count towards billable limits",
"ScheduledByUserId": null,
"ReportableMeetingProvider": "One-Click"
}
]"""  # noqa: E501
