"""Proof on real data: every dashboard query and every rule expression, evaluated by a real
Prometheus server scraping the exporter's demo.

The test starts `session-exporter --demo` (built-in simulators of the three vendors, with
random faults) and Debian's `prometheus` on loopback with a temporary TSDB, a 1 s scrape
interval and our rule files; it polls the Prometheus HTTP API until every expression that
should return data does (or a deadline passes), then asserts:

- every panel target and every variable query of every dashboard returns data;
- every recording rule and alerting rule expression returns data, except the alerts listed
  in NOT_FIRING (alerts that must not fire in the demo), which must return nothing while
  their reverse condition returns data, and those in MAY_FIRE (their firing depends on the
  demo's random traffic), whose input must return data;
- Prometheus reports every rule healthy (no evaluation error).

"Returns data" means at least one non-NaN sample in a range query over the test's run.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import require_tool

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.rules.yml"))
DEADLINE_S = 75.0  # for the demo's data to be ingested and every query to answer
STARTUP_S = 20.0  # for each process to listen

# Alerts that must not fire in the demo, with the reason and the reverse condition that must
# return data instead (it shows the alert's inputs are there and healthy).
NOT_FIRING: dict[str, tuple[str, str]] = {
    "SessionExporterDown": (
        "the test's Prometheus scrapes the demo exporter successfully",
        'up{job="session-exporter"} == 1',
    ),
    "SessionExporterAccountDataStale": (
        "the demo polls every account every 5 s and fails only 2 % of requests",
        "time() - session_exporter_last_success_timestamp_seconds < 600",
    ),
    "SessionExporterVendorAuthFailing": (
        "the demo's simulators accept the demo credentials; injected faults are 5xx and "
        "garbage, never auth",
        "sum by (vendor, account) (increase(session_exporter_upstream_requests_total[10m])) "
        "unless on (vendor, account) (sum by (vendor, account) (increase("
        'session_exporter_upstream_request_failures_total{reason="auth"}[10m])) > 0)',
    ),
    "SessionExporterConfigReloadFailed": (
        "the demo's generated config always loads",
        "session_exporter_config_last_reload_successful == 1",
    ),
    "SessionExporterStateNotSaved": (
        "the test's demo saves its state to a file in a writable temporary directory",
        'session_exporter_state_failures_total{operation="save"} == 0',
    ),
    "GlanceCompletedFeedBehind": (
        "the demo polls every 5 s and its feed (a lookback of 1 h) is read whole in the first "
        "cycle, so it trails now by seconds, under the default threshold of 1800 s",
        "(time() - glance_completed_feed_timestamp_seconds) "
        '< on () group_left () session_exporter:threshold_glance_feed_behind_seconds{account=""}',
    ),
    "RescueCustomerWaitingTooLong": (
        "the demo's Rescue customers wait 5 to 75 s before a technician picks them up, under "
        "the default threshold of 300 s",
        '(time() - rescue_session_status_oldest_change_timestamp_seconds{status="Waiting"}) '
        '< on () group_left () session_exporter:threshold_rescue_wait_seconds{account=""}',
    ),
    "SecureVideoBillableSessionsNearLimit": (
        "the demo clinic's billable sessions of the month stay below the default warning "
        "level of 900",
        'securevideo_sessions_month{billable_status="BILL"} < on () group_left () '
        'session_exporter:threshold_securevideo_billable_month{account=""}',
    ),
    "CompletedSessionsDropped": (
        "it compares with the same hour one week earlier, and the test's TSDB is a minute old",
        "vendor_account:sessions_completed:increase1h",
    ),
    "SessionServiceLevelThresholdUnsupported": (
        "every demo account has the default threshold (20 s), a bound of the default wait buckets",
        "vendor_account_le:service_level_threshold_seconds:configured"
        " and on (vendor, account) vendor_account:sessions_answered_within_threshold:increase1h",
    ),
    "RescueStatusValuesUnrecognized": (
        "the demo's Rescue simulator answers documented statuses or built-in aliases only",
        'session_exporter_unrecognized_status_values{vendor="rescue"} == 0',
    ),
}

# Alerts whose firing depends on the demo's random traffic (how many customers the simulators
# serve late in the test's minute), with the reason and the input that must return data.
MAY_FIRE: dict[str, tuple[str, str]] = {
    "SessionServiceLevelFastBurn": (
        "the demo's service level is random and its hour holds a minute or two of sessions",
        "vendor_account:session_service_level:ratio1h"
        " and on (vendor, account) vendor_account:service_level_min_offered:configured",
    ),
    "SessionServiceLevelSlowBurn": (
        "as above, over 6 hours",
        "vendor_account:session_service_level:ratio6h"
        " and on (vendor, account) vendor_account:service_level_min_offered:configured",
    ),
}

# Dashboard queries that may legitimately have no data in a short demo run, with the reason
# and the reverse condition that must return data instead (the query's input exists).
# Keyed by a regular expression searched in the query.
SPARSE_IN_DEMO: dict[str, tuple[str, str]] = {
    r"histogram_quantile\(.*securevideo_session_duration_seconds_bucket": (
        "the demo's SecureVideo sessions last minutes: about one finishes a minute, the first "
        "some 40 s in, and a quantile over a 1m rate needs two in the window",
        "securevideo_session_duration_seconds_count",
    ),
    r"histogram_quantile\(.*securevideo_session_wait_seconds_bucket": (
        "WaitTime is observed when a SecureVideo session finishes: as above",
        "securevideo_session_wait_seconds_count",
    ),
    r"histogram_quantile\(.*securevideo_session_start_delay_seconds_bucket": (
        "the start delay is observed once per Scheduled or Rescheduled session, a share of the "
        "one a minute that finish: as above",
        "securevideo_session_start_delay_seconds_count",
    ),
}

# Grafana's variables, as the test substitutes them: every account, node and provider.
VARIABLES = {
    "$__rate_interval": "1m",
    "${account}": ".*",
    "$account": ".*",
    "${node}": ".*",
    "$node": ".*",
    "${provider}": ".*",
    "$provider": ".*",
}


def substitute(expr: str) -> str:
    for name, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def label_values_to_promql(query: str) -> str:
    """Grafana's `label_values(metric{...}, label)` as the PromQL that answers it."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
    assert match, f"unsupported variable query {query!r}"
    return f"count by ({match.group(2)}) ({match.group(1)})"


def dashboard_queries() -> dict[str, str]:
    """'<dashboard> / <panel> / <refId>' -> PromQL, for every panel and variable query."""
    queries: dict[str, str] = {}
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                queries[f"{path.stem} / variable {variable['name']}"] = substitute(
                    label_values_to_promql(variable["query"])
                )
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                key = f"{path.stem} / {panel['title']} / {target['refId']}"
                queries[key] = substitute(target["expr"])
    return queries


def sparse_reason(expr: str) -> tuple[str, str] | None:
    for pattern, why in SPARSE_IN_DEMO.items():
        if re.search(pattern, expr):
            return why
    return None


def rules() -> list[dict[str, Any]]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            found.extend(group["rules"])
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def wait_listening(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + STARTUP_S
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited early with status {process.returncode}")
        try:
            http_get(url, timeout=1.0)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not answer {url} in {STARTUP_S:.0f} s") from None
            time.sleep(0.2)  # polling an external process, bounded by the deadline


class Prometheus:
    def __init__(self, base: str, start: float) -> None:
        self.base = base
        self.start = start

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.base}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            body = json.loads(http_get(url, timeout=10.0))
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        assert body["status"] == "success", f"{path} {params}: {body.get('error')}"
        return body["data"]

    def has_data(self, expr: str) -> bool:
        """At least one non-NaN sample since the test started, at a 1 s step."""
        data = self.api(
            "query_range", query=expr, start=f"{self.start:.3f}", end=f"{time.time():.3f}", step="1"
        )
        return any(
            not math.isnan(float(value))
            for series in data["result"]
            for _, value in series["values"]
        )


def ingested_since(base: str, server: subprocess.Popen[bytes]) -> float:
    """Waits until Prometheus holds a successful poll of every demo account; returns when.

    Queries are judged from then on: before it, absent(up) and an account whose first poll
    cycle failed are true, as they would be in production while the exporter starts."""
    query = (
        "count(session_exporter_last_success_timestamp_seconds) == count(session_exporter_up) >= 3"
    )
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    deadline = time.monotonic() + DEADLINE_S
    while not json.loads(http_get(url))["data"]["result"]:
        assert server.poll() is None, "prometheus exited"
        assert time.monotonic() < deadline, "the demo's accounts were never all polled"
        time.sleep(0.5)  # waiting for scrapes of an external process, bounded
    return time.time()


def every_second(paths: list[Path], tmp: Path) -> list[Path]:
    """The rule files with every group evaluated at the global interval (1 s here).

    A group's own `interval` (the service level's one-day windows run every 5 minutes, to
    save the CPU of reading a day of samples) first runs at an offset of up to that
    interval, longer than this test: the test drops it, as it sets the global evaluation
    interval, and changes no expression."""
    copies = []
    for path in paths:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in data["groups"]:
            group.pop("interval", None)
        copy = tmp / path.name
        copy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        copies.append(copy)
    return copies


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("real-prometheus")
    exporter_port, prometheus_port = free_port(), free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(p) for p in every_second(RULE_FILES, tmp)],
        "scrape_configs": [
            {
                "job_name": "session-exporter",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    processes: list[subprocess.Popen[bytes]] = []
    logs = {
        name: open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed in finally
        for name in ("exporter", "prometheus")
    }
    try:
        exporter = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                "--demo",
                "--web.listen-address",
                f"127.0.0.1:{exporter_port}",
                "--log.level",
                "warn",
                # As deployed: the state failure series exist only with a store.
                f"--storage.path={tmp / 'state.db'}",
            ],
            cwd=ROOT,
            env=env,
            stdout=logs["exporter"],
            stderr=subprocess.STDOUT,
        )
        processes.append(exporter)
        server = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                "--log.level=warn",
            ],
            cwd=tmp,
            stdout=logs["prometheus"],
            stderr=subprocess.STDOUT,
        )
        processes.append(server)
        wait_listening(f"http://127.0.0.1:{exporter_port}/-/healthy", exporter, "the exporter")
        base = f"http://127.0.0.1:{prometheus_port}"
        wait_listening(f"{base}/-/ready", server, "prometheus")
        yield Prometheus(base, ingested_since(base, server))
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs.values():
            log.close()


@pytest.fixture(scope="module")
def evaluated(prometheus: Prometheus) -> dict[str, bool]:
    """Polls until every expression that should return data does, or the deadline passes;
    returns expression -> has data, for the dashboards' queries, the rules and the reverse
    conditions."""
    expected = {q for q in dashboard_queries().values() if sparse_reason(q) is None}
    expected |= {
        r["expr"]
        for r in rules()
        if r.get("alert") not in NOT_FIRING and r.get("alert") not in MAY_FIRE
    }
    expected |= {reverse for _reason, reverse in NOT_FIRING.values()}
    expected |= {needed for _reason, needed in MAY_FIRE.values()}
    expected |= {reverse for _reason, reverse in SPARSE_IN_DEMO.values()}
    results: dict[str, bool] = {}
    deadline = time.monotonic() + DEADLINE_S
    while True:
        for expr in sorted(expected):
            if not results.get(expr):
                results[expr] = prometheus.has_data(expr)
        if all(results.values()) or time.monotonic() > deadline:
            break
        time.sleep(2.0)  # waiting for the demo's data, bounded by the deadline
    for rule in rules():
        if rule.get("alert") in NOT_FIRING or rule.get("alert") in MAY_FIRE:
            results[rule["expr"]] = prometheus.has_data(rule["expr"])
    for query in dashboard_queries().values():
        if query not in results:
            results[query] = prometheus.has_data(query)
    return results


pytestmark = pytest.mark.slow


def test_every_alert_not_expected_to_fire_is_a_real_alert() -> None:
    alerts = {r["alert"] for r in rules() if "alert" in r}
    assert set(NOT_FIRING) <= alerts
    assert set(MAY_FIRE) <= alerts
    assert not set(NOT_FIRING) & set(MAY_FIRE)


def test_every_dashboard_query_returns_data(evaluated: dict[str, bool]) -> None:
    empty = [
        f"{key}: {expr}"
        for key, expr in dashboard_queries().items()
        if not evaluated[expr] and sparse_reason(expr) is None
    ]
    assert not empty, "no data in the demo:\n" + "\n".join(empty)


def test_sparse_dashboard_queries_have_their_input(evaluated: dict[str, bool]) -> None:
    sparse = {
        expr: why
        for expr in dashboard_queries().values()
        if (why := sparse_reason(expr)) is not None
    }
    assert len({why for why in sparse.values()}) == len(SPARSE_IN_DEMO), "stale exception"
    for expr, (reason, reverse) in sparse.items():
        if not evaluated[expr]:
            assert evaluated[reverse], f"{expr}: no data ({reason}), and no input: {reverse}"


def test_every_rule_expression_returns_data(evaluated: dict[str, bool]) -> None:
    empty = [
        rule.get("alert") or rule["record"]
        for rule in rules()
        if rule.get("alert") not in NOT_FIRING
        and rule.get("alert") not in MAY_FIRE
        and not evaluated[rule["expr"]]
    ]
    assert not empty, f"rules without data in the demo: {empty}"


def test_alerts_that_may_fire_have_their_input(evaluated: dict[str, bool]) -> None:
    for name, (reason, needed) in MAY_FIRE.items():
        assert evaluated[needed], f"{name} ({reason}): its input has no data: {needed}"


def test_alerts_that_should_not_fire_do_not_and_their_reverse_holds(
    evaluated: dict[str, bool],
) -> None:
    by_name = {r["alert"]: r for r in rules() if "alert" in r}
    for name, (reason, reverse) in NOT_FIRING.items():
        assert not evaluated[by_name[name]["expr"]], f"{name} fires in the demo ({reason})"
        assert evaluated[reverse], f"{name}: reverse condition has no data: {reverse}"


def test_prometheus_evaluates_every_rule_without_error(
    prometheus: Prometheus, evaluated: dict[str, bool]
) -> None:
    groups = prometheus.api("rules")["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert len(loaded) == len(rules())
    unhealthy = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
    assert not unhealthy
