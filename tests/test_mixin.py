"""The monitoring mixin (mixin/): Debian's jsonnet evaluates it, and with the default
_config its prometheusAlerts, prometheusRules and grafanaDashboards are exactly the shipped
rules (prometheus/rules/, as tools/build-prometheusrule.py collects them) and dashboards
(grafana/dashboards/)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .support import require_tool

ROOT = Path(__file__).resolve().parent.parent
MIXIN = ROOT / "mixin"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
LIBSONNET = sorted(MIXIN.rglob("*.libsonnet"))


def run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def jsonnet(expr: str) -> Any:
    require_tool("jsonnet")
    result = run("jsonnet", "-J", MIXIN, "-e", expr)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def shipped_groups() -> list[dict[str, Any]]:
    spec = importlib.util.spec_from_file_location(
        "build_prometheusrule", ROOT / "tools" / "build-prometheusrule.py"
    )
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    groups, _sources = tool.load_groups(tool.RULES_DIR)
    return list(groups)


def has_alerts(group: dict[str, Any]) -> bool:
    return any("alert" in rule for rule in group["rules"])


MIXIN_OF = '(import "mixin.libsonnet")'


def test_generated_files_are_current() -> None:
    result = run(sys.executable, MIXIN / "build.py", "--check")
    assert result.returncode == 0, result.stderr


def test_no_group_mixes_alerts_and_recording_rules() -> None:
    """prometheusAlerts and prometheusRules split by group: a mixed group would be in one
    of them only, half of it misfiled."""
    for group in shipped_groups():
        kinds = {"alert" if "alert" in rule else "record" for rule in group["rules"]}
        assert len(kinds) == 1, group["name"]


def test_alerts_equal_the_shipped_alerting_rules() -> None:
    alerts = jsonnet(f"{MIXIN_OF}.prometheusAlerts")
    assert alerts == {"groups": [g for g in shipped_groups() if has_alerts(g)]}
    names = {r["alert"] for g in alerts["groups"] for r in g["rules"]}
    assert {
        "SessionExporterDown",
        "SessionServiceLevelFastBurn",
        "RescueStatusValuesUnrecognized",
    } <= names


def test_rules_equal_the_shipped_recording_rules() -> None:
    rules = jsonnet(f"{MIXIN_OF}.prometheusRules")
    assert rules == {"groups": [g for g in shipped_groups() if not has_alerts(g)]}
    records = {r["record"] for g in rules["groups"] for r in g["rules"]}
    assert "vendor_account:session_service_level:ratio1h" in records
    assert "session_exporter:threshold_service_level_seconds" in records


def test_dashboards_equal_the_generated_dashboards() -> None:
    boards = jsonnet(f"{MIXIN_OF}.grafanaDashboards")
    assert boards == {p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARDS}


def test_config_changes_the_job_selector_and_adds_runbook_urls() -> None:
    alerts = jsonnet(
        f"({MIXIN_OF} + {{_config+:: {{sessionExporterSelector: 'job=\"sx\"', "
        "runbookURLPattern: 'https://runbooks.example/%s'}}).prometheusAlerts"
    )
    rules = {r["alert"]: r for g in alerts["groups"] for r in g["rules"]}
    assert rules["SessionExporterDown"]["expr"] == ('up{job="sx"} == 0 or absent(up{job="sx"})')
    assert all(
        r["annotations"]["runbook_url"] == f"https://runbooks.example/{name.lower()}"
        for name, r in rules.items()
    )


@pytest.mark.parametrize("path", LIBSONNET, ids=[p.name for p in LIBSONNET])
def test_jsonnet_is_formatted(path: Path) -> None:
    require_tool("jsonnetfmt")
    result = run("jsonnetfmt", "--test", path)
    assert result.returncode == 0, f"run jsonnetfmt -i {path}: {result.stderr}"
