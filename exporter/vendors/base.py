"""The interface every vendor package implements, and nothing more.

A vendor is a `Vendor` record: how to read its account config, how to build a collector
for an account, and which metric families it emits (its simulator lives apart, in
`exporter.simulators`). The core knows vendors only through the registry,
`exporter.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import structlog
from prometheus_client.core import Metric

from ..accounts import AccountCommon
from ..accounts import AccountConfig as AccountConfig  # re-exported for vendor packages
from ..clock import Clock
from ..config import Fields, GlobalConfig
from ..families import BoundedLabel, CounterSet, FamilySpec
from ..http import Upstream
from ..rejections import RejectedOnce
from ..savedstate import SavedState

# A collector applying a long reply awaits `asyncio.sleep(0)` after every this many
# records (about a millisecond of work), so that scrapes are served in between.
APPLY_CHUNK = 500


@dataclass
class CollectorContext:
    clock: Clock
    log: structlog.stdlib.BoundLogger
    label_value_limit: int
    # Count records that were skipped or folded, by a short reason.
    reject: Callable[[str, int], None]
    # When this process started; feeds begin here unless a lookback is configured.
    started_at: float
    # Bounds on one reply, one cycle and one account's dedupe memory (GlobalConfig).
    label_value_max_length: int = 64
    max_records_per_reply: int = 100_000
    max_pages_per_cycle: int = 200
    max_remembered_ids: int = 250_000
    # The longest a vendor's Retry-After is honoured (GlobalConfig.max_backoff).
    max_backoff: float = 600.0
    # Beyond this an account is left out of /metrics (GlobalConfig.max_series_per_account).
    max_series_per_account: int = 20_000
    # The records whose labels were reported, shared by the account's labels (`label`).
    _labelled_once: RejectedOnce | None = field(default=None, init=False, repr=False)

    def counter(self, name: str, documentation: str, labelnames: Sequence[str]) -> CounterSet:
        """A counter of free-text labels, its label combinations bounded to a quarter of
        `max_series_per_account` (beyond, they fold into `other`, reported): its series
        never shrink, and each label bounded alone still multiplies with the others."""
        return CounterSet(
            name,
            documentation,
            labelnames,
            max_series=self.max_series_per_account // 4,
            reject=self.reject,
        )

    def rejected_once(self) -> RejectedOnce:
        """The one way a collector counts a rejected record once, however many replies
        hold it: by the record's id, where the parser could read one."""
        return RejectedOnce(self.reject)

    def label(self, known: Iterable[str] = ()) -> BoundedLabel:
        """The one way a collector turns free vendor text into a label value: capped in
        length and in distinct values, scrubbed, and reporting its own overflow: once
        per record where the caller names it, across every label of the account."""
        if self._labelled_once is None:
            self._labelled_once = self.rejected_once()
        once = self._labelled_once

        def report_once(reason: str, count: int, record: Hashable) -> None:
            once.reject(reason, repeat(record, count), self.clock.time())

        return BoundedLabel(
            known,
            self.label_value_limit,
            max_length=self.label_value_max_length,
            reject=self.reject,
            once=report_once,
        )


class AccountCollector(ABC):
    """Polls one account and holds its metric state between cycles."""

    @abstractmethod
    async def collect(self, upstream: Upstream) -> None:
        """Run one cycle. Raise `UpstreamError` (made with `upstream.error`) on failure,
        after applying whatever this cycle already learned that is consistent."""

    @abstractmethod
    def families(self) -> Iterable[Metric]:
        """The account's metric families as of the last cycle. Called on render, not on
        scrape: it may allocate, but must not do I/O."""

    def state(self) -> dict[str, Any] | None:
        """JSON-serialisable state worth keeping across restarts with --storage.path
        (feed cursors, dedupe keys, counter and histogram values), or None: what the store
        gives back to `restore`. Saved (through `saved_state`) after each successful
        cycle, so it is always the state of a complete cycle."""
        return None

    def saved_state(self) -> SavedState | None:
        """What the store writes after a successful cycle, taken on the loop: a collector
        with a large keyed table (dedupe memory) gives it as the changes since the last
        call, so this costs what changed in the cycle. Loaded back, it is a `state()`."""
        state = self.state()
        return None if state is None else SavedState(state)

    def state_unsaved(self) -> None:  # noqa: B027 - optional hook
        """The last `saved_state()` was not written (failed, cancelled): the next one
        must not rely on it."""

    def restore(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Resume from what `state()` returned in an earlier process."""

    def restored_from_store(self) -> None:  # noqa: B027 - optional hook
        """Just after `restore`: the store's keyed tables hold exactly what was restored,
        so the next `saved_state()` may give changes alone. A collector whose restore
        changes its keyed entries (an upgrade of their shape) must not rely on it."""


@dataclass(frozen=True)
class Vendor:
    name: str
    default_base_url: str
    parse_account: Callable[[Fields, AccountCommon, GlobalConfig], AccountConfig]
    new_collector: Callable[[Any, CollectorContext], AccountCollector]
    # The metric families this vendor's collector emits (its contract): the tests check
    # the rendered exposition, the dashboards and the README table against them.
    families: tuple[FamilySpec, ...] = ()
