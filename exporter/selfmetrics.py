"""The exporter's own metrics (session_exporter_*): health of each account and of us."""

from __future__ import annotations

import platform
from collections.abc import Collection, Hashable
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import __version__
from .families import CounterSet, LabelValues, gauge, merge_families

Key = tuple[str, str]  # (vendor, account)
# One account's counter series by counter name, as `SelfMetrics.account_counts` finds them.
AccountCounts = dict[str, list[tuple[LabelValues, float]]]
_ACCOUNT_LABELS = ("vendor", "account")
STATE_OPERATIONS = ("restore", "save")
_UP = ("session_exporter_up", "1 when the account's last collection cycle succeeded, 0 otherwise.")
_LAST_SUCCESS = (
    "session_exporter_last_success_timestamp_seconds",
    "When the account's last successful collection cycle ended (Unix time).",
)
_DURATION = (
    "session_exporter_collect_duration_seconds",
    "Wall time of the account's last collection cycle.",
)


# How long the status page keeps showing a failed restore once saves succeed.
RESTORE_FAILURE_SHOWN = 3600.0


@dataclass(frozen=True)
class StateFailure:
    operation: str  # restore or save
    at: float
    message: str  # scrubbed and capped: a path, or what SQLite said


@dataclass
class AccountHealth:
    up: bool = False
    last_success: float | None = None
    last_attempt: float | None = None
    collect_duration: float | None = None
    first_cycle_done: bool = False
    # The last failure to save or restore its state (--storage.path), until a save
    # succeeds: the status page shows it.
    state_failure: StateFailure | None = None


class SelfMetrics:
    def __init__(self) -> None:
        self.health: dict[tuple[str, str], AccountHealth] = {}
        self.requests = CounterSet(
            "session_exporter_upstream_requests_total",
            "Requests sent to vendor APIs, by operation.",
            ("vendor", "account", "operation"),
        )
        self.failures = CounterSet(
            "session_exporter_upstream_request_failures_total",
            "Failed vendor API operations, by reason (timeout, connection, http_5xx, http_4xx, "
            "http_3xx, auth, rate_limited, body_too_large, parse, vendor_error, limit_exceeded, "
            "internal).",
            ("vendor", "account", "operation", "reason"),
        )
        self.rejected = CounterSet(
            "session_exporter_records_rejected_total",
            "Vendor records skipped or folded while parsing (shifted rows, labels over the "
            "limit, unusable values).",
            ("vendor", "account", "reason"),
        )
        self.render_drops = CounterSet(
            "session_exporter_render_dropped_total",
            "Times an account's series were left out of /metrics: render_failed, "
            "too_many_series (max_series_per_account), exposition_too_large "
            "(max_exposition_bytes).",
            ("vendor", "account", "reason"),
        )
        self.state_failures = CounterSet(
            "session_exporter_state_failures_total",
            "Times an account's saved state (--storage.path) could not be read at start "
            "(restore: it starts afresh) or written after a cycle (save: the next save "
            "writes it whole).",
            ("vendor", "account", "operation"),
        )
        self.reload_ok = True
        self.reload_success_time: float | None = None
        # Why the last reload was refused (scrubbed, capped), for the status page banner.
        self.reload_error = ""
        # Counter changes per account, so that a render re-encodes only the accounts
        # whose own series changed (`version`). Counters change only through the methods
        # below.
        self._changes: dict[Key, int] = {}

    def _counted(self, vendor: str, account: str) -> None:
        key = (vendor, account)
        self._changes[key] = self._changes.get(key, 0) + 1

    def upstream_request(self, vendor: str, account: str, operation: str) -> None:
        self.requests.inc((vendor, account, operation))
        self._counted(vendor, account)

    def upstream_failure(self, vendor: str, account: str, operation: str, reason: str) -> None:
        self.failures.inc((vendor, account, operation, reason))
        self._counted(vendor, account)

    def record_rejected(self, vendor: str, account: str, reason: str, count: int = 1) -> None:
        if count:
            self.rejected.inc((vendor, account, reason), count)
            self._counted(vendor, account)

    def render_dropped(self, vendor: str, account: str, reason: str) -> None:
        self.render_drops.inc((vendor, account, reason))
        self._counted(vendor, account)

    def state_stored(self, vendor: str, account: str) -> None:
        """The account's state is kept (--storage.path): its failure series exist at 0,
        so that `increase()` sees the first failure."""
        for operation in STATE_OPERATIONS:
            self.state_failures.values.setdefault((vendor, account, operation), 0.0)
        self._counted(vendor, account)

    def state_failed(self, vendor: str, account: str, failure: StateFailure) -> None:
        self.state_failures.inc((vendor, account, failure.operation))
        self.account((vendor, account)).state_failure = failure
        self._counted(vendor, account)

    def state_saved(self, vendor: str, account: str, now: float) -> None:
        """A save succeeded: a failed save is over. A failed restore stays shown for
        `RESTORE_FAILURE_SHOWN` after it: the first save comes one interval after it, so
        whoever opened the page a minute later never saw why the counts started afresh."""
        health = self.health.get((vendor, account))
        if health is None or health.state_failure is None:
            return
        failure = health.state_failure
        if failure.operation == "save" or now - failure.at >= RESTORE_FAILURE_SHOWN:
            health.state_failure = None

    def account(self, key: tuple[str, str]) -> AccountHealth:
        return self.health.setdefault(key, AccountHealth())

    def forget(self, key: tuple[str, str]) -> None:
        """An account removed from the config takes all its self-series with it."""
        self.health.pop(key, None)
        self._changes.pop(key, None)
        for counters in self._counter_sets():
            for labels in [k for k in counters.values if k[:2] == key]:
                del counters.values[labels]

    def _counter_sets(self) -> tuple[CounterSet, ...]:
        return (
            self.requests,
            self.failures,
            self.rejected,
            self.render_drops,
            self.state_failures,
        )

    # -- exposition: per account, so that renders re-encode only what changed ------------

    def accounts(self) -> list[Key]:
        """Every account with series of its own, in the order they are shown."""
        return sorted(self.health.keys() | self._changes.keys())

    def version(self, key: Key) -> Hashable:
        """Equal as long as `account_families` of the account would be."""
        health = self.health.get(key)
        shown = (
            None if health is None else (health.up, health.last_success, health.collect_duration)
        )
        return self._changes.get(key, 0), shown

    def account_families(self, keys: Collection[Key]) -> dict[Key, list[Metric]]:
        """The series of each of these accounts on its own: one family per account
        metric, empty ones included (as `shared_families` orders them)."""
        counted = self.account_counts(keys)
        return {key: self.families_of(key, counts) for key, counts in counted.items()}

    def account_counts(self, keys: Collection[Key]) -> dict[Key, AccountCounts]:
        """Each of these accounts' counter series, for `families_of`: one pass over each
        counter for all the accounts asked for."""
        counted: dict[Key, AccountCounts] = {k: {} for k in keys}
        if counted:
            for counters in self._counter_sets():
                for labels, value in counters.values.items():
                    mine = counted.get((labels[0], labels[1]))
                    if mine is not None:
                        mine.setdefault(counters.name, []).append((labels, value))
        return counted

    def families_of(self, key: Key, counts: AccountCounts) -> list[Metric]:
        """One account's families, from its `account_counts` and its health now."""
        health = self.health.get(key)
        up: dict[LabelValues, float] = {}
        last: dict[LabelValues, float] = {}
        duration: dict[LabelValues, float] = {}
        if health is not None:
            up[key] = 1.0 if health.up else 0.0
            if health.last_success is not None:
                last[key] = health.last_success
            if health.collect_duration is not None:
                duration[key] = health.collect_duration
        families: list[Metric] = [
            gauge(*_UP, _ACCOUNT_LABELS, up),
            gauge(*_LAST_SUCCESS, _ACCOUNT_LABELS, last),
            gauge(*_DURATION, _ACCOUNT_LABELS, duration),
        ]
        for counters in self._counter_sets():
            family = CounterMetricFamily(
                counters.name.removesuffix("_total"),
                counters.documentation,
                labels=list(counters.labelnames),
            )
            for labels, value in sorted(counts.get(counters.name, ())):
                family.add_metric(list(labels), value)
            families.append(family)
        return families

    def shared_families(self) -> list[Metric]:
        """Every family of ours, in the order shown: the per-account ones without
        samples (those come from `account_families`), then the process's own."""
        build = GaugeMetricFamily(
            "session_exporter_build_info",
            "Build information of session-exporter; the value is always 1.",
            labels=["version", "python_version"],
        )
        build.add_metric([__version__, platform.python_version()], 1.0)
        families: list[Metric] = [
            gauge(*_UP, _ACCOUNT_LABELS, {}),
            gauge(*_LAST_SUCCESS, _ACCOUNT_LABELS, {}),
            gauge(*_DURATION, _ACCOUNT_LABELS, {}),
            *(
                CounterMetricFamily(
                    c.name.removesuffix("_total"), c.documentation, labels=list(c.labelnames)
                )
                for c in self._counter_sets()
            ),
            build,
            gauge(
                "session_exporter_config_last_reload_successful",
                "1 when the last config load or reload succeeded.",
                (),
                {(): 1.0 if self.reload_ok else 0.0},
            ),
        ]
        if self.reload_success_time is not None:
            families.append(
                gauge(
                    "session_exporter_config_last_reload_success_timestamp_seconds",
                    "When the config was last loaded successfully (Unix time).",
                    (),
                    {(): self.reload_success_time},
                )
            )
        return families

    def families(self) -> list[Metric]:
        """All of our series, one family per metric (for tests and tools; renders use
        `shared_families` and `account_families`, which stitch to the same bytes)."""
        per_account = self.account_families(self.accounts())
        return merge_families(
            [*self.shared_families(), *(f for families in per_account.values() for f in families)]
        )
