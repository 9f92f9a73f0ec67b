"""Test doubles: a simulator of each vendor's API, fault injection, the demo wiring and a
fake clock. Only `--demo`, the tests and the benchmarks import this package; the exporter
itself never does (tests/test_simulators_apart.py checks it).

`SIMULATORS` maps a vendor's name (as in `exporter.registry.VENDORS`) to its simulator.
"""

from __future__ import annotations

from .base import Simulator, SimulatorFactory
from .glance import GlanceSimulator
from .rescue import RescueSimulator
from .securevideo import SecureVideoSimulator

SIMULATORS: dict[str, SimulatorFactory] = {
    "glance": GlanceSimulator,
    "securevideo": SecureVideoSimulator,
    "rescue": RescueSimulator,
}

__all__ = [
    "SIMULATORS",
    "GlanceSimulator",
    "RescueSimulator",
    "SecureVideoSimulator",
    "Simulator",
    "SimulatorFactory",
]
