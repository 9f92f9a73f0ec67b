"""What every vendor simulator offers the demo, the tests and the benchmarks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from aiohttp import web

from ..clock import Clock
from .faults import RANDOM_FAULT_KINDS, Faults

# How many recent requests a simulator keeps for tests to read: enough for any test's
# cycles, small enough that the demo (which runs for days) never grows.
RECENT_REQUESTS = 10_000


class Simulator(ABC):
    """A vendor API on loopback with a seeded, moving population and injectable faults."""

    clock: Clock
    faults: Faults

    @abstractmethod
    def app(self) -> web.Application: ...

    def new_app(self) -> web.Application:
        """An empty app whose replies go through our faults and carry our clock's Date.

        aiohttp would send the host's real time, so a test whose vendor clock is far
        from it saw a skew that no vendor had (and a hint to check NTP)."""
        app = web.Application(middlewares=[self.faults.middleware()])

        async def vendor_date(request: web.Request, response: web.StreamResponse) -> None:
            response.headers["Date"] = formatdate(self.clock.time(), usegmt=True)

        app.on_response_prepare.append(vendor_date)
        return app

    @abstractmethod
    def demo_accounts(self, base_url: str) -> list[dict[str, Any]]:
        """Config entries (as YAML would give them) that point demo accounts at us."""

    def set_fault_rate(self, rate: float) -> None:
        """Fail this share of replies at random (demo and soak). Vendors with faults of
        their own (expired logins, say) add them here."""
        self.faults.set_random(rate, RANDOM_FAULT_KINDS)


# A simulator class, called with the clock it reads and its seed.
SimulatorFactory = Callable[[Clock, int], Simulator]
