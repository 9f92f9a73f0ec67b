"""The vendor's clock, as its replies' Date headers tell it.

A feed read by time (Glance's completed sessions by end time, SecureVideo's sessions by
when they connected) must never run ahead of what the vendor has recorded: with our clock
ahead, a cursor or a start taken from it skips what ends in the gap, for good. Pure: the
caller brings our clock and the skew its `Upstream` measured.
"""

from __future__ import annotations

from .sanitize import MAX_AHEAD

# How far a position may be past the vendor's now before it is brought back: more than a
# Date header's one-second steps and a reply's time in flight.
AHEAD_TOLERANCE = 60.0


def believed_skew(skew: float | None) -> float:
    """How far the vendor's clock is behind ours (a negative number of seconds), when its
    Date header says so by at most `MAX_AHEAD`; otherwise 0. A Date ahead of ours changes
    nothing (our clock is then the earlier one); one further behind than a day is not
    believed: taken as a day behind, a Date of 1970 held every completed session back a
    day, with `up` 1 and nothing logged."""
    if skew is None or skew >= 0 or skew < -MAX_AHEAD:
        return 0.0
    return skew


def vendor_now(now: float, skew: float | None) -> float:
    """Our `now` on the vendor's clock, as far as its Date header is believed."""
    return now + believed_skew(skew)


def vendor_latest(now: float, skew: float | None) -> float:
    """The later of our clock and the vendor's, as its Date says within `MAX_AHEAD`: what
    the vendor may have recorded up to. A bound for how long to remember what it sent,
    and for whether a feed position is ahead of it (with our clock behind, a cursor
    ahead of our clock is not ahead of the vendor's)."""
    if skew is None or abs(skew) > MAX_AHEAD:
        return now
    return now + max(0.0, skew)


def skew_when_made(made: tuple[float, float], now: float, monotonic: float, skew: float) -> float:
    """`believed_skew` as it was at `made` (our wall and monotonic clocks then): the
    vendor's clock then is its Date now less the monotonic time since. Our clock may have
    stepped between the two (right at the start, then two hours ahead before the first
    reply: the start was moved two hours back, and sessions before it were counted)."""
    made_wall, made_monotonic = made
    vendor_then = now + skew - (monotonic - made_monotonic)
    return believed_skew(vendor_then - made_wall)


class StartOnVendorClock:
    """By how much to move a fresh collector's start onto the vendor's clock: the skew as
    it was when the collector was made (`skew_when_made`), once two dated cycles agree
    on it. One stale Date at start-up (a reply cached 23 hours) moved the start 23 hours
    back, and the sessions that had ended in them were counted (probe 9)."""

    def __init__(self, wall: float, monotonic: float) -> None:
        self._made = (wall, monotonic)
        self._candidate: float | None = None
        self.settled = False

    def restored(self) -> None:
        """The start came from a saved state: it is not moved."""
        self.settled = True

    def observe(self, wall: float, monotonic: float, skew: float) -> float | None:
        """The shift to apply (0 for none), once, when it settles; None until then."""
        if self.settled:
            return None
        shift = skew_when_made(self._made, wall, monotonic, skew)
        if shift >= -AHEAD_TOLERANCE:
            self.settled = True
            return 0.0
        if self._candidate is not None and abs(shift - self._candidate) <= AHEAD_TOLERANCE:
            self.settled = True
            return shift
        self._candidate = shift
        return None
