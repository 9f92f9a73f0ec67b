from __future__ import annotations

import pytest

from exporter.registry import VENDORS
from exporter.simulators import SIMULATORS
from exporter.simulators.clock import FakeClock
from exporter.simulators.demo import parse_fault_rates, start_world

from .support import run_cli


def test_fault_rates_for_every_vendor_or_per_vendor() -> None:
    assert parse_fault_rates("0.05", VENDORS) == {v: 0.05 for v in VENDORS}
    assert parse_fault_rates("glance=0.5,rescue=0.1", VENDORS) == {
        "glance": 0.5,
        "securevideo": 0.0,
        "rescue": 0.1,
    }
    for bad in ("1.5", "glance=x", "zoom=0.1"):
        with pytest.raises(ValueError):
            parse_fault_rates(bad, VENDORS)


def test_bad_fault_rate_flag_exits_2_without_traceback() -> None:
    result = run_cli("--demo", "--demo.fault-rate", "zoom=0.1")
    assert result.returncode == 2
    assert "unknown vendor 'zoom'" in result.stderr
    assert "Traceback" not in result.stderr


async def test_world_applies_each_vendors_rate() -> None:
    world = await start_world(SIMULATORS, FakeClock(), fault_rates={"rescue": 0.25})
    try:
        assert world.simulators["rescue"].faults.random_rate == 0.25
        assert world.simulators["rescue"].expire_rate == 0.25  # type: ignore[attr-defined]
        assert world.simulators["glance"].faults.random_rate == 0.0
        assert set(world.config_data()) == {"global", *VENDORS}
    finally:
        await world.close()
