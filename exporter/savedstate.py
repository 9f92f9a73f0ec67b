"""What a collector hands the store after a cycle (--storage.path): a small blob, and its
large keyed tables (dedupe memory) as the changes since the last save.

Taking a `SavedState` on the event loop costs what changed in the cycle, not what is
remembered: the keyed tables journal their changes, and the store writes them (JSON, SQL)
in its writer thread, in the same transaction as the blob.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KeyedChanges:
    """One keyed table's changes: entries to insert or replace, keys to delete.

    `whole` replaces the table: `upserts` is then every entry and `deletes` is empty. A
    value is the rest of the entry after its key: a scalar or a list, loaded back as
    `[key, value]` or `[key, *value]`."""

    whole: bool
    # Keys are hashable and JSON-serialisable (a tuple comes back a list): Any, because a
    # Mapping's key type is invariant and tables differ in theirs.
    upserts: Mapping[Any, Any]
    deletes: Collection[Any] = ()


@dataclass(frozen=True)
class SavedState:
    """`blob`: the JSON-serialisable small part (cursors, counters, histograms), saved
    whole. `tables`: name -> changes; loaded back, `state[name]` is the list of entries,
    as `state()` gives them, so `restore` reads both formats alike."""

    blob: dict[str, Any]
    tables: dict[str, KeyedChanges] = field(default_factory=dict)

    @property
    def whole(self) -> bool:
        """Does it stand alone, without the changes saved before it?"""
        return all(changes.whole for changes in self.tables.values())
