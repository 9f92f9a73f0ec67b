"""Small metric-state helpers for collectors: bounded labels, counters, histograms.

Collectors keep their own state and turn it into `prometheus_client` metric families
when the snapshot is rendered; no global registry is involved, so an account's series
can be dropped by simply not asking its collector for them.
"""

from __future__ import annotations

import bisect
import math
import operator
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from itertools import repeat
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .sanitize import LABEL_VALUE_MAX_LENGTH, label_value

LabelValues = tuple[str, ...]

OTHER = "other"


@dataclass(frozen=True)
class FamilySpec:
    """One metric family a vendor promises (its contract): what the tests' contract
    checks, the README-table check and the contributor's checklist read. Its HELP text
    stays with the code that builds the family; tests/golden pins it byte for byte."""

    name: str  # as exposed in the text format (counters end in _total)
    kind: str  # gauge, counter or histogram
    labels: tuple[str, ...]
    # Labels only some configs add (Rescue's opt-in channel and technician).
    optional_labels: tuple[str, ...] = ()
    # False for a diagnostic family no dashboard panel shows (said in its declaration).
    on_dashboard: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("gauge", "counter", "histogram"):
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")


class BoundedLabel:
    """Keeps free-text vendor values as label values, up to `limit` distinct extras.

    Every value is made encodable, scrubbed of secrets and cut to `max_length` first (a
    cut is reported as ``label_truncated``). Known values always pass. Beyond the limit,
    new values fold into ``other`` (reported as ``label_overflow``), so that a vendor
    returning garbage cannot blow up the series count. `reject` receives the reports;
    those of a `record` go to `once` instead, which counts each record once however
    many polls label it again (a session listed every poll was reported every poll).
    """

    def __init__(
        self,
        known: Iterable[str],
        limit: int,
        *,
        max_length: int = LABEL_VALUE_MAX_LENGTH,
        reject: Callable[[str, int], None] | None = None,
        once: Callable[[str, int, Hashable], None] | None = None,
    ) -> None:
        self.known = frozenset(known)
        self.limit = limit
        self.max_length = max_length
        self._reject = reject
        self._once = once
        self._extra: set[str] = set()

    def __call__(self, value: str, count: int = 1, record: Hashable | None = None) -> str:
        """The label of `count` records with this value, each reported as if labelled one
        at a time (the first admits a new value, if any does; the rest then report what
        the first reported, or nothing). `record` names them, where the caller labels
        the same records again at every poll: they are then reported once."""
        if value in self.known or value in self._extra:
            return value
        value, cut = label_value(value, self.max_length)
        if cut:
            self._report("label_truncated", count, record)
        if value in self.known or value in self._extra:
            return value
        if len(self._extra) < self.limit:
            self._extra.add(value)
            return value
        self._report("label_overflow", count, record)
        return OTHER

    def _report(self, reason: str, count: int, record: Hashable | None) -> None:
        if record is not None and self._once is not None:
            self._once(reason, count, record)
        elif self._reject is not None:
            self._reject(reason, count)


class CounterSet:
    """A labelled counter that only goes up.

    With `max_series`, at most that many label combinations (and one more): each label
    is bounded on its own (`BoundedLabel`), but three free-text labels of 45 values each
    made 23,296 series, and the account was left out of /metrics for good (its counters
    never shrink). Beyond the bound, new combinations are counted under every label
    `other` and reported as ``label_overflow``: totals stay exact."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        max_series: int | None = None,
        reject: Callable[[str, int], None] | None = None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.values: dict[LabelValues, float] = {}
        self.max_series = max_series
        self._reject = reject

    def inc(self, labels: LabelValues, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        values = self.values
        if self.max_series is not None and labels not in values:
            labels = self._bounded(labels, amount)
        values[labels] = values.get(labels, 0.0) + amount

    def _bounded(self, labels: LabelValues, amount: float) -> LabelValues:
        """`labels`, or every one `other` once `max_series` combinations exist."""
        overflow = (OTHER,) * len(labels)
        if self.max_series is None or len(self.values) < self.max_series or labels == overflow:
            return labels
        if self._reject is not None and OTHER not in labels:
            # A label folded already was reported by its `BoundedLabel`: once a record.
            self._reject("label_overflow", max(1, round(amount)))
        return overflow

    def to_state(self) -> list[list[Any]]:
        return [[list(labels), value] for labels, value in self.values.items()]

    def load_state(self, state: list[list[Any]]) -> None:
        """Saved values, the bound applied: a state saved without one (or with a higher
        one) keeps its first `max_series` combinations and folds the rest."""
        self.values = {}
        for labels, value in state:
            key = tuple(labels)
            if key not in self.values:
                key = self._bounded(key, 0.0)
            self.values[key] = self.values.get(key, 0.0) + float(value)

    def family(self, prefix: LabelValues = ()) -> CounterMetricFamily:
        name = self.name.removesuffix("_total")
        family = CounterMetricFamily(name, self.documentation, labels=self.labelnames)
        for labels, value in sorted(self.values.items()):
            family.add_metric(list(prefix + labels), value)
        return family


class HistogramSet:
    """A labelled histogram with fixed buckets (in base units)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(sorted(float(b) for b in buckets if not math.isinf(b)))
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}

    def observe(self, labels: LabelValues, value: float) -> None:
        counts = self._counts.get(labels)
        if counts is None:  # one lookup in the common case: ingest calls this per record
            self.touch(labels)
            counts = self._counts[labels]
        counts[bisect.bisect_left(self.bounds, value)] += 1
        self._sums[labels] += value

    def observe_many(self, labels: LabelValues, values: Sequence[float]) -> None:
        """`observe` of each value in turn, in C loops: the same counts, and the same
        sum to the last bit (added one by one in order, as `observe` adds them)."""
        if not values:
            return
        counts = self._counts.get(labels)
        if counts is None:
            self.touch(labels)
            counts = self._counts[labels]
        for index, n in Counter(map(bisect.bisect_left, repeat(self.bounds), values)).items():
            counts[index] += n
        self._sums[labels] = reduce(operator.add, values, self._sums[labels])

    def touch(self, labels: LabelValues) -> None:
        """Make an empty series exist, so rate() sees the first observation."""
        if labels not in self._counts:
            self._counts[labels] = [0] * (len(self.bounds) + 1)
            self._sums[labels] = 0.0

    def total_count(self) -> int:
        return sum(sum(c) for c in self._counts.values())

    def to_state(self) -> list[list[Any]]:
        # Copies: the state may be encoded in another thread while cycles go on.
        return [
            [list(labels), list(counts), self._sums[labels]]
            for labels, counts in self._counts.items()
        ]

    def load_state(self, state: list[list[Any]]) -> None:
        """Restore counts saved by `to_state`; ignored if the buckets have changed since."""
        counts = {tuple(labels): [int(c) for c in cs] for labels, cs, _ in state}
        if any(len(c) != len(self.bounds) + 1 for c in counts.values()):
            return
        self._counts = counts
        self._sums = {tuple(labels): float(total) for labels, _, total in state}

    def family(self, prefix: LabelValues = ()) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels in sorted(self._counts):
            cumulative, buckets = 0, []
            for bound, count in zip((*self.bounds, math.inf), self._counts[labels], strict=True):
                cumulative += count
                buckets.append((_bound_text(bound), float(cumulative)))
            family.add_metric(list(prefix + labels), buckets, self._sums[labels])
        return family


def _bound_text(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def gauge(
    name: str,
    documentation: str,
    labelnames: Sequence[str],
    values: Mapping[LabelValues, float],
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labelnames))
    for labels, value in sorted(values.items()):
        family.add_metric(list(labels), value)
    return family


def merge_families(families: Iterable[Metric]) -> list[Metric]:
    """Merge same-named families from several accounts into one, as exposition requires."""
    merged: dict[str, Metric] = {}
    for family in families:
        existing = merged.get(family.name)
        if existing is None:
            copy = Metric(family.name, family.documentation, family.type, family.unit)
            copy.samples = list(family.samples)
            merged[family.name] = copy
        else:
            existing.samples.extend(family.samples)
    return list(merged.values())


DURATION_BUCKETS = (
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1200.0,
    1800.0,
    2700.0,
    3600.0,
    5400.0,
    7200.0,
)
# Contact-centre thresholds are exact bucket bounds: 80/20 service level, short abandons.
WAIT_BUCKETS = (
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    45.0,
    60.0,
    90.0,
    120.0,
    180.0,
    300.0,
    600.0,
    900.0,
    1200.0,
    1800.0,
    3600.0,
)
