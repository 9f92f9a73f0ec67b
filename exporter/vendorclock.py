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
