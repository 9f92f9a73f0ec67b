"""What the core knows of an account, whatever its vendor.

Both `exporter.config` (which builds accounts) and `exporter.vendors.base` (which
collects them) import this module, and it imports neither: the types have no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class AccountCommon:
    """What the core needs of every account, whatever the vendor."""

    vendor: str
    name: str
    base_url: str
    interval: float
    timeout: float
    stale_after: float
    cycle_timeout: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.vendor, self.name)

    @property
    def cycle_deadline(self) -> float:
        """Seconds one whole cycle may take: a feed that never ends must not keep `up` at
        1 while the data goes stale."""
        if self.cycle_timeout is not None:
            return self.cycle_timeout
        return max(min(self.interval, self.stale_after) * 0.9, self.timeout)


class AccountConfig(Protocol):
    """A vendor's frozen account dataclass; it must carry the common fields."""

    @property
    def common(self) -> AccountCommon: ...
