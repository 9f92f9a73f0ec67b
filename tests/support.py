"""Helpers for tests that run the real daemon against simulators over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import parse_config
from exporter.loop import Daemon
from exporter.simulators.base import Simulator, SimulatorFactory
from exporter.simulators.clock import FakeClock
from exporter.vendors.base import Vendor


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp app on 127.0.0.1 on a free port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def daemon_for(
    config_data: Mapping[str, Any], vendors: Mapping[str, Vendor], clock: FakeClock
) -> AsyncIterator[Daemon]:
    daemon = Daemon(parse_config(config_data, vendors), vendors, clock=clock, seed=1)
    await daemon.start(schedule=False)
    try:
        yield daemon
    finally:
        await daemon.stop()


@asynccontextmanager
async def simulated(
    new_simulator: SimulatorFactory, clock: FakeClock, seed: int = 7
) -> AsyncIterator[tuple[Simulator, str]]:
    simulator = new_simulator(clock, seed)
    async with serve_app(simulator.app()) as base_url:
        yield simulator, base_url


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse exposition text into {(sample name, sorted labels): value}."""
    result = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            result[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return result


def value(text: bytes, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def series_names(text: bytes) -> set[str]:
    return {name for name, _ in samples(text)}
