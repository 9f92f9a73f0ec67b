"""A clock for tests and simulated runs: time moves only when told to."""

from __future__ import annotations


class FakeClock:
    """A clock that moves only when told to (satisfies `exporter.clock.Clock`)."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._mono = 0.0

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds
        self._mono += seconds

    def set(self, when: float) -> None:
        self.advance(when - self._now)

    def step(self, when: float) -> None:
        """Set the wall clock to `when`, forward or back, as NTP steps a host's clock; the
        monotonic clock does not move."""
        self._now = when
