"""Shared set-up for the Rescue tests: accounts, an Upstream, a collector context."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from exporter.config import AccountCommon, Fields, GlobalConfig
from exporter.http import Upstream, new_client_session
from exporter.logs import get_logger
from exporter.selfmetrics import SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.simulators.rescue import RescueSimulator
from exporter.vendors.base import CollectorContext
from exporter.vendors.rescue.collector import RescueCollector
from exporter.vendors.rescue.config import RescueAccount, parse_account

NAME = "helpdesk"


def account(base_url: str = "https://secure.logmeinrescue.com", **fields: Any) -> RescueAccount:
    data: dict[str, Any] = {"auth_code": "code-123", "nodes": [{"id": 337366, "ref": "NODE"}]}
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    common = AccountCommon(vendor="rescue", name=NAME, base_url=base_url, interval=5.0,
                           timeout=5.0, stale_after=300.0)
    f = Fields(data, "rescue[0]")
    parsed = parse_account(f, common, GlobalConfig())
    f.check_unknown()
    return parsed


def upstream(session: aiohttp.ClientSession, metrics: SelfMetrics, clock: FakeClock) -> Upstream:
    return Upstream(session, vendor="rescue", account=NAME, timeout=5.0,
                    semaphore=asyncio.Semaphore(4), metrics=metrics,
                    max_body_bytes=1 << 20, wall_time=clock.time)


def failures(metrics: SelfMetrics) -> dict[tuple[str, str], float]:
    return {(op, reason): v for (_, _, op, reason), v in metrics.failures.values.items()}


def requests(metrics: SelfMetrics) -> dict[str, float]:
    return {op: v for (_, _, op), v in metrics.requests.values.items()}


@dataclass
class Rig:
    clock: FakeClock
    sim: RescueSimulator
    base_url: str
    metrics: SelfMetrics
    upstream: Upstream
    rejects: Counter[str]

    def collector(self, limit: int = 50, max_records: int = 100_000,
                  **fields: Any) -> RescueCollector:
        fields.setdefault("auth_code", self.sim.auth_code)
        acc = account(self.base_url, **fields)
        ctx = CollectorContext(clock=self.clock, log=get_logger(test="rescue"),
                               label_value_limit=limit, reject=self._reject,
                               started_at=self.clock.time(), max_records_per_reply=max_records)
        return RescueCollector(acc, ctx)

    def _reject(self, reason: str, count: int) -> None:
        self.rejects[reason] += count


@asynccontextmanager
async def rig(seed: int = 7, **sim_options: Any) -> AsyncIterator[Rig]:
    clock = FakeClock()
    sim = RescueSimulator(clock, seed, **sim_options)
    server = TestServer(sim.app(), host="127.0.0.1")
    await server.start_server()
    session = new_client_session()
    metrics = SelfMetrics()
    try:
        yield Rig(clock, sim, str(server.make_url("")).rstrip("/"), metrics,
                  upstream(session, metrics, clock), Counter())
    finally:
        await session.close()
        await server.close()
