"""The built-in demo: every vendor's simulator on loopback, and demo accounts aimed at them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .clock import Clock
from .vendors.base import Simulator, Vendor

# Faults the demo injects now and then, so dashboards show an account that fails.
DEMO_FAULT_KINDS = ("http_500", "http_503", "garbage")


@dataclass
class DemoWorld:
    simulators: dict[str, Simulator] = field(default_factory=dict)
    base_urls: dict[str, str] = field(default_factory=dict)
    runners: list[web.AppRunner] = field(default_factory=list)

    def config_data(self, interval: str = "5s") -> dict[str, Any]:
        data: dict[str, Any] = {"global": {"interval": interval, "timeout": "5s",
                                           "stale_after": "1m"}}
        for vendor, simulator in self.simulators.items():
            data[vendor] = simulator.demo_accounts(self.base_urls[vendor])
        return data

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


async def start_world(
    vendors: Mapping[str, Vendor], clock: Clock, seed: int = 1, fault_rate: float = 0.0
) -> DemoWorld:
    """Start one simulator per vendor on 127.0.0.1, each on a free port."""
    world = DemoWorld()
    for offset, (name, vendor) in enumerate(vendors.items()):
        simulator = vendor.new_simulator(clock, seed + offset)
        if fault_rate:
            simulator.faults.set_random(fault_rate, DEMO_FAULT_KINDS)
        runner = web.AppRunner(simulator.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        world.simulators[name] = simulator
        world.base_urls[name] = f"http://127.0.0.1:{port}"
        world.runners.append(runner)
    return world
