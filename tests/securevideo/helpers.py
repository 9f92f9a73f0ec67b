"""Shared set-up for the SecureVideo tests: an account, a collector and its Upstream."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp.test_utils import TestServer
from prometheus_client.core import Metric

from exporter.config import parse_config
from exporter.http import Upstream, new_client_session
from exporter.selfmetrics import SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.simulators.securevideo import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    SecureVideoSimulator,
)
from exporter.vendors.base import CollectorContext
from exporter.vendors.securevideo import VENDOR
from exporter.vendors.securevideo.collector import SecureVideoCollector
from exporter.vendors.securevideo.config import SecureVideoAccount

ACCOUNT = "clinic"


def account(base_url: str, **fields: Any) -> SecureVideoAccount:
    entry = {"name": ACCOUNT, "base_url": base_url, "api_key": DEMO_API_KEY,
             "api_secret": DEMO_API_SECRET, **fields}
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
        def reject(reason: str, count: int) -> None:
            self.rejected[reason] += count

        return CollectorContext(
            clock=self.clock, log=structlog.get_logger(), label_value_limit=limit,
            reject=reject, started_at=self.clock.time() if started_at is None else started_at,
        )

    def collector(self, acct: SecureVideoAccount, started_at: float | None = None,
                  limit: int = 50) -> SecureVideoCollector:
        return SecureVideoCollector(acct, self.context(started_at, limit))

    def failures(self) -> dict[tuple[str, str], float]:
        return {(op, reason): v for (_, _, op, reason), v in self.metrics.failures.values.items()}


@asynccontextmanager
async def harness(clock: FakeClock,
                  max_body_bytes: int = 16 * 1024 * 1024) -> AsyncIterator[Harness]:
    session = new_client_session()
    metrics = SelfMetrics()
    upstream = Upstream(
        session, vendor="securevideo", account=ACCOUNT, timeout=10.0,
        semaphore=asyncio.Semaphore(4), metrics=metrics, max_body_bytes=max_body_bytes,
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
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families for s in family.samples
    }


def pick(all_samples: Samples, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...],
                                                                  float]:
    """Samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return {k: v for (n, k), v in all_samples.items() if n == name and want <= set(k)}


def total(all_samples: Samples, name: str, **labels: str) -> float:
    return sum(pick(all_samples, name, **labels).values())
