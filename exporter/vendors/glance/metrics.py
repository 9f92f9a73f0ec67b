"""The metric families the Glance collector emits: its part of the metric contract."""

from __future__ import annotations

from ...families import FamilySpec

FAMILIES = (
    FamilySpec("glance_sessions_current", "gauge", ("account", "session_type", "status")),
    FamilySpec("glance_session_guests_current", "gauge", ("account", "session_type")),
    FamilySpec(
        "glance_waiting_session_oldest_start_timestamp_seconds",
        "gauge",
        ("account", "session_type"),
    ),
    FamilySpec(
        "glance_sessions_today", "gauge", ("account", "session_type", "status", "counted_by")
    ),
    FamilySpec(
        "glance_session_average_duration_seconds",
        "gauge",
        ("account", "session_type", "status", "counted_by"),
    ),
    FamilySpec("glance_sessions_completed_total", "counter", ("account", "session_type", "status")),
    FamilySpec(
        "glance_session_duration_seconds", "histogram", ("account", "session_type", "outcome")
    ),
    FamilySpec("glance_session_wait_seconds", "histogram", ("account", "session_type", "outcome")),
    FamilySpec("glance_user_sessions_current", "gauge", ("account", "user", "session_type")),
    # How far the completed feed has been read, behind now during a catch-up.
    FamilySpec("glance_completed_feed_timestamp_seconds", "gauge", ("account",)),
)
