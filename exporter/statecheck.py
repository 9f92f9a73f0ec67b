"""Checks for saved collector state (--storage.path) before a collector trusts it.

A state file may come from another version or be damaged; collectors check all of it
with these helpers first and raise ValueError, so a bad state changes nothing.
"""

from __future__ import annotations

import math
from typing import Any

from .sanitize import MAX_AHEAD, printable

# Counts and counter values a float holds exactly: no real one comes near, and a saved
# 10**400 made every render fail (OverflowError) with the account left out for good.
MAX_SAVED_COUNT = 2**53
# The longest label value any config makes (`global.label_value_max_length` is at most
# this): a saved one longer was put there by hand, and was served uncut.
MAX_SAVED_LABEL_LENGTH = 1024


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_count(value: object) -> bool:
    """A whole number from 0 to `MAX_SAVED_COUNT`."""
    return is_int(value) and 0 <= value <= MAX_SAVED_COUNT  # type: ignore[operator]


def number(value: object, key: str) -> float:
    if not is_number(value):
        raise ValueError(f"state {key} is not a finite number")
    return float(value)  # type: ignore[arg-type]


def not_ahead(value: float, now: float, key: str, allowed: float = 0.0) -> None:
    """A saved time no further ahead of `now` than `allowed` (and a day of clocks
    apart): one in the future made every cycle fail, or kept ids for good, and a state
    is saved only after a success, so it never healed."""
    if value > now + allowed + MAX_AHEAD:
        raise ValueError(f"state {key} is in the future")


def remembered_fits(count: int, limit: int) -> None:
    """A saved dedupe memory within this process's `max_remembered_ids`: more, and
    every cycle failed with limit_exceeded."""
    if count > limit:
        raise ValueError(f"state remembers {count} ids, over max_remembered_ids ({limit})")


def list_of(state: dict[str, Any], key: str) -> list[Any]:
    value = state.get(key)
    if not isinstance(value, list):
        raise ValueError(f"state {key} is not a list")
    return value


def _labels_ok(labels: object, width: int) -> bool:
    return isinstance(labels, list) and len(labels) == width and all(map(_label_ok, labels))


def _label_ok(value: object) -> bool:
    """What a collector could have saved: a label value as `sanitize.printable` makes it
    (no control character, no secret), of a length some config allows."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_SAVED_LABEL_LENGTH
        and printable(value) == value
    )


def _series_of(
    state: dict[str, Any], key: str, max_series: int | None, samples: int = 1
) -> list[Any]:
    """The saved series of one family, of `samples` samples each, at most `max_series`
    samples in all (max_series_per_account): no more could ever be shown. A state of
    30,000 combinations of the right shape was taken in, and its account was left out of
    /metrics (too_many_series) at every cycle, and saved back so each time."""
    entries = list_of(state, key)
    if max_series is not None and len(entries) * samples > max_series:
        raise ValueError(
            f"state {key} has {len(entries)} series of {samples} samples, more than "
            "max_series_per_account"
        )
    return entries


def counter_state(
    state: dict[str, Any], key: str, width: int, max_series: int | None = None
) -> list[Any]:
    """A `CounterSet.to_state()` with `width` labels and non-negative values."""
    entries = _series_of(state, key, max_series)
    for entry in entries:
        if not (
            isinstance(entry, list)
            and len(entry) == 2
            and _labels_ok(entry[0], width)
            and is_number(entry[1])
            and 0 <= entry[1] <= MAX_SAVED_COUNT
        ):
            raise ValueError(f"state {key} entry is not [labels, value]")
    return entries


def histogram_state(
    state: dict[str, Any], key: str, width: int, slots: int | None, max_series: int | None = None
) -> list[Any]:
    """A `HistogramSet.to_state()` with `width` labels and non-negative whole counts, and
    `slots` counts per series unless the buckets changed (None)."""
    # Each a sample per bucket, and a count and a sum.
    entries = _series_of(state, key, max_series, (slots or 1) + 2)
    for entry in entries:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and _labels_ok(entry[0], width)
            and isinstance(entry[1], list)
            and len(entry[1]) == (slots or len(entry[1]))
            and all(map(is_count, entry[1]))
            and is_number(entry[2])
        ):
            raise ValueError(f"state {key} entry is not [labels, counts, sum]")
    return entries


def state_version(state: dict[str, Any], accepted: tuple[int, ...]) -> int:
    """The saved state's version, if it is one this collector reads (the newest last)."""
    version = state.get("version")
    if not is_int(version) or version not in accepted:
        raise ValueError(f"state version {version!r}, expected {accepted[-1]}")
    return int(version)


def saved_histogram(
    state: dict[str, Any],
    key: str,
    width: int,
    bounds: tuple[float, ...],
    bounds_key: str,
    max_series: int | None = None,
) -> list[Any] | None:
    """A saved histogram checked against the current `bounds` (saved under `bounds_key`):
    its entries, or None when the buckets changed since it was saved. Its entries are
    checked either way, so a damaged state is refused whatever the buckets; the caller
    restarts a histogram whose buckets changed (a counter reset to Prometheus) rather
    than mixing counts from two sets of bounds."""
    same = state.get(bounds_key) == list(bounds)
    entries = histogram_state(state, key, width, len(bounds) + 1 if same else None, max_series)
    return entries if same else None
