"""Remembering which records were already counted, for a bounded time."""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Any


class SeenRecords:
    """Keys seen recently. Memory is bounded by time: a key is forgotten `retention`
    seconds after it was last seen, by which time no overlapping window can return it."""

    def __init__(self, retention: float) -> None:
        self.retention = retention
        self._expiry: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._tie = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, key: Hashable, now: float) -> bool:
        """Remember `key`; True if it is new."""
        new = key not in self._expiry
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
