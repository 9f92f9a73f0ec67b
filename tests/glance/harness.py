"""Shared helpers for the Glance tests: accounts, a loopback harness, metric reading."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.core import Metric

from exporter.admission import Admission
from exporter.config import AccountCommon, Fields, GlobalConfig
from exporter.http import Upstream, new_client_session
from exporter.selfmetrics import SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.simulators.glance import DEMO_API_KEY, DEMO_PARTNER_ID, GlanceSimulator, SimSession
from exporter.vendors.glance.client import GlanceClient
from exporter.vendors.glance.collector import GlanceCollector
from exporter.vendors.glance.config import GlanceAccount, parse_account

from ..mocking import mocked
from ..support import collector_context

__all__ = ["mocked"]


# 2026-03-10 15:00 UTC: New York is on EDT (UTC-4) since 2026-03-08.
NOON_ISH = datetime(2026, 3, 10, 15, 0, tzinfo=UTC).timestamp()

OUTCOMES = ("answered", "abandoned", "timed_out", "transferred", "other")
SAMPLES = Path(__file__).parent / "samples"
_MANGLED = re.compile(r"\[(https?://[^\]\s]+)\]\(\1\)")


def sample(name: str, unmangle: bool = True) -> bytes:
    """A reply exactly as the vendor doc prints it, minus its markdown link mangling."""
    text = (SAMPLES / f"{name}.xml").read_text(encoding="utf-8")
    return (_MANGLED.sub(r"\1", text) if unmangle else text).encode("utf-8")


def make_account(base_url: str, name: str = "acme", **fields: Any) -> GlanceAccount:
    data: dict[str, Any] = {"partner_id": DEMO_PARTNER_ID, "api_key": DEMO_API_KEY, **fields}
    common = AccountCommon("glance", name, base_url, 60.0, 10.0, 300.0)
    reader = Fields(data, "glance[0]")
    account = parse_account(reader, common, GlobalConfig())
    reader.check_unknown()
    return account


class RecordingLog:
    """Stands in for the structlog logger so tests can see what was logged."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _log(self, level: str, event: str, **kw: Any) -> None:
        self.events.append((level, event, kw))

    def debug(self, event: str, **kw: Any) -> None:
        self._log("debug", event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._log("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._log("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._log("error", event, **kw)


@dataclass
class Harness:
    clock: FakeClock
    sim: GlanceSimulator
    server: TestServer
    session: aiohttp.ClientSession
    metrics: SelfMetrics = field(default_factory=SelfMetrics)
    rejects: Counter[str] = field(default_factory=Counter)
    log: RecordingLog = field(default_factory=RecordingLog)

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def upstream(
        self,
        account: str = "acme",
        max_body_bytes: int = 16 * 1024 * 1024,
        clock: FakeClock | None = None,
    ) -> Upstream:
        """`clock`: ours, when it differs from the simulator's (which dates its replies)."""
        return Upstream(
            self.session,
            vendor="glance",
            account=account,
            timeout=5.0,
            admission=Admission(4),
            metrics=self.metrics,
            max_body_bytes=max_body_bytes,
            wall_time=(clock or self.clock).time,
        )

    def collector(
        self,
        *,
        started_at: float | None = None,
        page_size: int = 1000,
        label_limit: int = 50,
        name: str = "acme",
        limits: dict[str, int] | None = None,
        clock: FakeClock | None = None,
        **fields: Any,
    ) -> GlanceCollector:
        """`clock`: ours, when it differs from the simulator's."""
        account = make_account(self.base_url, name=name, **fields)

        ctx = collector_context(
            clock or self.clock,
            self.rejects,
            started_at=started_at,
            label_limit=label_limit,
            log=self.log,
            **(limits or {}),
        )
        client = GlanceClient(account, ctx, page_size=page_size)
        return GlanceCollector(account, ctx, client=client)

    def failures(self, reason: str | None = None) -> dict[tuple[str, ...], float]:
        return {
            k: v
            for k, v in self.metrics.failures.values.items()
            if reason is None or k[3] == reason
        }


async def start_harness(
    clock: FakeClock, sim: GlanceSimulator, app: web.Application | None = None
) -> Harness:
    server = TestServer(app or sim.app(), host="127.0.0.1")
    await server.start_server()
    return Harness(clock=clock, sim=sim, server=server, session=new_client_session())


async def stop_harness(h: Harness) -> None:
    await h.session.close()
    await h.server.close()


def series(families: Iterable[Metric], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples named `name` (a sample name, e.g. ``..._count``), keyed by sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in families:
        for s in family.samples:
            if s.name == name:
                found[tuple(sorted(s.labels.items()))] = s.value
    return found


def by_label(
    samples: dict[tuple[tuple[str, str], ...], float], *names: str
) -> dict[tuple[str, ...], float]:
    """Re-key samples by the values of the given labels."""
    out: dict[tuple[str, ...], float] = {}
    for labels, value in samples.items():
        d = dict(labels)
        out[tuple(d[n] for n in names)] = value
    return out


def completed(c: GlanceCollector) -> dict[tuple[str, ...], float]:
    return by_label(
        series(c.families(), "glance_sessions_completed_total"), "session_type", "status"
    )


def assert_feed_matches(h: Harness, c: GlanceCollector, lo: float) -> None:
    """Counts, durations and waits per session type and outcome equal the simulator's
    ground truth for the sessions that ended in [lo, now], exactly."""
    ended = h.sim.completed_ended(lo, h.clock.time())
    assert ended, "the simulator should have completed sessions in the range"
    assert nonzero(completed(c)) == truth(ended)
    families = list(c.families())
    readers: tuple[tuple[str, Callable[[SimSession], float | None]], ...] = (
        ("duration", lambda s: s.duration),
        ("wait", lambda s: s.observed_wait),
    )
    for name, value in readers:
        counts = by_label(
            series(families, f"glance_session_{name}_seconds_count"), "session_type", "outcome"
        )
        sums = by_label(
            series(families, f"glance_session_{name}_seconds_sum"), "session_type", "outcome"
        )
        types = {t for t, _ in counts}
        assert types >= {"C", "G", "V"}
        assert set(counts) == {(t, o) for t in types for o in OUTCOMES}, "zero-filled"
        for session_type in types:
            for outcome in OUTCOMES:
                mine = [
                    v
                    for s in ended
                    if s.type == session_type
                    and s.outcome == outcome
                    and (v := value(s)) is not None
                ]
                assert counts[(session_type, outcome)] == len(mine), (name, outcome)
                assert sums[(session_type, outcome)] == sum(mine), (name, outcome)


def truth(sessions: list[SimSession]) -> dict[tuple[str, ...], float]:
    return {k: float(v) for k, v in Counter((s.type, s.final_status) for s in sessions).items()}


def nonzero(counts: dict[tuple[str, ...], float]) -> dict[tuple[str, ...], float]:
    return {k: v for k, v in counts.items() if v}
