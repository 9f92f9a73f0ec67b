"""Shared helpers for the Glance tests: accounts, a loopback harness, metric reading."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.core import Metric

from exporter.config import AccountCommon, Fields, GlobalConfig
from exporter.http import Upstream, new_client_session
from exporter.selfmetrics import SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.simulators.glance import DEMO_API_KEY, DEMO_PARTNER_ID, GlanceSimulator
from exporter.vendors.base import CollectorContext
from exporter.vendors.glance.client import GlanceClient
from exporter.vendors.glance.collector import GlanceCollector
from exporter.vendors.glance.config import GlanceAccount, parse_account

from ..mocking import mocked

__all__ = ["mocked"]


# 2026-03-10 15:00 UTC: New York is on EDT (UTC-4) since 2026-03-08.
NOON_ISH = datetime(2026, 3, 10, 15, 0, tzinfo=UTC).timestamp()

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
    rejects: dict[str, int] = field(default_factory=dict)
    log: RecordingLog = field(default_factory=RecordingLog)

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def upstream(self, account: str = "acme", max_body_bytes: int = 16 * 1024 * 1024
                 ) -> Upstream:
        return Upstream(
            self.session, vendor="glance", account=account, timeout=5.0,
            semaphore=asyncio.Semaphore(4), metrics=self.metrics,
            max_body_bytes=max_body_bytes, wall_time=self.clock.time,
        )

    def collector(
        self,
        *,
        started_at: float | None = None,
        page_size: int = 1000,
        label_limit: int = 50,
        name: str = "acme",
        limits: dict[str, int] | None = None,
        **fields: Any,
    ) -> GlanceCollector:
        account = make_account(self.base_url, name=name, **fields)

        def reject(reason: str, count: int) -> None:
            self.rejects[reason] = self.rejects.get(reason, 0) + count

        ctx = CollectorContext(
            clock=self.clock, log=self.log,  # type: ignore[arg-type]
            label_value_limit=label_limit, reject=reject,
            started_at=self.clock.time() if started_at is None else started_at,
            **(limits or {}),
        )
        client = GlanceClient(account.common.base_url, account.partner_id, account.api_key,
                              page_size=page_size, max_records=ctx.max_records_per_reply)
        return GlanceCollector(account, ctx, client=client)

    def failures(self, reason: str | None = None) -> dict[tuple[str, ...], float]:
        return {k: v for k, v in self.metrics.failures.values.items()
                if reason is None or k[3] == reason}


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
