"""Each vendor declares its metric families (`Vendor.families`); the exposition, the
dashboards and the README table are checked against those declarations, so a fourth
vendor adds its families in its own package and these checks cover it unchanged."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from exporter.config import parse_config
from exporter.families import FamilySpec
from exporter.registry import VENDORS
from exporter.selfmetrics import SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.vendors.base import Vendor

from . import fakevendor
from .support import daemon_for, serve_app

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "demo.txt"
README = ROOT / "README.md"
SERVICE_LEVEL_RULES = ROOT / "prometheus" / "rules" / "session-exporter-service-level.rules.yml"
FAKE = fakevendor.VENDOR
WITH_FAKE: dict[str, Vendor] = {**VENDORS, FAKE.name: FAKE}

# (name, kind, label names without `le`) of an exposition, per family.
Seen = dict[str, tuple[str, frozenset[str]]]


def exposed(text: str) -> Seen:
    seen: Seen = {}
    for family in text_string_to_metric_families(text):
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        # The parser drops the _total of counters; the declarations keep it.
        name = family.name + "_total" if family.type == "counter" else family.name
        seen[name] = (family.type, frozenset(labels))
    return seen


def contract_violations(vendor: Vendor, seen: Seen) -> list[str]:
    """What a vendor's exposition breaks of its declaration, and what it shows undeclared."""
    problems = []
    declared = {spec.name: spec for spec in vendor.families}
    for spec in vendor.families:
        if spec.name not in seen:
            problems.append(f"{spec.name}: declared, not exposed")
            continue
        kind, labels = seen[spec.name]
        if kind != spec.kind:
            problems.append(f"{spec.name}: a {kind}, declared a {spec.kind}")
        if not set(spec.labels) <= labels <= set(spec.labels) | set(spec.optional_labels):
            problems.append(f"{spec.name}: labels {sorted(labels)}, declared {spec.labels}")
    prefix = vendor.name + "_"
    problems += [
        f"{name}: exposed, not declared"
        for name in seen
        if name.startswith(prefix) and name not in declared
    ]
    return problems


def core_family_names() -> set[str]:
    metrics = SelfMetrics()
    metrics.reload_success_time = 1.0  # its family is absent until a config loaded
    return {f.name + ("_total" if f.type == "counter" else "") for f in metrics.families()}


def every_spec(vendors: Mapping[str, Vendor]) -> Iterable[FamilySpec]:
    for vendor in vendors.values():
        yield from vendor.families


def test_every_vendor_declares_families_with_unique_names() -> None:
    names = [spec.name for spec in every_spec(WITH_FAKE)]
    assert len(names) == len(set(names))
    for vendor in WITH_FAKE.values():
        assert vendor.families, f"{vendor.name} declares no families"
        for spec in vendor.families:
            assert spec.name.startswith(vendor.name + "_") or spec.name.startswith(
                "session_exporter_"
            ), spec.name
            assert "account" in spec.labels, spec.name


def test_the_pinned_exposition_is_exactly_what_the_vendors_declare() -> None:
    seen = exposed(GOLDEN.read_text(encoding="utf-8"))
    for vendor in VENDORS.values():
        assert contract_violations(vendor, seen) == [], vendor.name
    declared = {spec.name for spec in every_spec(VENDORS)}
    assert set(seen) - declared <= core_family_names(), "a family nobody declares"


def test_a_broken_declaration_is_caught() -> None:
    seen = exposed(GOLDEN.read_text(encoding="utf-8"))
    rescue = VENDORS["rescue"]
    wrong = Vendor(
        **{
            **rescue.__dict__,
            "families": (
                FamilySpec("rescue_sessions", "gauge", ("account", "node")),
                FamilySpec("rescue_gone_total", "counter", ("account",)),
            ),
        }
    )
    problems = contract_violations(wrong, seen)
    assert any(p.startswith("rescue_sessions: labels") for p in problems)
    assert "rescue_gone_total: declared, not exposed" in problems
    assert "rescue_session_wait_seconds: exposed, not declared" in problems


async def test_a_fourth_vendor_registered_alongside_the_others_just_works() -> None:
    """The fake vendor, registered with the real three: config parsing, a cycle against
    its simulator, rendering and the contract checks, with nothing outside its module."""
    clock = FakeClock()
    simulator = fakevendor.FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url:
        config = {
            "glance": [
                {"name": "g", "partner_id": 1, "api_key": "k-g", "base_url": "http://127.0.0.1:1"}
            ],
            "fake": simulator.demo_accounts(url),
        }
        parsed = parse_config(config, WITH_FAKE)
        assert [a.common.key for a in parsed.accounts] == [("glance", "g"), ("fake", "demo-fake")]
        async with daemon_for(config, WITH_FAKE, clock) as daemon:
            assert await daemon.collect_once("fake", "demo-fake")
            seen = exposed(daemon.snapshot.text.decode())
    assert contract_violations(FAKE, seen) == []
    assert seen["fake_value"][0] == "gauge"


def dashboard_text() -> str:
    boards = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
    exprs: list[str] = []
    for board in boards:
        text = board.read_text(encoding="utf-8")
        exprs.extend(
            json.loads(match.group(1))
            for match in re.finditer(r'"expr":\s*("(?:[^"\\]|\\.)*")', text)
        )
    return "\n".join(exprs) + SERVICE_LEVEL_RULES.read_text(encoding="utf-8")


def test_every_declared_family_is_on_a_dashboard_unless_declared_otherwise() -> None:
    text = dashboard_text()
    for spec in every_spec(VENDORS):
        shown = re.search(rf"\b{spec.name}(_bucket|_count|_sum)?\b", text) is not None
        assert shown == spec.on_dashboard, (spec.name, shown)


def readme_rows() -> dict[str, tuple[str, set[str]]]:
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| `([a-z_]+)` \| (gauge|counter|histogram) \| ([^|]*) \|", line)
        if match:
            labels = {
                label.strip()
                for label in re.sub(r"\(\+|opt-in\)", ",", match.group(3))
                .replace(")", "")
                .split(",")
            }
            rows[match.group(1)] = (match.group(2), labels - {""})
    return rows


def test_the_readme_table_lists_every_declared_family_as_declared() -> None:
    rows = readme_rows()
    for spec in every_spec(VENDORS):
        assert spec.name in rows, f"README metric table: no row for {spec.name}"
        kind, labels = rows[spec.name]
        assert kind == spec.kind, spec.name
        assert labels == set(spec.labels) | set(spec.optional_labels), spec.name
