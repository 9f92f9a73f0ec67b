"""Remembering which records were already counted, for a bounded time.

With --storage.path the memory also journals its changes (keys added or refreshed, keys
forgotten) between two saves, so that saving costs what changed, not what is remembered.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from .savedstate import KeyedChanges


class DedupeFull(Exception):
    """More distinct ids within the retention time than `max_remembered_ids` allows."""


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_GONE: Any = object()  # not in the mapping (None may be a value)


class KeyJournal(Generic[K]):
    """Which keys of a remembered mapping changed, and which were forgotten, since the
    last save (--storage.path), so that a save costs what changed in the cycle.

    While `whole` (before the first save, after a failed one, or without a store at all)
    nothing is journalled: the next save takes every key anyway, and a journal nobody
    takes must not grow forever. The owner checks `whole` inline on its hot path."""

    def __init__(self) -> None:
        self.whole = True
        self.dirty: set[K] = set()
        self.deleted: set[K] = set()

    def changed(self, key: K) -> None:
        if not self.whole:
            self.dirty.add(key)
            self.deleted.discard(key)

    def forgot(self, key: K) -> None:
        if not self.whole:
            self.deleted.add(key)
            self.dirty.discard(key)

    def take(self, entries: Mapping[K, V], value: Callable[[V], Any] | None = None) -> KeyedChanges:
        """The changes to `entries` since the last call (O(changes) unless whole), each
        value copied with `value` (entries may change after, on the loop); then a new
        journal starts."""
        if self.whole:
            upserts: dict[K, Any] = (
                dict(entries) if value is None else {k: value(v) for k, v in entries.items()}
            )
            changes = KeyedChanges(True, upserts)
        else:
            deleted, upserts = self.deleted, {}
            for key in self.dirty:
                entry = entries.get(key, _GONE)
                if entry is _GONE:  # removed without `forgot`: deleted, not lost track of
                    deleted.add(key)
                else:
                    upserts[key] = entry if value is None else value(entry)
            changes = KeyedChanges(False, upserts, deleted)
        self.whole, self.dirty, self.deleted = False, set(), set()
        return changes

    def in_store(self) -> None:
        """The store holds the mapping as it is now (it was just restored from there):
        journal the changes from here on."""
        self.whole = False
        self.dirty, self.deleted = set(), set()

    def unsaved(self) -> None:
        """The last changes taken never reached the store: the next take is whole."""
        self.whole = True
        self.dirty, self.deleted = set(), set()

    def bound(self, remembered: int) -> None:
        """Forgotten keys outnumber those remembered (saves stopped for long, say): the
        whole memory is then the cheaper save, and the journal stays bounded."""
        if len(self.deleted) > remembered:
            self.unsaved()


class SeenRecords:
    """Keys seen recently. Memory is bounded by time: a key is forgotten `retention`
    seconds after it was last seen, by which time no overlapping window can return it.

    `slack`: a key's expiry moves only when it would come within `retention` of the last
    sighting, and then `retention + slack` ahead. A key seen again in every overlapping
    window is then rewritten in the store once per `slack`, not once per cycle; the price
    is remembering it up to `slack` longer."""

    def __init__(self, retention: float, limit: int | None = None, slack: float = 0.0) -> None:
        self.retention = retention
        self.slack = slack
        # At most this many keys (max_remembered_ids): a vendor sending millions of new
        # ids must be refused, not remembered. `add` refuses new keys while full.
        self.limit = limit
        self._expiry: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._tie = 0
        self.journal: KeyJournal[Hashable] = KeyJournal()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self._expiry) >= self.limit

    def make_room(self, keys: Iterable[Hashable], within: int | None = None) -> None:
        """Raise `DedupeFull` unless every key of `keys` not remembered yet can be, in
        `within` keys if given (a bound below `limit`): so that a batch (a page) is
        taken whole or not at all."""
        limit = self.limit if within is None else within
        if limit is None:
            return
        new = {key for key in keys if key not in self._expiry}
        if len(self._expiry) + len(new) > limit:
            raise DedupeFull(
                f"already remembering {len(self._expiry)} ids, and {len(new)} more do not "
                f"fit in {limit} (of max_remembered_ids, {self.limit})"
            )

    def add(self, key: Hashable, now: float) -> bool:
        """Remember `key`; True if it is new. Raises `DedupeFull` for a new key while
        `full`: the caller stops counting (and says why) instead of counting twice later."""
        expires = self._expiry.get(key)
        new = expires is None
        if new and self.full:
            raise DedupeFull(f"already remembering {self.limit} ids (max_remembered_ids)")
        if expires is not None and expires >= now + self.retention:
            return False  # remembered long enough already: nothing changed
        expires = self._expiry[key] = now + self.retention + self.slack
        if new:  # one heap entry per key, however often it is seen again
            self._tie += 1
            heapq.heappush(self._heap, (expires, self._tie, key))
        journal = self.journal
        if not journal.whole:  # inline: this runs for every record of every page
            journal.dirty.add(key)
            journal.deleted.discard(key)
        return new

    def add_shortest(self, key: Hashable, when: float) -> bool:
        """`add`, for a feed whose every read bounds when a key's record ended: the key is
        kept `retention` (and `slack`) past the earliest `when` it was added with, and
        no longer, however often it comes again. A later read of a shorter range (a
        halved one) brings a kept key's expiry forward. Raises `DedupeFull` as `add`."""
        expires = self._expiry.get(key)
        new = expires is None
        if new and self.full:
            raise DedupeFull(f"already remembering {self.limit} ids (max_remembered_ids)")
        until = when + self.retention + self.slack
        if expires is not None and expires <= until:
            return False
        self._expiry[key] = until
        # A brought-forward key gets a second heap entry: `prune` skips the stale one.
        # Re-read reads bring many forward: past twice the keys, the heap is rebuilt.
        self._tie += 1
        heapq.heappush(self._heap, (until, self._tie, key))
        if len(self._heap) > 2 * len(self._expiry) + 1024:
            self._rebuild_heap()
        journal = self.journal
        if not journal.whole:
            journal.dirty.add(key)
            journal.deleted.discard(key)
        return new

    def _rebuild_heap(self) -> None:
        """One entry per key again, at its expiry."""
        self._heap = []
        for key, expires in self._expiry.items():
            self._tie += 1
            self._heap.append((expires, self._tie, key))
        heapq.heapify(self._heap)

    def to_state(self) -> list[list[Any]]:
        return [[key, expires] for key, expires in self._expiry.items()]

    def load_state(self, state: list[list[Any]]) -> None:
        self.journal.unsaved()  # the loaded keys are not journalled: the next save is whole
        for key, expires in state:
            key = tuple(key) if isinstance(key, list) else key  # JSON turns tuples to lists
            self._expiry[key] = float(expires)
            self._tie += 1
            heapq.heappush(self._heap, (float(expires), self._tie, key))

    def changes(self) -> KeyedChanges:
        """What changed since the last call, for the store (on the loop: O(changes)); the
        first call, and the first after `unsaved`, gives every key. Values are expiries:
        the store's entries are `[key, expiry]`, as in `to_state`."""
        return self.journal.take(self._expiry)

    def unsaved(self) -> None:
        self.journal.unsaved()

    def prune(self, now: float) -> float | None:
        """Forget the keys that expire by `now`; the latest expiry forgotten, if any."""
        latest = None
        while self._heap and self._heap[0][0] <= now:
            _, _, key = heapq.heappop(self._heap)
            expires = self._expiry.get(key)
            if expires is None:
                continue
            if expires <= now:
                del self._expiry[key]
                self.journal.forgot(key)
                latest = expires
            else:  # seen again since it was pushed: wait for its later expiry
                self._tie += 1
                heapq.heappush(self._heap, (expires, self._tie, key))
        self.journal.bound(len(self._expiry))
        return latest
