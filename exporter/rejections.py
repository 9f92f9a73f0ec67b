"""Counting a rejected record once, however many replies hold it.

Overlapping reads return a bad record in every reply that covers it, and a list of what
is current returns it on every poll: one bad completed Glance session was counted about
11 times at the default overlap, and a bad session in a SecureVideo month once an hour
for the rest of the month. A parser hands back the id of each record it rejected where
the id was readable; records without a readable id cannot be told apart, and are counted
in every reply that holds them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

from .dedupe import DedupeFull, SeenRecords

# A rejection is forgotten this long after the last reply that held it; seen again after
# that, it is counted again. Longer than any poll or month interval.
RETENTION = 2 * 86400.0
# Rejections remembered per account. Past it, new ones are counted without being
# remembered (counted again when they come again): a vendor sending millions of bad
# records must not grow memory, and a rejection is never dropped uncounted.
LIMIT = 10_000

T = TypeVar("T")


def skipped_reason(implausible: bool) -> str:
    """The reason a skipped record is counted under: `implausible_value` for a number
    or date outside its range, else `invalid_record`."""
    return "implausible_value" if implausible else "invalid_record"


def handed_back(ids: Sequence[T]) -> tuple[T, ...]:
    """The rejected ids a parser hands back: no more than can be remembered. The rest
    are counted as records without an id; a reply of 100,000 bad rows must not make a
    parse worker's result 100,000 tuples longer."""
    return tuple(ids[:LIMIT])


class RejectedOnce:
    """The rejected records of an account already counted, by reason and record id."""

    def __init__(
        self, reject: Callable[[str, int], None], retention: float = RETENTION, limit: int = LIMIT
    ) -> None:
        self._reject = reject
        self._counted = SeenRecords(retention, limit)

    def reject(self, reason: str, ids: Iterable[Hashable], now: float, without_id: int = 0) -> None:
        """Count the records of one reply rejected for `reason`: `ids`, one for each
        rejection whose record had a readable id (an id given twice in one reply is
        counted twice, as two records), and `without_id` more that had none. Ids counted
        for this reason within the retention are not counted again."""
        self._counted.prune(now)
        count = without_id
        for record_id, times in Counter(ids).items():
            try:
                new = self._counted.add((reason, record_id), now)
            except DedupeFull:
                new = True
            if new:
                count += times
        if count:
            self._reject(reason, count)

    def reply(
        self,
        kind: str,
        totals: Mapping[str, int],
        rejected_ids: Iterable[tuple[str, Hashable]],
        now: float,
    ) -> None:
        """Count one reply's rejections, `totals` by reason, of which `rejected_ids` are
        the (reason, id) the parser could read. `kind` says which query it answered: the
        same id in another query's reply is another record."""
        known: dict[str, list[tuple[str, Hashable]]] = {}
        for reason, record_id in rejected_ids:
            known.setdefault(reason, []).append((kind, record_id))
        for reason, total in totals.items():
            if total:
                ids = known.get(reason, [])
                self.reject(reason, ids, now, without_id=total - len(ids))

    def __len__(self) -> int:
        return len(self._counted)
