"""A minimal vendor for testing the core: one HTTP call a cycle to a tiny simulator."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client.core import Metric

from exporter.clock import Clock
from exporter.config import AccountCommon, Fields, GlobalConfig, Secret
from exporter.errors import ParseError
from exporter.families import FamilySpec, gauge
from exporter.http import Upstream
from exporter.simulators.base import Simulator, SimulatorFactory
from exporter.simulators.faults import Faults
from exporter.vendors.base import AccountCollector, CollectorContext, Vendor


@dataclass(frozen=True)
class FakeAccount:
    common: AccountCommon
    token: Secret


def parse_account(fields: Fields, common: AccountCommon, global_: GlobalConfig) -> FakeAccount:
    token = fields.secret("token")
    assert token is not None
    return FakeAccount(common, token)


def parse_value(body: bytes) -> float:
    try:
        return float(body.decode())
    except (UnicodeDecodeError, ValueError):
        raise ParseError("not a number") from None


class FakeCollector(AccountCollector):
    def __init__(self, account: FakeAccount, ctx: CollectorContext) -> None:
        self.account, self.ctx = account, ctx
        self.value: float | None = None

    async def collect(self, upstream: Upstream) -> None:
        reply = await upstream.fetch(
            "value",
            "POST",
            f"{self.account.common.base_url}/value",
            data={"token": self.account.token.reveal()},
        )
        self.value = upstream.parse("value", parse_value, reply.body)

    def state(self) -> dict[str, Any] | None:
        return {"value": self.value}

    def restore(self, state: dict[str, Any]) -> None:
        self.value = state["value"]

    def families(self) -> Iterable[Metric]:
        if self.value is None:
            return []
        return [
            gauge(
                "fake_value",
                "The fake vendor's value, polled in the background.",
                ("account",),
                {(self.account.common.name,): self.value},
            )
        ]


class FakeSimulator(Simulator):
    def __init__(self, clock: Clock, seed: int) -> None:
        self.faults = Faults(seed)
        self.value = 42.0
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        form = await request.post()
        if form.get("token") != "s3cret-token":
            return web.Response(status=401, text="bad token")
        return web.Response(text=repr(self.value))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.faults.middleware()])
        app.router.add_post("/value", self.handle)
        return app

    def demo_accounts(self, base_url: str) -> list[dict[str, Any]]:
        return [{"name": "demo-fake", "base_url": base_url, "token": "s3cret-token"}]


VENDOR = Vendor(
    name="fake",
    default_base_url="https://fake.example.com",
    parse_account=parse_account,
    new_collector=FakeCollector,
    families=(FamilySpec("fake_value", "gauge", ("account",)),),
)
VENDORS = {"fake": VENDOR}
SIMULATORS: dict[str, SimulatorFactory] = {"fake": FakeSimulator}
