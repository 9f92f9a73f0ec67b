#!/usr/bin/env python3
"""Builds the Grafana dashboards of session-exporter: grafana/dashboards/*.json.

The JSON files are what Grafana loads (provisioning or import); this script is how they are
written, so that the four dashboards share one style: the datasource and account variables,
units on every panel, value mappings from vendor codes to words, `histogram_quantile` over
`rate(...[$__rate_interval])`. After editing, run `python3 grafana/build_dashboards.py`;
`--check` exits 1 when a committed file differs from what the script builds (the tests run
it). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}
SEP = " · "

# Vendor codes -> words (the exporter keeps the vendors' codes as label values).
SESSION_TYPES = {"C": "Cobrowse", "G": "Screen share", "V": "Video"}
# Glance documents A, W and C only; the other letters (D E J K L Q T U X) stay as they are.
GLANCE_STATUSES = {"A": "Active", "W": "Waiting", "C": "Completed"}
BILLABLE = {
    "BILL": "Billable",
    "SVCO": "SecureVideo support (not counted)",
    "DUPL": "Likely duplicate (not counted)",
    "COMP": "Comped (not counted)",
}
UP = {"0": ("Down", "red"), "1": ("Up", "green")}
RELOAD = {"0": ("Failed", "red"), "1": ("OK", "green")}
RESCUE_OPEN = "Waiting|Active|Connecting|On Hold|Reconnecting|Rebooting|Rebooted|Transferring"


# --------------------------------------------------------------------------- building blocks


def value_map(codes: dict[str, str] | dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    options: dict[str, Any] = {}
    for index, (code, word) in enumerate(codes.items()):
        if isinstance(word, tuple):
            options[code] = {"text": word[0], "color": word[1], "index": index}
        else:
            options[code] = {"text": f"{word}", "index": index}
    return [{"type": "value", "options": options}]


def rename_last(codes: dict[str, str]) -> list[dict[str, Any]]:
    """Transformations turning a trailing vendor code of a series name into its word:
    legends end with `· {{label}}`, e.g. "demo-glance · C" -> "demo-glance · Cobrowse"."""
    return [
        {
            "id": "renameByRegex",
            "options": {"regex": f"^(.*){SEP}{code}$", "renamePattern": f"$1{SEP}{word}"},
        }
        for code, word in codes.items()
    ]


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


GREEN = thresholds((None, "green"))


def target(
    expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, fmt: str = "time_series"
) -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DS,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "refId": ref,
    }
    if fmt != "time_series":
        t["format"] = fmt
    return t


def targets(*specs: tuple[str, str]) -> list[dict[str, Any]]:
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(specs)]


class Layout:
    """Places panels left to right on Grafana's 24-column grid, rows top to bottom."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "id": self._id(),
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def field_config(
    unit: str,
    *,
    mappings: list[dict[str, Any]] | None = None,
    steps: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
    overrides: list[dict[str, Any]] | None = None,
    color: str = "palette-classic",
    no_value: str | None = None,
    decimals: int | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": color},
        "mappings": mappings or [],
        "thresholds": steps or GREEN,
    }
    if custom is not None:
        defaults["custom"] = custom
    if no_value is not None:
        defaults["noValue"] = no_value
    if decimals is not None:
        defaults["decimals"] = decimals
    return {"defaults": defaults, "overrides": overrides or []}


def panel(
    kind: str,
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    fc: dict[str, Any],
    options: dict[str, Any],
    transformations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": tgts,
        "fieldConfig": fc,
        "options": options,
    }
    if transformations:
        p["transformations"] = transformations
    return p


def stat(
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    unit: str,
    *,
    steps: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    text_mode: str = "auto",
    graph: str = "area",
    no_value: str | None = None,
    color_mode: str = "value",
) -> dict[str, Any]:
    options = {
        "colorMode": color_mode,
        "graphMode": graph,
        "justifyMode": "auto",
        "orientation": "auto",
        "percentChangeColorMode": "standard",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showPercentChange": False,
        "textMode": text_mode,
        "wideLayout": True,
    }
    return panel(
        "stat",
        title,
        description,
        tgts,
        field_config(unit, mappings=mappings, steps=steps, color="thresholds", no_value=no_value),
        options,
    )


TS_CUSTOM = {
    "drawStyle": "line",
    "lineInterpolation": "linear",
    "lineWidth": 1,
    "fillOpacity": 10,
    "showPoints": "never",
    "spanNulls": False,
    "axisSoftMin": 0,
    "stacking": {"mode": "none", "group": "A"},
}


def timeseries(
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    unit: str,
    *,
    renames: list[dict[str, Any]] | None = None,
    stack: bool = False,
    steps: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    custom = json.loads(json.dumps(TS_CUSTOM))
    if stack:
        custom["stacking"]["mode"] = "normal"
        custom["fillOpacity"] = 40
    options = {
        "legend": {
            "calcs": ["lastNotNull", "max"],
            "displayMode": "table",
            "placement": "bottom",
            "showLegend": True,
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel(
        "timeseries",
        title,
        description,
        tgts,
        field_config(unit, custom=custom, steps=steps, mappings=mappings),
        options,
        renames,
    )


def table(
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    unit: str,
    *,
    columns: dict[str, tuple[str, dict[str, Any] | None]],
    value_title: str = "Value",
) -> dict[str, Any]:
    """An instant table: one row per series, label columns renamed, codes mapped to words."""
    for t in tgts:
        t.update({"instant": True, "range": False, "format": "table"})
    overrides = []
    for label, (_heading, codes) in columns.items():
        if codes:
            overrides.append(
                {
                    "matcher": {"id": "byName", "options": label},
                    "properties": [{"id": "mappings", "value": value_map(codes)}],
                }
            )
    rename = {label: heading for label, (heading, _codes) in columns.items()}
    rename["Value"] = value_title
    index = {name: i for i, name in enumerate([*columns, "Value"])}
    transformations = [
        {
            "id": "organize",
            "options": {
                "excludeByName": {"Time": True},
                "indexByName": index,
                "renameByName": rename,
            },
        }
    ]
    options = {
        "frameIndex": 0,
        "showHeader": True,
        "cellHeight": "sm",
        "sortBy": [{"displayName": value_title, "desc": True}],
    }
    return panel(
        "table",
        title,
        description,
        tgts,
        field_config(unit, overrides=overrides, color="thresholds"),
        options,
        transformations,
    )


def heatmap(title: str, description: str, expr: str, unit: str) -> dict[str, Any]:
    options = {
        "calculate": False,
        "cellGap": 1,
        "color": {
            "exponent": 0.5,
            "fill": "dark-orange",
            "mode": "scheme",
            "reverse": False,
            "scale": "exponential",
            "scheme": "Oranges",
            "steps": 64,
        },
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "showValue": "never",
        "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": False},
        "yAxis": {"axisPlacement": "left", "reverse": False, "unit": unit},
    }
    return panel(
        "heatmap",
        title,
        description,
        [target(expr, "{{le}}", fmt="heatmap")],
        field_config("short"),
        options,
    )


def state_timeline(
    title: str, description: str, tgts: list[dict[str, Any]], codes: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    options = {
        "alignValue": "left",
        "mergeValues": True,
        "rowHeight": 0.9,
        "showValue": "auto",
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return panel(
        "state-timeline",
        title,
        description,
        tgts,
        field_config(
            "none",
            mappings=value_map(codes),
            color="thresholds",
            steps=thresholds((None, "red"), (1, "green")),
        ),
        options,
    )


def quantiles(
    metric: str, by: str, selector: str, legend: str, qs: tuple[float, ...] = (0.5, 0.9)
) -> list[dict[str, Any]]:
    return targets(
        *[
            (
                f"histogram_quantile({q}, sum by ({by}, le) "
                f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))",
                f"p{round(q * 100)}{SEP}{legend}",
            )
            for q in qs
        ]
    )


# --------------------------------------------------------------------------- variables


def datasource_var() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
        "includeAll": False,
        "multi": False,
        "skipUrlSync": False,
    }


def query_var(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": query,
        "current": {"text": "All", "value": "$__all", "selected": True},
        "hide": 0,
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "options": [],
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "skipUrlSync": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    tags: list[str],
    variables: list[dict[str, Any]],
    layout: Layout,
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["session-exporter", *tags],
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "session-exporter",
                "type": "dashboards",
                "tags": ["session-exporter"],
                "asDropdown": True,
                "icon": "external link",
                "includeVars": False,
                "keepTime": True,
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": [datasource_var(), *variables]},
        "panels": layout.panels,
    }


def exporter_row(layout: Layout, vendor: str) -> None:
    sel = f'vendor="{vendor}", account=~"$account"'
    layout.row("Exporter: polling this vendor")
    layout.add(
        state_timeline(
            "Account up",
            "session_exporter_up: 1 when the account's last poll cycle succeeded.",
            targets((f"session_exporter_up{{{sel}}}", "{{account}}")),
            UP,
        ),
        8,
        6,
    )
    layout.add(
        timeseries(
            "Upstream failures by operation and reason",
            "Failed vendor API operations per second (session_exporter_upstream_request_failures"
            "_total): timeout, connection, http_5xx, http_4xx, http_3xx, auth, rate_limited,"
            " body_too_large, parse, vendor_error, internal. Operations without failures show as 0"
            " (no reason).",
            targets(
                (
                    f"sum by (account, operation, reason) (rate(session_exporter_upstream_request_"
                    f"failures_total{{{sel}}}[$__rate_interval]))\nor on (account, operation)\n"
                    f"0 * sum by (account, operation) (rate("
                    f"session_exporter_upstream_requests_total{{{sel}}}[$__rate_interval]))",
                    f"{{{{account}}}}{SEP}{{{{operation}}}}{SEP}{{{{reason}}}}",
                )
            ),
            "reqps",
        ),
        8,
        6,
    )
    layout.add(
        timeseries(
            "Data age",
            "Seconds since the account's last successful poll.",
            targets(
                (
                    f"time() - session_exporter_last_success_timestamp_seconds{{{sel}}}",
                    "{{account}}",
                )
            ),
            "s",
            steps=thresholds((None, "green"), (120, "orange"), (600, "red")),
        ),
        4,
        6,
    )
    layout.add(
        timeseries(
            "Records rejected",
            "Vendor records skipped or folded while parsing, per second "
            "(session_exporter_records_rejected_total); 0 (no reason) when none.",
            targets(
                (
                    f"sum by (account, reason) (rate(session_exporter_records_rejected_total"
                    f"{{{sel}}}[$__rate_interval]))\nor on (account)\n0 * sum by (account) "
                    f"(rate(session_exporter_upstream_requests_total{{{sel}}}[$__rate_interval]))",
                    f"{{{{account}}}}{SEP}{{{{reason}}}}",
                )
            ),
            "ops",
        ),
        4,
        6,
    )


# --------------------------------------------------------------------------- service level

PERCENT_STEPS = thresholds((None, "red"), (0.7, "orange"), (0.8, "green"))


def service_level_row(
    lay: Layout,
    *,
    prefix: str,
    sel: str,
    legend: str,
    account_sel: str,
    abandonment: bool,
    handle: bool,
    about: str,
) -> None:
    """The "Service level" row: service level against its objective, average speed of
    answer, abandonment rate, handle time and offered/answered/abandoned per hour, from the
    recording rules of prometheus/rules/session-exporter-service-level.rules.yml (1 h
    windows). `prefix` is the rules' level (vendor_account: or account_node:rescue_), `sel`
    their selector, `account_sel` the selector of the per-account series (objective, handle
    time). A vendor without abandonment (SecureVideo) or handle time (Rescue) has no panel."""
    lay.row("Service level")
    lay.add(
        stat(
            "Service level, last hour",
            "Share of the sessions offered in the last hour (answered, abandoned or timed out) "
            "that were answered within the account's service-level threshold (20 s unless "
            "overridden). Colours assume the default objective of 80 %. " + about,
            targets((f"{prefix}session_service_level:ratio1h{{{sel}}}", legend)),
            "percentunit",
            steps=PERCENT_STEPS,
            no_value="no sessions",
        ),
        6,
        8,
    )
    lay.add(
        timeseries(
            "Service level against its objective",
            "Service level over the hour before each point and the account's objective "
            "(session_exporter:threshold_service_level_objective, 80 % unless overridden). The "
            "burn-rate alerts compare the two; see prometheus/RUNBOOK.md.",
            targets(
                (f"{prefix}session_service_level:ratio1h{{{sel}}}", legend),
                (
                    f"vendor_account:service_level_objective:configured{{{account_sel}}}",
                    f"objective{SEP}{{{{vendor}}}}{SEP}{{{{account}}}}",
                ),
            ),
            "percentunit",
        ),
        18,
        8,
    )
    kpis = [
        timeseries(
            "Average speed of answer",
            "Mean wait of the sessions answered in the hour before each point (ASA). " + about,
            targets((f"{prefix}session_speed_of_answer_seconds:mean1h{{{sel}}}", legend)),
            "s",
        )
    ]
    if abandonment:
        kpis.append(
            timeseries(
                "Abandonment rate",
                "Share of the sessions offered in the hour before each point whose customer gave "
                "up while waiting (outcome abandoned; timed-out sessions are offered but neither "
                "answered nor abandoned).",
                targets((f"{prefix}session_abandonment:ratio1h{{{sel}}}", legend)),
                "percentunit",
            )
        )
    if handle:
        kpis.append(
            timeseries(
                "Average handle time",
                "Mean handle time of the sessions that ended in the hour before each point: Glance "
                "duration of answered sessions (abandoned ones excluded), SecureVideo consult time "
                "(duration minus wait). LogMeIn Rescue's getSession has no handle time.",
                targets(
                    (
                        f"vendor_account:session_handle_seconds:mean1h{{{account_sel}}}",
                        f"{{{{vendor}}}}{SEP}{{{{account}}}}",
                    )
                ),
                "s",
            )
        )
    for kpi in kpis:
        lay.add(kpi, 24 // len(kpis), 8)
    specs = [
        (f"{prefix}sessions_offered:increase1h{{{sel}}}", f"offered{SEP}{legend}"),
        (f"{prefix}sessions_answered:increase1h{{{sel}}}", f"answered{SEP}{legend}"),
    ]
    if abandonment:
        specs.append((f"{prefix}sessions_abandoned:increase1h{{{sel}}}", f"abandoned{SEP}{legend}"))
    lay.add(
        timeseries(
            "Offered, answered and abandoned per hour"
            if abandonment
            else "Offered and answered per hour",
            "Sessions that left the queue in the hour before each point: offered (answered, "
            "abandoned or timed out; transferred sessions and unknown outcomes are not offered), "
            "answered"
            + (
                ", abandoned."
                if abandonment
                else ". SecureVideo's History lists "
                "connected sessions only: every session is answered, none abandoned."
            ),
            targets(*specs),
            "short",
        ),
        24,
        8,
    )


# --------------------------------------------------------------------------- dashboards


def overview() -> dict[str, Any]:
    acc = 'account=~"$account"'
    lay = Layout()
    lay.row("Exporter and accounts")
    lay.add(
        state_timeline(
            "Account up",
            "session_exporter_up per vendor and account: did the last poll succeed?",
            targets((f"session_exporter_up{{{acc}}}", f"{{{{vendor}}}}{SEP}{{{{account}}}}")),
            UP,
        ),
        8,
        7,
    )
    lay.add(
        stat(
            "Data age",
            "Seconds since each account's last successful poll "
            "(time() - session_exporter_last_success_timestamp_seconds).",
            targets(
                (
                    f"time() - session_exporter_last_success_timestamp_seconds{{{acc}}}",
                    f"{{{{vendor}}}}{SEP}{{{{account}}}}",
                )
            ),
            "s",
            steps=thresholds((None, "green"), (120, "orange"), (600, "red")),
            graph="none",
        ),
        7,
        7,
    )
    lay.add(
        stat(
            "Exporter version",
            "session_exporter_build_info.",
            targets(("session_exporter_build_info", "{{version}} (Python {{python_version}})")),
            "none",
            text_mode="name",
            graph="none",
            color_mode="none",
        ),
        3,
        7,
    )
    lay.add(
        stat(
            "Config",
            "session_exporter_config_last_reload_successful: did the last config load "
            "or reload succeed?",
            targets(("session_exporter_config_last_reload_successful", "")),
            "none",
            mappings=value_map(RELOAD),
            graph="none",
            steps=thresholds((None, "red"), (1, "green")),
        ),
        3,
        7,
    )
    lay.add(
        stat(
            "Config loaded",
            "session_exporter_config_last_reload_success_timestamp_seconds: "
            "when the config was last loaded successfully.",
            targets(("session_exporter_config_last_reload_success_timestamp_seconds * 1000", "")),
            "dateTimeFromNow",
            graph="none",
            color_mode="none",
        ),
        3,
        7,
    )
    lay.add(
        timeseries(
            "Upstream failures by reason",
            "Failed vendor API operations per second, by vendor, account and reason; 0 (no "
            "reason) for an account without failures.",
            targets(
                (
                    f"sum by (vendor, account, reason) (rate(session_exporter_upstream_request_"
                    f"failures_total{{{acc}}}[$__rate_interval]))\nor on (vendor, account)\n"
                    f"0 * sum by (vendor, account) (rate(session_exporter_upstream_requests_total"
                    f"{{{acc}}}[$__rate_interval]))",
                    f"{{{{vendor}}}}{SEP}{{{{account}}}}{SEP}{{{{reason}}}}",
                )
            ),
            "reqps",
        ),
        12,
        7,
    )
    lay.add(
        timeseries(
            "Poll cycle duration",
            "Wall time of each account's last poll cycle.",
            targets(
                (
                    f"session_exporter_collect_duration_seconds{{{acc}}}",
                    f"{{{{vendor}}}}{SEP}{{{{account}}}}",
                )
            ),
            "s",
        ),
        12,
        7,
    )

    lay.row("Sessions")
    lay.add(
        stat(
            "Sessions now",
            "Sessions in progress: Glance A and W, SecureVideo connected sessions "
            f"without a duration yet, Rescue sessions in an open status ({RESCUE_OPEN}). "
            "Recording rule vendor_account:sessions_current:sum.",
            targets(
                (
                    f"vendor_account:sessions_current:sum{{{acc}}}",
                    f"{{{{vendor}}}}{SEP}{{{{account}}}}",
                )
            ),
            "short",
        ),
        8,
        5,
    )
    lay.add(
        stat(
            "Customers waiting now",
            "Glance sessions in status W and Rescue sessions in status "
            "Waiting (vendor_account:sessions_waiting:sum).",
            targets(
                (
                    f"vendor_account:sessions_waiting:sum{{{acc}}}",
                    f"{{{{vendor}}}}{SEP}{{{{account}}}}",
                )
            ),
            "short",
            steps=thresholds((None, "green"), (1, "orange"), (5, "red")),
        ),
        8,
        5,
    )
    lay.add(
        stat(
            "Longest wait now",
            "How long the oldest waiting customer has waited.",
            targets(
                (
                    f"time() - min by (account) ("
                    f"glance_waiting_session_oldest_start_timestamp_seconds{{{acc}}})",
                    f"glance{SEP}{{{{account}}}}",
                ),
                (
                    f"time() - min by (account) ("
                    f"rescue_session_status_oldest_change_timestamp_seconds"
                    f'{{status="Waiting", {acc}}})',
                    f"rescue{SEP}{{{{account}}}}",
                ),
            ),
            "s",
            steps=thresholds((None, "green"), (120, "orange"), (300, "red")),
            no_value="nobody waits",
        ),
        8,
        5,
    )
    lay.add(
        timeseries(
            "Sessions now",
            "vendor_account:sessions_current:sum over time.",
            targets(
                (
                    f"vendor_account:sessions_current:sum{{{acc}}}",
                    f"{{{{vendor}}}}{SEP}{{{{account}}}}",
                )
            ),
            "short",
        ),
        12,
        7,
    )
    lay.add(
        timeseries(
            "Customers waiting",
            "vendor_account:sessions_waiting:sum over time.",
            targets(
                (
                    f"vendor_account:sessions_waiting:sum{{{acc}}}",
                    f"{{{{vendor}}}}{SEP}{{{{account}}}}",
                )
            ),
            "short",
        ),
        12,
        7,
    )
    lay.add(
        stat(
            "Glance sessions today",
            "Sessions started today (the vendor's own count, "
            "PartnerSessionCounts, all types and statuses).",
            targets(
                (
                    f'sum by (account) (glance_sessions_today{{counted_by="start", {acc}}})',
                    f"glance{SEP}{{{{account}}}}",
                )
            ),
            "short",
        ),
        8,
        5,
    )
    lay.add(
        stat(
            "SecureVideo billable sessions this month",
            "Sessions of the current UTC month with "
            "billable status BILL: these count towards the plan's monthly limit.",
            targets(
                (
                    f'sum by (account) (securevideo_sessions_month{{billable_status="BILL", '
                    f"{acc}}})",
                    f"securevideo{SEP}{{{{account}}}}",
                )
            ),
            "short",
            steps=thresholds((None, "green"), (900, "orange"), (1000, "red")),
        ),
        8,
        5,
    )
    lay.add(
        stat(
            "Completed in the last hour",
            "vendor_account:sessions_completed:increase1h.",
            targets(
                (
                    f"vendor_account:sessions_completed:increase1h{{{acc}}}",
                    f"{{{{vendor}}}}{SEP}{{{{account}}}}",
                )
            ),
            "short",
            graph="none",
        ),
        8,
        5,
    )
    lay.add(
        timeseries(
            "Completed sessions per hour",
            "Glance and SecureVideo: sessions completed in the "
            "hour before each point (vendor_account:sessions_completed:increase1h). Rescue lists "
            "open sessions only: its line is the sessions that left the Waiting status.",
            targets(
                (
                    f"vendor_account:sessions_completed:increase1h{{{acc}}}",
                    f"{{{{vendor}}}}{SEP}{{{{account}}}}",
                ),
                (
                    f"sum by (account) (increase(rescue_session_wait_seconds_count{{{acc}}}[1h]))",
                    f"rescue{SEP}{{{{account}}}} (left the queue)",
                ),
            ),
            "short",
        ),
        24,
        8,
    )
    lay.add(
        timeseries(
            "Session duration",
            "Median and 90th percentile of completed sessions' duration.",
            quantiles("glance_session_duration_seconds", "account", acc, "glance · {{account}}")
            + [
                dict(t, refId=chr(ord("C") + i))
                for i, t in enumerate(
                    quantiles(
                        "securevideo_session_duration_seconds",
                        "account",
                        acc,
                        "securevideo · {{account}}",
                    )
                )
            ],
            "s",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Wait time",
            "Median and 90th percentile of customers' wait: SecureVideo WaitTime of "
            "finished sessions, Rescue time in Waiting of sessions that left it.",
            quantiles(
                "securevideo_session_wait_seconds", "account", acc, "securevideo · {{account}}"
            )
            + [
                dict(t, refId=chr(ord("C") + i))
                for i, t in enumerate(
                    quantiles("rescue_session_wait_seconds", "account", acc, "rescue · {{account}}")
                )
            ],
            "s",
        ),
        12,
        8,
    )
    service_level_row(
        lay,
        prefix="vendor_account:",
        sel=acc,
        legend=f"{{{{vendor}}}}{SEP}{{{{account}}}}",
        account_sel=acc,
        abandonment=True,
        handle=True,
        about='How exact it is differs per vendor: README.md, "Service level and KPIs".',
    )
    return dashboard(
        "session-exporter-overview",
        "Remote sessions: overview",
        "Every vendor and account of session-exporter: exporter health, data freshness, "
        "sessions now, today and per hour, durations and wait times.",
        ["overview"],
        [query_var("account", "Account", "label_values(session_exporter_up, account)")],
        lay,
    )


def glance() -> dict[str, Any]:
    acc = 'account=~"$account"'
    lay = Layout()
    lay.row("Now")
    lay.add(
        stat(
            "Active sessions",
            "Sessions in status A (PartnerActiveSessions).",
            targets((f'sum(glance_sessions_current{{status="A", {acc}}})', "Active")),
            "short",
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Waiting sessions",
            "Sessions in status W: customers waiting for an agent.",
            targets((f'sum(glance_sessions_current{{status="W", {acc}}})', "Waiting")),
            "short",
            steps=thresholds((None, "green"), (1, "orange"), (5, "red")),
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Guests in sessions",
            "Sum of nguests of the current sessions.",
            targets((f"sum(glance_session_guests_current{{{acc}}})", "Guests")),
            "short",
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Longest wait now",
            "How long the oldest waiting (W) session has waited.",
            targets(
                (
                    f"time() - min(glance_waiting_session_oldest_start_timestamp_seconds{{{acc}}})",
                    "Longest wait",
                )
            ),
            "s",
            steps=thresholds((None, "green"), (120, "orange"), (300, "red")),
            no_value="nobody waits",
        ),
        6,
        5,
    )
    lay.add(
        timeseries(
            "Active sessions by type",
            'glance_sessions_current{status="A"} by session type.',
            targets(
                (
                    f'sum by (account, session_type) (glance_sessions_current{{status="A", '
                    f"{acc}}})",
                    f"{{{{account}}}}{SEP}{{{{session_type}}}}",
                )
            ),
            "short",
            renames=rename_last(SESSION_TYPES),
            stack=True,
        ),
        12,
        7,
    )
    lay.add(
        timeseries(
            "Waiting sessions by type",
            'glance_sessions_current{status="W"} by session type.',
            targets(
                (
                    f'sum by (account, session_type) (glance_sessions_current{{status="W", '
                    f"{acc}}})",
                    f"{{{{account}}}}{SEP}{{{{session_type}}}}",
                )
            ),
            "short",
            renames=rename_last(SESSION_TYPES),
            stack=True,
        ),
        12,
        7,
    )
    lay.add(
        timeseries(
            "Oldest waiting customer: time waited",
            "Seconds since the startTime of the oldest "
            "waiting session, by session type; no line while nobody waits.",
            targets(
                (
                    f"time() - glance_waiting_session_oldest_start_timestamp_seconds{{{acc}}}",
                    f"{{{{account}}}}{SEP}{{{{session_type}}}}",
                )
            ),
            "s",
            renames=rename_last(SESSION_TYPES),
            steps=thresholds((None, "green"), (300, "red")),
        ),
        12,
        7,
    )
    lay.add(
        timeseries(
            "Guests by session type",
            "glance_session_guests_current.",
            targets(
                (
                    f"sum by (account, session_type) (glance_session_guests_current{{{acc}}})",
                    f"{{{{account}}}}{SEP}{{{{session_type}}}}",
                )
            ),
            "short",
            renames=rename_last(SESSION_TYPES),
        ),
        12,
        7,
    )

    service_level_row(
        lay,
        prefix="vendor_account:",
        sel=f'vendor="glance", {acc}',
        legend="{{account}}",
        account_sel=f'vendor="glance", {acc}',
        abandonment=True,
        handle=True,
        about="Glance waits are exact to the second: the first agent's join minus the first "
        "visitor's for answered sessions (statuses C and X), the session's duration for "
        "abandoned (Q) and timed-out (T) ones.",
    )

    lay.row("Today (the vendor's counts, reset at the account's midnight)")
    lay.add(
        table(
            "Sessions today by type and status",
            "glance_sessions_today: sessions started "
            "(counted_by start) or ended (counted_by end) today. Status letters other than "
            "A, W and C are not defined by Glance's documentation and are shown as they come.",
            targets(
                (
                    f"sum by (account, counted_by, session_type, status) "
                    f"(glance_sessions_today{{{acc}}})",
                    "",
                )
            ),
            "short",
            columns={
                "account": ("Account", None),
                "counted_by": ("Counted by", None),
                "session_type": ("Session type", SESSION_TYPES),
                "status": ("Status", GLANCE_STATUSES),
            },
            value_title="Sessions",
        ),
        12,
        9,
    )
    lay.add(
        table(
            "Average duration today by type and status",
            "glance_session_average_duration_seconds (averageDuration of the day's counts).",
            targets(
                (
                    f"max by (account, counted_by, session_type, status) "
                    f"(glance_session_average_duration_seconds{{{acc}}})",
                    "",
                )
            ),
            "s",
            columns={
                "account": ("Account", None),
                "counted_by": ("Counted by", None),
                "session_type": ("Session type", SESSION_TYPES),
                "status": ("Status", GLANCE_STATUSES),
            },
            value_title="Average duration",
        ),
        12,
        9,
    )
    lay.add(
        timeseries(
            "Sessions started today by type",
            'glance_sessions_today{counted_by="start"}.',
            targets(
                (
                    f'sum by (account, session_type) (glance_sessions_today{{counted_by="start",'
                    f" {acc}}})",
                    f"{{{{account}}}}{SEP}{{{{session_type}}}}",
                )
            ),
            "short",
            renames=rename_last(SESSION_TYPES),
        ),
        12,
        7,
    )
    lay.add(
        timeseries(
            "Sessions ended today by status",
            'glance_sessions_today{counted_by="end"}.',
            targets(
                (
                    f'sum by (account, status) (glance_sessions_today{{counted_by="end", {acc}}})',
                    f"{{{{account}}}}{SEP}{{{{status}}}}",
                )
            ),
            "short",
            renames=rename_last(GLANCE_STATUSES),
        ),
        12,
        7,
    )

    lay.row("Completed sessions")
    lay.add(
        timeseries(
            "Completed sessions per hour by type",
            "Sessions of the completed-sessions feed "
            "(glance_sessions_completed_total), each counted once, in the hour before each point.",
            targets(
                (
                    f"sum by (account, session_type) (increase(glance_sessions_completed_total"
                    f"{{{acc}}}[1h]))",
                    f"{{{{account}}}}{SEP}{{{{session_type}}}}",
                )
            ),
            "short",
            renames=rename_last(SESSION_TYPES),
        ),
        12,
        7,
    )
    lay.add(
        timeseries(
            "Completions per minute by status",
            "Rate of glance_sessions_completed_total by the status the feed reports.",
            targets(
                (
                    f"60 * sum by (account, status) (rate(glance_sessions_completed_total"
                    f"{{{acc}}}[$__rate_interval]))",
                    f"{{{{account}}}}{SEP}{{{{status}}}}",
                )
            ),
            "short",
            renames=rename_last(GLANCE_STATUSES),
        ),
        12,
        7,
    )
    lay.add(
        timeseries(
            "Session duration by type",
            "Median and 90th percentile of completed sessions' "
            "duration (glance_session_duration_seconds).",
            quantiles(
                "glance_session_duration_seconds",
                "account, session_type",
                acc,
                f"{{{{account}}}}{SEP}{{{{session_type}}}}",
            ),
            "s",
            renames=rename_last(SESSION_TYPES),
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Wait by outcome",
            "Median and 90th percentile of the wait of completed sessions "
            "(glance_session_wait_seconds) by outcome: answered (C, X: first agent's join minus "
            "first visitor's), abandoned (Q) and timed out (T) (the session's duration).",
            quantiles(
                "glance_session_wait_seconds",
                "account, outcome",
                f'outcome=~"answered|abandoned|timed_out", {acc}',
                f"{{{{account}}}}{SEP}{{{{outcome}}}}",
            ),
            "s",
        ),
        12,
        8,
    )
    lay.add(
        heatmap(
            "Session duration distribution",
            "Completed sessions per duration bucket.",
            f"sum by (le) (increase(glance_session_duration_seconds_bucket{{{acc}}}"
            f"[$__rate_interval]))",
            "s",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Completed-sessions feed: how far behind",
            "Seconds since the end of the PartnerCompletedSessionsEnding range read whole so "
            "far (glance_completed_feed_timestamp_seconds): sessions completed since are not "
            "yet in the panels of this row. About one poll interval normally; hours during a "
            "catch-up after an outage, rising when the feed cannot keep up "
            "(global.max_pages_per_cycle). Red from 1800 s, the default of "
            "GlanceCompletedFeedBehind.",
            targets(
                (
                    f"time() - max by (account) (glance_completed_feed_timestamp_seconds{{{acc}}})",
                    "{{account}}",
                )
            ),
            "s",
            steps=thresholds((None, "green"), (1800, "red")),
        ),
        12,
        8,
    )

    lay.row("Configured users")
    lay.add(
        timeseries(
            "In-progress sessions of configured users",
            "glance_user_sessions_current: only the "
            "users listed under `users:` of the account in the exporter config.",
            targets(
                (
                    f"sum by (account, user) (glance_user_sessions_current{{{acc}}})",
                    f"{{{{account}}}}{SEP}{{{{user}}}}",
                )
            ),
            "short",
        ),
        24,
        7,
    )
    exporter_row(lay, "glance")
    return dashboard(
        "session-exporter-glance",
        "Remote sessions: Glance",
        "Glance cobrowse, screen share and video sessions: now, today, completed, durations.",
        ["glance"],
        [query_var("account", "Account", "label_values(glance_sessions_current, account)")],
        lay,
    )


def securevideo() -> dict[str, Any]:
    acc = 'account=~"$account"'
    accp = 'account=~"$account", provider=~"$provider"'
    lay = Layout()
    lay.row("Now and this month")
    lay.add(
        stat(
            "Sessions in progress",
            "Connected sessions whose DurationMinutes is still "
            "null (securevideo_sessions_in_progress).",
            targets((f"sum(securevideo_sessions_in_progress{{{acc}}})", "In progress")),
            "short",
        ),
        6,
        6,
    )
    lay.add(
        stat(
            "Billable sessions this month",
            "Sessions of the current UTC month with "
            "status BILL: they count towards the plan's monthly limit.",
            targets(
                (f'sum(securevideo_sessions_month{{billable_status="BILL", {acc}}})', "Billable")
            ),
            "short",
            steps=thresholds((None, "green"), (900, "orange"), (1000, "red")),
        ),
        6,
        6,
    )
    lay.add(
        table(
            "Sessions this month by billable status",
            "securevideo_sessions_month. Only BILL counts towards the monthly session limit.",
            targets(
                (f"sum by (account, billable_status) (securevideo_sessions_month{{{acc}}})", "")
            ),
            "short",
            columns={
                "account": ("Account", None),
                "billable_status": ("Billable status", BILLABLE),
            },
            value_title="Sessions",
        ),
        12,
        6,
    )
    lay.add(
        timeseries(
            "Sessions in progress",
            "securevideo_sessions_in_progress.",
            targets((f"securevideo_sessions_in_progress{{{acc}}}", "{{account}}")),
            "short",
        ),
        12,
        7,
    )
    lay.add(
        timeseries(
            "Sessions this month by billable status",
            "securevideo_sessions_month.",
            targets(
                (
                    f"sum by (account, billable_status) (securevideo_sessions_month{{{acc}}})",
                    f"{{{{account}}}}{SEP}{{{{billable_status}}}}",
                )
            ),
            "short",
            renames=rename_last(BILLABLE),
        ),
        12,
        7,
    )

    service_level_row(
        lay,
        prefix="vendor_account:",
        sel=f'vendor="securevideo", {acc}',
        legend="{{account}}",
        account_sel=f'vendor="securevideo", {acc}',
        abandonment=False,
        handle=True,
        about="SecureVideo gives WaitTime in whole minutes: with a threshold under 60 s only "
        "the sessions that waited 0 minutes count as within it, so the service level "
        "is approximate (a threshold of 60 s is the closest exact choice).",
    )

    lay.row("Connected sessions")
    lay.add(
        timeseries(
            "Connected sessions per hour by billable status",
            "securevideo_sessions_total: each "
            "connected session counted once, in the hour before each point.",
            targets(
                (
                    f"sum by (account, billable_status) (increase(securevideo_sessions_total"
                    f"{{{accp}}}[1h]))",
                    f"{{{{account}}}}{SEP}{{{{billable_status}}}}",
                )
            ),
            "short",
            renames=rename_last(BILLABLE),
        ),
        8,
        7,
    )
    lay.add(
        timeseries(
            "Connected sessions per hour by schedule type",
            "OnDemand, Scheduled, Rescheduled.",
            targets(
                (
                    f"sum by (account, schedule_type) (increase(securevideo_sessions_total"
                    f"{{{accp}}}[1h]))",
                    f"{{{{account}}}}{SEP}{{{{schedule_type}}}}",
                )
            ),
            "short",
        ),
        8,
        7,
    )
    lay.add(
        timeseries(
            "Connected sessions per hour by provider",
            "The provider (host) of each session.",
            targets(
                (
                    f"sum by (account, provider) (increase(securevideo_sessions_total"
                    f"{{{accp}}}[1h]))",
                    f"{{{{account}}}}{SEP}{{{{provider}}}}",
                )
            ),
            "short",
        ),
        8,
        7,
    )

    lay.row("Duration and wait")
    lay.add(
        timeseries(
            "Session duration",
            "Median and 90th percentile of DurationMinutes of finished "
            "sessions (securevideo_session_duration_seconds).",
            quantiles("securevideo_session_duration_seconds", "account", accp, "{{account}}"),
            "s",
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Wait time",
            "Median and 90th percentile of WaitTime: minutes before the second "
            "participant connected (securevideo_session_wait_seconds).",
            quantiles("securevideo_session_wait_seconds", "account", accp, "{{account}}"),
            "s",
        ),
        8,
        8,
    )
    lay.add(
        heatmap(
            "Wait time distribution",
            "Finished sessions per WaitTime bucket.",
            f"sum by (le) (increase(securevideo_session_wait_seconds_bucket{{{accp}}}"
            f"[$__rate_interval]))",
            "s",
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Start delay of scheduled sessions",
            "Median and 90th percentile of BillableTs minus "
            "ScheduleTs of Scheduled and Rescheduled sessions: how late sessions start against "
            "their appointment (securevideo_session_start_delay_seconds; early starts count as 0).",
            quantiles(
                "securevideo_session_start_delay_seconds",
                "account, schedule_type",
                acc,
                f"{{{{account}}}}{SEP}{{{{schedule_type}}}}",
            ),
            "s",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Early starts per hour",
            "Scheduled sessions that started before their appointment, "
            "in the hour before each point (securevideo_session_early_starts_total).",
            targets(
                (
                    f"sum by (account, schedule_type) (increase(securevideo_session_early_starts"
                    f"_total{{{acc}}}[1h]))",
                    f"{{{{account}}}}{SEP}{{{{schedule_type}}}}",
                )
            ),
            "short",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Finished sessions per hour by provider",
            "Sessions whose duration became known, in "
            "the hour before each point (securevideo_session_duration_seconds_count).",
            targets(
                (
                    f"sum by (account, provider) (increase(securevideo_session_duration_seconds_"
                    f"count{{{accp}}}[1h]))",
                    f"{{{{account}}}}{SEP}{{{{provider}}}}",
                )
            ),
            "short",
        ),
        24,
        7,
    )
    exporter_row(lay, "securevideo")
    return dashboard(
        "session-exporter-securevideo",
        "Remote sessions: SecureVideo",
        "SecureVideo telehealth sessions: in progress, billable sessions of the month, "
        "connected sessions, durations and wait times.",
        ["securevideo"],
        [
            query_var(
                "account", "Account", "label_values(securevideo_sessions_in_progress, account)"
            ),
            query_var(
                "provider",
                "Provider",
                'label_values(securevideo_sessions_total{account=~"$account"}, provider)',
            ),
        ],
        lay,
    )


def rescue() -> dict[str, Any]:
    sel = 'account=~"$account", node=~"$node"'
    lay = Layout()
    lay.row("Now")
    lay.add(
        stat(
            "Waiting now",
            "Sessions in status Waiting.",
            targets((f'sum(rescue_sessions{{status="Waiting", {sel}}})', "Waiting")),
            "short",
            steps=thresholds((None, "green"), (1, "orange"), (5, "red")),
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Active now",
            "Sessions in status Active.",
            targets((f'sum(rescue_sessions{{status="Active", {sel}}})', "Active")),
            "short",
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Open sessions",
            f"Sessions in an open status: {RESCUE_OPEN}.",
            targets((f'sum(rescue_sessions{{status=~"{RESCUE_OPEN}", {sel}}})', "Open")),
            "short",
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Longest wait now",
            "How long the oldest Waiting session has waited.",
            targets(
                (
                    f"time() - min(rescue_session_status_oldest_change_timestamp_seconds"
                    f'{{status="Waiting", {sel}}})',
                    "Longest wait",
                )
            ),
            "s",
            steps=thresholds((None, "green"), (120, "orange"), (300, "red")),
            no_value="nobody waits",
        ),
        6,
        5,
    )
    lay.add(
        timeseries(
            "Sessions by status",
            "rescue_sessions: every documented status, zero when empty.",
            targets((f"sum by (status) (rescue_sessions{{{sel}}})", "{{status}}")),
            "short",
            stack=True,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Waiting sessions by node",
            'rescue_sessions{status="Waiting"} per node or channel.',
            targets(
                (
                    f'sum by (account, node) (rescue_sessions{{status="Waiting", {sel}}})',
                    f"{{{{account}}}}{SEP}node {{{{node}}}}",
                )
            ),
            "short",
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Sessions by node and status",
            "rescue_sessions now, statuses with sessions only.",
            targets((f"sum by (account, node, status) (rescue_sessions{{{sel}}}) > 0", "")),
            "short",
            columns={
                "account": ("Account", None),
                "node": ("Node", None),
                "status": ("Status", None),
            },
            value_title="Sessions",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Oldest session per status: time in status",
            "Seconds since the oldest session of "
            "each status entered it (poll time minus the session's Waiting Time).",
            targets(
                (
                    f"time() - min by (account, node, status) "
                    f"(rescue_session_status_oldest_change_timestamp_seconds{{{sel}}})",
                    f"{{{{account}}}}{SEP}node {{{{node}}}}{SEP}{{{{status}}}}",
                )
            ),
            "s",
        ),
        12,
        8,
    )

    service_level_row(
        lay,
        prefix="account_node:rescue_",
        sel=sel,
        legend=f"{{{{account}}}}{SEP}node {{{{node}}}}",
        account_sel='vendor="rescue", account=~"$account"',
        abandonment=True,
        handle=False,
        about="Rescue waits are sampled at the poll interval: each is a lower bound, short by "
        "at most one interval, and waits that begin and end between two polls are not "
        "seen. Rescue has no handle time.",
    )

    lay.row("Waiting time")
    lay.add(
        timeseries(
            "Time spent waiting",
            "Median and 90th percentile of the time sessions spent in "
            "Waiting, observed when they leave it (rescue_session_wait_seconds).",
            quantiles(
                "rescue_session_wait_seconds",
                "account, node",
                sel,
                f"{{{{account}}}}{SEP}node {{{{node}}}}",
            ),
            "s",
        ),
        8,
        8,
    )
    lay.add(
        heatmap(
            "Time spent waiting: distribution",
            "Sessions that left Waiting, per wait bucket.",
            f"sum by (le) (increase(rescue_session_wait_seconds_bucket{{{sel}}}"
            f"[$__rate_interval]))",
            "s",
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Sessions leaving the queue per hour",
            "Sessions that left the Waiting status in the "
            "hour before each point (rescue_session_wait_seconds_count).",
            targets(
                (
                    f"sum by (account, node) (increase(rescue_session_wait_seconds_count"
                    f"{{{sel}}}[1h]))",
                    f"{{{{account}}}}{SEP}node {{{{node}}}}",
                )
            ),
            "short",
        ),
        8,
        8,
    )
    exporter_row(lay, "rescue")
    lay.add(
        stat(
            "Status values not understood",
            "session_exporter_unrecognized_status_values: "
            "distinct Status values of the account's replies that are neither documented nor "
            "aliased (a localised account). Above 0: set status_aliases or use api: soap "
            "(RUNBOOK.md, RescueStatusValuesUnrecognized).",
            targets(
                (
                    'sum by (account) (session_exporter_unrecognized_status_values{vendor="rescue",'
                    ' account=~"$account"})',
                    "{{account}}",
                )
            ),
            "short",
            steps=thresholds((None, "green"), (1, "orange")),
            graph="none",
        ),
        6,
        5,
    )
    return dashboard(
        "session-exporter-rescue",
        "Remote sessions: LogMeIn Rescue",
        "LogMeIn Rescue sessions per node or channel: statuses now, waiting customers, time "
        "spent waiting.",
        ["rescue"],
        [
            query_var("account", "Account", "label_values(rescue_sessions, account)"),
            query_var("node", "Node", 'label_values(rescue_sessions{account=~"$account"}, node)'),
        ],
        lay,
    )


DASHBOARDS = {
    "session-exporter-overview.json": overview,
    "session-exporter-glance.json": glance,
    "session-exporter-securevideo.json": securevideo,
    "session-exporter-rescue.json": rescue,
}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a committed dashboard differs from the built one",
    )
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        text = render(build)
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(
            "out of date, run python3 grafana/build_dashboards.py: " + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
