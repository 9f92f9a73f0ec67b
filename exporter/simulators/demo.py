"""The built-in demo: every vendor's simulator on loopback, and demo accounts aimed at them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..clock import Clock
from .base import Simulator, SimulatorFactory


@dataclass
class DemoWorld:
    simulators: dict[str, Simulator] = field(default_factory=dict)
    base_urls: dict[str, str] = field(default_factory=dict)
    runners: list[web.AppRunner] = field(default_factory=list)

    def config_data(self, interval: str = "5s") -> dict[str, Any]:
        data: dict[str, Any] = {
            "global": {"interval": interval, "timeout": "5s", "stale_after": "1m"}
        }
        for vendor, simulator in self.simulators.items():
            data[vendor] = simulator.demo_accounts(self.base_urls[vendor])
        return data

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


async def start_world(
    simulators: Mapping[str, SimulatorFactory],
    clock: Clock,
    seed: int = 1,
    fault_rates: Mapping[str, float] | None = None,
) -> DemoWorld:
    """Start one simulator per vendor (`SIMULATORS`, by vendor name) on 127.0.0.1, each
    on a free port; `fault_rates` makes that share of each vendor's replies fail, so
    dashboards show failures."""
    world = DemoWorld()
    for offset, (name, new_simulator) in enumerate(simulators.items()):
        simulator = new_simulator(clock, seed + offset)
        rate = (fault_rates or {}).get(name, 0.0)
        if rate:
            simulator.set_fault_rate(rate)
        runner = web.AppRunner(simulator.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        world.simulators[name] = simulator
        world.base_urls[name] = f"http://127.0.0.1:{port}"
        world.runners.append(runner)
    return world


def parse_fault_rates(text: str, vendors: Mapping[str, object]) -> dict[str, float]:
    """``0.02`` for every vendor, or ``glance=0.1,rescue=0`` per vendor."""
    if "=" not in text:
        rate = _rate(text)
        return dict.fromkeys(vendors, rate)
    rates = dict.fromkeys(vendors, 0.0)
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name.strip() not in vendors:
            raise ValueError(f"unknown vendor {name.strip()!r}; known: {', '.join(vendors)}")
        rates[name.strip()] = _rate(value)
    return rates


def _rate(text: str) -> float:
    rate = float(text)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"a fault rate is a share between 0 and 1, not {text}")
    return rate
