"""Remembering which records were already counted, for a bounded time."""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Any


class DedupeFull(Exception):
    """More distinct ids within the retention time than `max_remembered_ids` allows."""


class SeenRecords:
    """Keys seen recently. Memory is bounded by time: a key is forgotten `retention`
    seconds after it was last seen, by which time no overlapping window can return it."""

    def __init__(self, retention: float, limit: int | None = None) -> None:
        self.retention = retention
        # At most this many keys (max_remembered_ids): a vendor sending millions of new
        # ids must be refused, not remembered. `add` refuses new keys while full.
        self.limit = limit
        self._expiry: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._tie = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self._expiry) >= self.limit

    def add(self, key: Hashable, now: float) -> bool:
        """Remember `key`; True if it is new. Raises `DedupeFull` for a new key while
        `full`: the caller stops counting (and says why) instead of counting twice later."""
        new = key not in self._expiry
        if new and self.full:
            raise DedupeFull(f"already remembering {self.limit} ids (max_remembered_ids)")
        self._expiry[key] = now + self.retention
        if new:  # one heap entry per key, however often it is seen again
            self._tie += 1
            heapq.heappush(self._heap, (now + self.retention, self._tie, key))
        return new

    def to_state(self) -> list[list[Any]]:
        return [[key, expires] for key, expires in self._expiry.items()]

    def load_state(self, state: list[list[Any]]) -> None:
        for key, expires in state:
            key = tuple(key) if isinstance(key, list) else key  # JSON turns tuples to lists
            self._expiry[key] = float(expires)
            self._tie += 1
            heapq.heappush(self._heap, (float(expires), self._tie, key))

    def prune(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, _, key = heapq.heappop(self._heap)
            expires = self._expiry.get(key)
            if expires is None:
                continue
            if expires <= now:
                del self._expiry[key]
            else:  # seen again since it was pushed: wait for its later expiry
                self._tie += 1
                heapq.heappush(self._heap, (expires, self._tie, key))
