"""Shared set-up for the Rescue tests: accounts, an Upstream, a collector context."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter.admission import Admission
from exporter.config import AccountCommon, Fields, GlobalConfig
from exporter.http import Upstream, new_client_session
from exporter.logs import get_logger
from exporter.selfmetrics import SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.simulators.rescue import CHANNELS, GROUP_ID, RescueSimulator
from exporter.vendors.rescue.collector import RescueCollector
from exporter.vendors.rescue.config import RescueAccount, parse_account

from ..support import collector_context, family_samples

NAME = "helpdesk"


def account(base_url: str = "https://secure.logmeinrescue.com", **fields: Any) -> RescueAccount:
    data: dict[str, Any] = {"auth_code": "code-123", "nodes": [{"id": 337366, "ref": "NODE"}]}
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    common = AccountCommon(
        vendor="rescue", name=NAME, base_url=base_url, interval=5.0, timeout=5.0, stale_after=300.0
    )
    f = Fields(data, "rescue[0]")
    parsed = parse_account(f, common, GlobalConfig())
    f.check_unknown()
    return parsed


def upstream(session: aiohttp.ClientSession, metrics: SelfMetrics, clock: FakeClock) -> Upstream:
    return Upstream(
        session,
        vendor="rescue",
        account=NAME,
        timeout=5.0,
        admission=Admission(4),
        metrics=metrics,
        max_body_bytes=1 << 20,
        wall_time=clock.time,
    )


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

    def collector(
        self, limit: int = 50, max_records: int = 100_000, **fields: Any
    ) -> RescueCollector:
        fields.setdefault("auth_code", self.sim.auth_code)
        acc = account(self.base_url, **fields)
        ctx = collector_context(
            self.clock,
            self.rejects,
            label_limit=limit,
            log=get_logger(test="rescue"),
            max_records_per_reply=max_records,
        )
        return RescueCollector(acc, ctx)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def rig(seed: int = 7, reply_seconds: float = 0.0, **sim_options: Any) -> AsyncIterator[Rig]:
    """`reply_seconds`: how long each reply takes to arrive, on the rig's clock (Rescue
    measures its Waiting Times before)."""
    clock = FakeClock()
    sim = RescueSimulator(clock, seed, **sim_options)
    app = sim.app()
    if reply_seconds:

        @web.middleware
        async def slow(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            clock.advance(reply_seconds)
            return response

        app.middlewares.append(slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = new_client_session()
    metrics = SelfMetrics()
    try:
        yield Rig(
            clock,
            sim,
            str(server.make_url("")).rstrip("/"),
            metrics,
            upstream(session, metrics, clock),
            Counter(),
        )
    finally:
        await session.close()
        await server.close()


CHANNEL = CHANNELS[0].id


BOTH = [{"id": GROUP_ID, "ref": "NODE"}, {"id": CHANNEL, "ref": "CHANNEL"}]


NODES = {str(GROUP_ID): (GROUP_ID, "NODE"), str(CHANNEL): (CHANNEL, "CHANNEL")}


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(collector: RescueCollector) -> Samples:
    return family_samples(collector.families())


def by_status(
    collector: RescueCollector, node: str, name: str = "rescue_sessions"
) -> dict[str, float]:
    result: dict[str, float] = {}
    for (sample, labels), value in samples(collector).items():
        label = dict(labels)
        if sample == name and label["node"] == node:
            assert label["account"] == NAME
            result[label["status"]] = result.get(label["status"], 0.0) + value
    return result


def histogram(
    collector: RescueCollector, node: str, outcome: str | None = None
) -> tuple[float, float]:
    """(count, sum) of the node's waits, of one outcome or of all."""
    count = total = 0.0
    for (name, labels), value in samples(collector).items():
        label = dict(labels)
        if label.get("node") != node or outcome not in (None, label.get("outcome")):
            continue
        if name == "rescue_session_wait_seconds_count":
            count += value
        elif name == "rescue_session_wait_seconds_sum":
            total += value
    return count, total


def expected_waits(r: Rig, node: int, ref: str, polls: list[float]) -> list[float]:
    """The waits a poller at `polls` can see end: each wait seen Waiting by some poll and
    seen over by a later one, measured from its true start to the last poll inside it."""
    observed = []
    for _, start, end in r.sim.waits(node, ref):
        inside = [p for p in polls if start <= p < end]
        if inside and any(p >= end for p in polls):
            observed.append(max(inside) - start)
    return observed


async def poll_for(r: Rig, collector: RescueCollector, seconds: int, step: int = 5) -> list[float]:
    polls = []
    for i in range(seconds // step):
        if i:
            r.clock.advance(step)
        await collector.collect(r.upstream)
        polls.append(r.clock.time())
    return polls


# ../shared beside the repository, as in CI. A missing file is a failure, not a skip: a
# check that cannot run must not pass.
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


DOC = SHARED / "vendor-docs/logmein-rescue-getsession.txt"


CAPTURES = SHARED / "vendor-captures/rescue"


def shared(path: Path) -> bytes:
    assert path.is_file(), f"{path} is missing (CI has ../shared beside the repository)"
    return path.read_bytes()


API_NS = "https://secure.logmeinrescue.com/API/API.asmx"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


def soap(
    inner: str, envelope: str = SOAP12, ns: str = API_NS, result: str = "getSession_OK"
) -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{envelope}"><soap:Body>'
        f'<getSession_V3Response xmlns="{ns}"><getSession_V3Result>{result}'
        f"</getSession_V3Result><aSessions>{inner}</aSessions></getSession_V3Response>"
        "</soap:Body></soap:Envelope>"
    ).encode()
