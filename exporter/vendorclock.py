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
