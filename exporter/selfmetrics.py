"""The exporter's own metrics (session_exporter_*): health of each account and of us."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric

from . import __version__
from .families import CounterSet, LabelValues, gauge


@dataclass
class AccountHealth:
    up: bool = False
    last_success: float | None = None
    last_attempt: float | None = None
    collect_duration: float | None = None
    first_cycle_done: bool = False


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
            "auth, rate_limited, body_too_large, parse, vendor_error, limit_exceeded, internal).",
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
        self.reload_ok = True
        self.reload_success_time: float | None = None

    def upstream_request(self, vendor: str, account: str, operation: str) -> None:
        self.requests.inc((vendor, account, operation))

    def upstream_failure(self, vendor: str, account: str, operation: str, reason: str) -> None:
        self.failures.inc((vendor, account, operation, reason))

    def record_rejected(self, vendor: str, account: str, reason: str, count: int = 1) -> None:
        if count:
            self.rejected.inc((vendor, account, reason), count)

    def render_dropped(self, vendor: str, account: str, reason: str) -> None:
        self.render_drops.inc((vendor, account, reason))

    def account(self, key: tuple[str, str]) -> AccountHealth:
        return self.health.setdefault(key, AccountHealth())

    def forget(self, key: tuple[str, str]) -> None:
        """An account removed from the config takes all its self-series with it."""
        self.health.pop(key, None)
        for counters in (self.requests, self.failures, self.rejected, self.render_drops):
            for labels in [k for k in counters.values if k[:2] == key]:
                del counters.values[labels]

    def families(self) -> list[Metric]:
        up: dict[LabelValues, float] = {}
        last: dict[LabelValues, float] = {}
        duration: dict[LabelValues, float] = {}
        for key, h in self.health.items():
            up[key] = 1.0 if h.up else 0.0
            if h.last_success is not None:
                last[key] = h.last_success
            if h.collect_duration is not None:
                duration[key] = h.collect_duration
        labels = ("vendor", "account")
        build = GaugeMetricFamily(
            "session_exporter_build_info",
            "Build information of session-exporter; the value is always 1.",
            labels=["version", "python_version"],
        )
        build.add_metric([__version__, platform.python_version()], 1.0)
        families: list[Metric] = [
            gauge("session_exporter_up",
                  "1 when the account's last collection cycle succeeded, 0 otherwise.",
                  labels, up),
            gauge("session_exporter_last_success_timestamp_seconds",
                  "When the account's last successful collection cycle ended (Unix time).",
                  labels, last),
            gauge("session_exporter_collect_duration_seconds",
                  "Wall time of the account's last collection cycle.", labels, duration),
            self.requests.family(),
            self.failures.family(),
            self.rejected.family(),
            self.render_drops.family(),
            build,
            gauge("session_exporter_config_last_reload_successful",
                  "1 when the last config load or reload succeeded.", (),
                  {(): 1.0 if self.reload_ok else 0.0}),
        ]
        if self.reload_success_time is not None:
            families.append(gauge(
                "session_exporter_config_last_reload_success_timestamp_seconds",
                "When the config was last loaded successfully (Unix time).", (),
                {(): self.reload_success_time}))
        return families
