"""Rejected records reach the log: when a reason first comes for an account, then at most
hourly with how many since (probe 9: a counter and a detail page said it, no log line)."""

from __future__ import annotations

import structlog.testing

from exporter.logs import get_logger
from exporter.scheduler import REJECTIONS_LOGGED_EVERY, RejectionLog
from exporter.simulators.clock import FakeClock


def test_a_reason_is_logged_when_it_first_comes_then_hourly_with_the_count_since() -> None:
    clock = FakeClock()
    logged = RejectionLog(get_logger(vendor="glance", account="acme"), clock)
    with structlog.testing.capture_logs() as logs:
        logged.rejected("implausible_value", 1)
        clock.advance(60)
        logged.rejected("implausible_value", 2)  # within the hour: counted, not logged
        logged.rejected("invalid_value", 1)  # another reason: its own first line
        clock.advance(REJECTIONS_LOGGED_EVERY)
        logged.rejected("implausible_value", 4)
    assert [(e["event"], e["reason"], e["count"], e["log_level"]) for e in logs] == [
        ("records_rejected", "implausible_value", 1, "warning"),
        ("records_rejected", "invalid_value", 1, "warning"),
        ("records_rejected", "implausible_value", 6, "warning"),
    ]
