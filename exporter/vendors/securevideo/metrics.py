"""The metric families the SecureVideo collector emits: its part of the metric contract."""

from __future__ import annotations

from ...families import FamilySpec

FAMILIES = (
    FamilySpec(
        "securevideo_sessions_total",
        "counter",
        ("account", "billable_status", "schedule_type", "provider"),
    ),
    FamilySpec("securevideo_session_duration_seconds", "histogram", ("account", "provider")),
    FamilySpec("securevideo_session_wait_seconds", "histogram", ("account", "provider")),
    FamilySpec("securevideo_session_consult_seconds", "histogram", ("account", "provider")),
    FamilySpec(
        "securevideo_session_start_delay_seconds", "histogram", ("account", "schedule_type")
    ),
    FamilySpec("securevideo_session_early_starts_total", "counter", ("account", "schedule_type")),
    FamilySpec("securevideo_sessions_in_progress", "gauge", ("account",)),
    FamilySpec("securevideo_sessions_month", "gauge", ("account", "billable_status")),
)
