"""The metric families the Rescue collector emits: its part of the metric contract."""

from __future__ import annotations

from ...families import FamilySpec
from .config import EXTRA_LABELS

FAMILIES = (
    FamilySpec(
        "rescue_sessions", "gauge", ("account", "node", "status"), optional_labels=EXTRA_LABELS
    ),
    FamilySpec(
        "rescue_session_status_oldest_change_timestamp_seconds",
        "gauge",
        ("account", "node", "status"),
    ),
    FamilySpec("rescue_session_wait_seconds", "histogram", ("account", "node", "outcome")),
    # Diagnostics: the status page and the runbook use these, no dashboard panel does.
    FamilySpec("rescue_session_technicians", "gauge", ("account", "node"), on_dashboard=False),
    FamilySpec(
        "rescue_get_fallbacks_total", "counter", ("account", "operation"), on_dashboard=False
    ),
    FamilySpec("session_exporter_unrecognized_status_values", "gauge", ("vendor", "account")),
)
