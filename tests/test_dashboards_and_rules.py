"""Static checks of grafana/ and prometheus/: promtool, amtool, Grafana's dashboard schema,
and the conventions the dashboards and rules promise (units, mappings, variables, labels,
annotations, a runbook section and unit tests for every alert)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import require_tool, skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
PROM = ROOT / "prometheus"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULE_FILES = sorted((PROM / "rules").glob("*.rules.yml"))
UNIT_TESTS = sorted((PROM / "tests").glob("*.test.yml"))
SCHEMA_TOOL = ROOT / "tools" / "grafana-schema"

# The metric contract (DESIGN.md): each family is shown on at least one dashboard.
CONTRACT = [
    "glance_sessions_current",
    "glance_session_guests_current",
    "glance_waiting_session_oldest_start_timestamp_seconds",
    "glance_sessions_today",
    "glance_session_average_duration_seconds",
    "glance_sessions_completed_total",
    "glance_session_duration_seconds",
    "glance_user_sessions_current",
    "securevideo_sessions_total",
    "securevideo_session_duration_seconds",
    "securevideo_session_wait_seconds",
    "securevideo_sessions_month",
    "securevideo_sessions_in_progress",
    "rescue_sessions",
    "rescue_session_status_oldest_change_timestamp_seconds",
    "rescue_session_wait_seconds",
    "session_exporter_up",
    "session_exporter_last_success_timestamp_seconds",
    "session_exporter_collect_duration_seconds",
    "session_exporter_upstream_requests_total",
    "session_exporter_upstream_request_failures_total",
    "session_exporter_records_rejected_total",
    "session_exporter_build_info",
    "session_exporter_config_last_reload_successful",
    "session_exporter_config_last_reload_success_timestamp_seconds",
    # issue 14 and 13 (the service-level inputs are on the dashboards through the rules)
    "glance_session_wait_seconds",
    "securevideo_session_start_delay_seconds",
    "securevideo_session_early_starts_total",
    "session_exporter_unrecognized_status_values",
]
# Families the dashboards show through the service-level recording rules only.
SERVICE_LEVEL_INPUTS = [
    "glance_session_wait_seconds",
    "glance_session_duration_seconds",
    "securevideo_session_wait_seconds",
    "securevideo_session_consult_seconds",
    "rescue_session_wait_seconds",
]
SERVICE_LEVEL_RULES = PROM / "rules" / "session-exporter-service-level.rules.yml"
THRESHOLDS = PROM / "rules" / "session-exporter-thresholds.rules.yml"
REQUIRED_ALERTS = {
    "SessionExporterDown",
    "SessionExporterAccountDataStale",
    "SessionExporterVendorAuthFailing",
    "GlanceCustomerWaitingTooLong",
    "GlanceCompletedFeedBehind",
    "RescueCustomerWaitingTooLong",
    "SecureVideoBillableSessionsNearLimit",
    "CompletedSessionsDropped",
    "SessionServiceLevelFastBurn",
    "SessionServiceLevelSlowBurn",
    "SessionServiceLevelThresholdUnsupported",
    "RescueStatusValuesUnrecognized",
}


def run(*cmd: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARDS}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [p for p in found if p["type"] != "row"]


def exprs(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(board) for t in p.get("targets", [])]


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


# ------------------------------------------------------------------------ Prometheus


def test_promtool_check_rules() -> None:
    require_tool("promtool")
    result = run("promtool", "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests() -> None:
    require_tool("promtool")
    result = run("promtool", "test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_prometheus_config() -> None:
    require_tool("promtool")
    result = run("promtool", "check", "config", PROM / "prometheus.example.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((PROM / "prometheus.example.yml").read_text(encoding="utf-8"))
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert "session-exporter" in jobs, "the job name SessionExporterDown selects"


def test_example_alertmanager_config() -> None:
    require_tool("amtool")
    result = run("amtool", "check-config", PROM / "alertmanager.example.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_required_alerts_exist_with_severity_and_annotations() -> None:
    found = {rule["alert"]: rule for rule in alerts()}
    assert set(found) >= REQUIRED_ALERTS
    for name, rule in found.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (PROM / "RUNBOOK.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^### (\w+)", runbook, re.M))
    missing = {rule["alert"] for rule in alerts()} - headings
    assert not missing, f"RUNBOOK.md has no '### <alert>' section for {sorted(missing)}"


def test_every_alert_has_unit_tests_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names <= firing, f"no firing test for {sorted(names - firing)}"
    assert names <= silent, f"no not-firing test for {sorted(names - silent)}"


def test_thresholds_are_in_one_file_with_a_default_each() -> None:
    """Every threshold an alert uses is a recording rule of the thresholds file."""
    path = PROM / "rules" / "session-exporter-thresholds.rules.yml"
    defaults = {
        rule["record"]
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "account" not in rule.get("labels", {})
    }
    used = {
        name
        for rule in alerts()
        for name in re.findall(r"session_exporter:threshold_\w+", rule["expr"])
    }
    assert used, "alerts take their thresholds from the thresholds file"
    assert used <= defaults, f"no default for {sorted(used - defaults)}"
    header = path.read_text().split("groups:")[0]
    for name in defaults:
        assert name in header, f"{name} is not listed in the file's comment table"


def records() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    found.setdefault(rule["record"], []).append(rule)
    return found


def default_threshold(name: str) -> float:
    for group in yaml.safe_load(THRESHOLDS.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            if rule["record"] == name and not rule.get("labels"):
                match = re.fullmatch(r"vector\(([0-9.]+)\)", rule["expr"])
                assert match, rule
                return float(match.group(1))
    raise AssertionError(f"no default for {name}")


def test_service_level_rules_are_built_from_the_generator() -> None:
    result = run(sys.executable, PROM / "build_service_level_rules.py", "--check")
    assert result.returncode == 0, result.stderr


def test_service_level_thresholds_are_the_exporters_wait_buckets() -> None:
    """The rules select the bucket whose `le` is the threshold: every default bucket bound
    is a supported threshold, and the default threshold is one of them."""
    from exporter.families import WAIT_BUCKETS

    text = SERVICE_LEVEL_RULES.read_text(encoding="utf-8")
    supported = {float(v) for v in re.findall(r'configured == ([0-9.]+), "le"', text)}
    assert supported == {float(b) for b in WAIT_BUCKETS}
    assert default_threshold("session_exporter:threshold_service_level_seconds") in supported


def test_burn_rate_factors_can_fire_for_the_default_objective() -> None:
    """A burn rate above 1 / (1 - objective) is unreachable (the classic 14.4 and 6 for an
    80 % objective): the defaults must stay under it."""
    objective = default_threshold("session_exporter:threshold_service_level_objective")
    ceiling = 1 / (1 - objective)
    for name in ("fast", "slow"):
        factor = default_threshold(f"session_exporter:threshold_service_level_burn_rate_{name}")
        assert 1 < factor < ceiling, (name, factor, ceiling)


def test_service_level_recording_rules_per_account_and_rescue_node() -> None:
    names = set(records())
    for window in ("5m", "1h", "1d"):
        for level in ("vendor_account:", "account_node:rescue_"):
            for series in (
                "sessions_offered",
                "sessions_answered",
                "sessions_abandoned",
                "sessions_answered_within_threshold",
            ):
                assert f"{level}{series}:increase{window}" in names
            for series in (
                "session_service_level:ratio",
                "session_abandonment:ratio",
                "session_speed_of_answer_seconds:mean",
            ):
                assert f"{level}{series}{window}" in names
        handle = {
            r["labels"]["vendor"]
            for r in records()[f"vendor_account:session_handle_seconds:mean{window}"]
        }
        assert handle == {"glance", "securevideo"}, "Rescue has no handle time"
    generated = re.findall(r"record: (\S+)", SERVICE_LEVEL_RULES.read_text(encoding="utf-8"))
    for name in generated:
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", name), f"not level:metric:ops: {name}"
    text = SERVICE_LEVEL_RULES.read_text(encoding="utf-8")
    for family in SERVICE_LEVEL_INPUTS:
        assert f"{family}_" in text, family


def test_service_level_row_on_every_dashboard() -> None:
    wanted = {
        "Service level, last hour",
        "Service level against its objective",
        "Average speed of answer",
    }
    for name, board in load_dashboards().items():
        rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
        assert "Service level" in rows, name
        titles = {p["title"] for p in panels(board)}
        assert wanted <= titles, name
        assert ("Abandonment rate" in titles) == (not name.endswith("securevideo")), name
        assert ("Average handle time" in titles) == (not name.endswith("rescue")), name
        every = " ".join(exprs(board))
        assert "service_level_objective:configured" in every, name
        assert re.search(r"sessions_offered:increase1h", every), name


# ------------------------------------------------------------------------ Grafana


def test_dashboards_are_built_from_the_generator() -> None:
    result = run(sys.executable, GRAFANA / "build_dashboards.py", "--check")
    assert result.returncode == 0, result.stderr


def test_dashboards_validate_against_grafana_schema() -> None:
    """JSON Schema generated offline from the pinned @grafana/schema package (dashboard
    model and each panel plugin's options), see tools/grafana-schema/validate.mjs."""
    require_tool("node")
    if not (SCHEMA_TOOL / "node_modules" / "@grafana" / "schema").is_dir():
        message = "run tools/grafana-schema/install.sh first (npm ci of the pinned packages)"
        skip_or_fail(message)
    result = run("node", "validate.mjs", *DASHBOARDS, cwd=SCHEMA_TOOL)
    report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    assert result.returncode == 0, json.dumps(report, indent=1) or result.stderr
    assert len(report["files"]) == len(DASHBOARDS) == 4


def test_one_overview_and_one_dashboard_per_vendor() -> None:
    boards = load_dashboards()
    assert set(boards) == {
        "session-exporter-overview",
        "session-exporter-glance",
        "session-exporter-securevideo",
        "session-exporter-rescue",
    }
    assert len({b["uid"] for b in boards.values()}) == 4
    overview = " ".join(exprs(boards["session-exporter-overview"]))
    for vendor in ("glance_", "securevideo_", "rescue_", "vendor_account:", "session_exporter_"):
        assert vendor in overview


def test_every_contract_metric_is_on_a_dashboard() -> None:
    everything = " ".join(e for b in load_dashboards().values() for e in exprs(b))
    rules_text = SERVICE_LEVEL_RULES.read_text(encoding="utf-8")
    missing = [m for m in CONTRACT if not re.search(rf"\b{m}(_bucket|_count|_sum)?\b", everything)]
    assert not missing
    # the service-level inputs reach the dashboards through the recording rules
    assert "vendor_account:session_service_level:ratio1h" in everything
    assert all(f"{m}_count" in rules_text for m in SERVICE_LEVEL_INPUTS)


@pytest.mark.parametrize("name", [p.stem for p in DASHBOARDS])
def test_dashboard_conventions(name: str) -> None:
    board = load_dashboards()[name]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["account"]["type"] == "query"
    if name.endswith("rescue"):
        assert variables["node"]["type"] == "query"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        where = f"{name} / {panel['title']}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
        assert panel.get("description"), f"{where}: no description"
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", where
            expr = target["expr"]
            if "account" in expr or any(m in expr for m in ("glance_", "rescue_", "securevideo_")):
                assert "$account" in expr or "build_info" in expr, f"{where}: ignores $account"
            if "histogram_quantile" in expr:
                assert re.search(r"rate\(\w+_bucket\{[^}]*\}\[\$__rate_interval\]\)", expr), where
            assert "[$__interval]" not in expr, where
        x, w = panel["gridPos"]["x"], panel["gridPos"]["w"]
        assert x >= 0 and x + w <= 24, where


def mappings_of(board: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (code, word) the dashboard shows: value mappings and legend renames."""
    words: set[tuple[str, str]] = set()
    for panel in panels(board):
        field_configs = [panel["fieldConfig"]["defaults"]] + [
            {"mappings": prop["value"]}
            for o in panel["fieldConfig"]["overrides"]
            for prop in o["properties"]
            if prop["id"] == "mappings"
        ]
        for fc in field_configs:
            for mapping in fc.get("mappings", []):
                for code, result in mapping["options"].items():
                    words.add((code, result["text"]))
        for t in panel.get("transformations", []):
            if t["id"] == "renameByRegex":
                code = t["options"]["regex"].rsplit(" ", 1)[-1].rstrip("$")
                words.add((code, t["options"]["renamePattern"].rsplit(" · ", 1)[-1]))
    return words


def test_vendor_codes_are_mapped_to_words() -> None:
    boards = load_dashboards()
    glance = mappings_of(boards["session-exporter-glance"])
    assert {
        ("C", "Cobrowse"),
        ("G", "Screen share"),
        ("V", "Video"),
        ("A", "Active"),
        ("W", "Waiting"),
        ("C", "Completed"),
    } <= glance
    table = next(
        p
        for p in panels(boards["session-exporter-glance"])
        if p["title"] == "Sessions today by type and status"
    )
    status = next(
        o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "status"
    )
    assert status["properties"][0]["value"][0]["options"]["C"]["text"] == "Completed"
    securevideo = mappings_of(boards["session-exporter-securevideo"])
    assert {"BILL", "SVCO", "DUPL", "COMP"} <= {code for code, _word in securevideo}
    assert ("BILL", "Billable") in securevideo
    for board in boards.values():
        assert {("1", "Up"), ("0", "Down")} <= mappings_of(board)


def test_provisioning_files() -> None:
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "session-exporter.yaml").read_text()
    )
    assert provider["apiVersion"] == 1
    assert provider["providers"][0]["type"] == "file"
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]


def test_readmes_exist() -> None:
    text = (GRAFANA / "README.md").read_text(encoding="utf-8")
    for board in load_dashboards().values():
        assert board["title"] in text
