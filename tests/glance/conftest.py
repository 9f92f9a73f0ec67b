from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from exporter.simulators.clock import FakeClock
from exporter.simulators.glance import GlanceSimulator

from .harness import NOON_ISH, Harness, start_harness, stop_harness


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON_ISH)


@pytest.fixture
async def h(clock: FakeClock) -> AsyncIterator[Harness]:
    """A Glance collector polling a seeded simulator over loopback."""
    harness = await start_harness(clock, GlanceSimulator(clock, seed=7))
    yield harness
    await stop_harness(harness)
