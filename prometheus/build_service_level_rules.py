#!/usr/bin/env python3
"""Builds prometheus/rules/session-exporter-service-level.rules.yml: the contact-centre KPIs
(offered, answered, abandoned, service level, average speed of answer, abandonment rate,
average handle time) of every vendor, as recording rules.

The rules are regular (one shape per vendor and window, about a hundred of them), so they are
written by this script rather than by hand; the YAML it writes is what Prometheus loads and
what the tests check. After editing, run `python3 prometheus/build_service_level_rules.py`;
`--check` exits 1 when the committed file differs (tests/test_dashboards_and_rules.py runs
it). Standard library only. The thresholds these rules read are in
session-exporter-thresholds.rules.yml (hand-written, the file users edit).

Definitions (README "Service level and KPIs" has the PromQL and what is exact per vendor):
- offered: sessions that left the queue answered, abandoned or timed out. `transferred` is
  left out (the session is offered again where it was transferred to) and so is `other`
  (its outcome is unknown).
- service level: answered within the account's threshold / offered.
- average speed of answer: mean wait of answered sessions.
- abandonment rate: abandoned / offered.
- average handle time: Glance duration of answered sessions, SecureVideo consult time.
  Rescue's getSession has no handle time; SecureVideo's History lists connected sessions
  only, so it has no abandonment.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parent / "rules" / "session-exporter-service-level.rules.yml"

# The service-level threshold must be one of these: the default wait buckets
# (exporter/families.py WAIT_BUCKETS), i.e. the `le` bounds the histograms have.
SUPPORTED_THRESHOLDS = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800, 3600)
KNOWN = 'outcome=~"answered|abandoned|timed_out"'
FAST_WINDOWS = ("5m", "30m", "1h", "6h")  # evaluated every group interval
DAY_WINDOWS = ("1d",)  # evaluated every 5 minutes (see the group)
KPI_WINDOWS = ("5m", "1h", "1d")  # answered, abandoned, ASA, abandonment, AHT
SLO_WINDOWS = ("5m", "30m", "1h", "6h", "1d")  # offered, within threshold, service level


@dataclass(frozen=True)
class Vendor:
    name: str
    wait: str  # the wait histogram
    answered: str  # its selector of answered sessions ('' when all are)
    abandoned: str | None  # its selector of abandoned sessions, None when unknowable
    known: str  # its selector of offered sessions
    handle: str | None  # the handle-time histogram and selector, None when none
    handle_sel: str = ""


GLANCE = Vendor(
    "glance",
    "glance_session_wait_seconds",
    'outcome="answered"',
    'outcome="abandoned"',
    KNOWN,
    "glance_session_duration_seconds",
    'outcome="answered"',
)
SECUREVIDEO = Vendor(
    "securevideo",
    "securevideo_session_wait_seconds",
    "",
    None,
    "",
    "securevideo_session_consult_seconds",
)
RESCUE = Vendor(
    "rescue",
    "rescue_session_wait_seconds",
    'outcome="answered"',
    'outcome="abandoned"',
    KNOWN,
    None,
)
VENDORS = (GLANCE, SECUREVIDEO, RESCUE)


def braces(selector: str) -> str:
    return f"{{{selector}}}" if selector else ""


def indent(text: str, by: int) -> str:
    pad = " " * by
    return "\n".join(pad + line if line else line for line in text.split("\n"))


def rule(record: str, expr: str, labels: dict[str, str] | None = None, comment: str = "") -> str:
    lines = []
    if comment:
        lines += [f"      # {c}" if c else "      #" for c in comment.split("\n")]
    lines.append(f"      - record: {record}")
    if "\n" in expr:
        lines.append("        expr: |")
        lines.append(indent(expr.rstrip("\n"), 10))
    else:
        lines.append(f"        expr: {expr}")
    if labels:
        inner = ", ".join(f"{k}: {v}" for k, v in labels.items())
        lines.append(f"        labels: {{{inner}}}")
    return "\n".join(lines)


# ----------------------------------------------------------------- per-account settings


def configured(vendor: Vendor, threshold: str) -> str:
    """The account's value of a threshold: an override with the vendor and the account,
    else one with the account only, else the default (no labels). One series per account
    that has the vendor's wait histogram."""
    accounts = f"max by (account) ({vendor.wait}_count) * 0"
    name = f"session_exporter:threshold_{threshold}"
    return (
        f'{accounts}\n  + on (account) {name}{{vendor="{vendor.name}", account!=""}}\n'
        f'or\n{accounts}\n  + on (account) {name}{{vendor="", account!=""}}\n'
        f'or\n{accounts}\n  + on () group_left () {name}{{vendor="", account=""}}'
    )


def threshold_le() -> str:
    """The threshold as an `le` label, for selecting its bucket: PromQL cannot turn a value
    into a label, so every supported value is spelled out once. A threshold that is not in
    the list selects no bucket (the SessionServiceLevelThresholdUnsupported alert)."""
    src = "vendor_account:service_level_threshold_seconds:configured"
    parts = [f'label_replace({src} == {t}, "le", "{t}", "", "")' for t in SUPPORTED_THRESHOLDS]
    return "\n or ".join(parts)


def settings_rules() -> list[str]:
    out = []
    for kind, what in (
        ("service_level_threshold_seconds", "threshold (seconds)"),
        ("service_level_objective", "objective (ratio)"),
        ("service_level_min_offered", "minimum offered sessions"),
    ):
        source = kind.replace("service_level_threshold_seconds", "service_level_seconds")
        for index, vendor in enumerate(VENDORS):
            comment = (
                f"Each account's service-level {what}: its override or the\n"
                "default of session-exporter-thresholds.rules.yml."
                if index == 0
                else ""
            )
            out.append(
                rule(
                    f"vendor_account:{kind}:configured",
                    configured(vendor, source),
                    {"vendor": vendor.name},
                    comment,
                )
            )
    out.append(
        rule(
            "vendor_account_le:service_level_threshold_seconds:configured",
            threshold_le(),
            comment="The threshold as the `le` label of its bucket (bucket bounds written without\n"
            "a trailing .0). Supported values: the wait-bucket bounds listed above.",
        )
    )
    return out


# ----------------------------------------------------------------- counts and KPIs


def within(metric: str, answered: str, by: str, window: str, vendor: str) -> str:
    """Answered sessions whose wait was within the account's threshold: the bucket whose
    `le` equals the threshold. prometheus_client writes bounds as "20.0", Prometheus 3
    normalises them to "20": the label_replace strips the ".0" so both match."""
    return (
        f"sum by ({by}) (\n"
        f"  label_replace(\n"
        f"    sum by ({by}, le) (increase({metric}_bucket{braces(answered)}[{window}])),\n"
        f'    "le", "$1", "le", "(.+)\\\\.0"\n'
        f"  )\n"
        f"  and on (account, le)\n"
        f"  vendor_account_le:service_level_threshold_seconds:configured"
        f'{{vendor="{vendor}"}}\n'
        f")"
    )


def count(metric: str, selector: str, by: str, window: str) -> str:
    return f"sum by ({by}) (increase({metric}_count{braces(selector)}[{window}]))"


def mean(metric: str, selector: str, by: str, window: str) -> str:
    return (
        f"sum by ({by}) (increase({metric}_sum{braces(selector)}[{window}]))\n"
        f"/\n{count(metric, selector, by, window)}"
    )


def ratio(numerator: str, denominator: str, by: str) -> str:
    return f"{numerator}\n/ on ({by})\n{denominator}"


def vendor_rules(vendor: Vendor, windows: tuple[str, ...]) -> list[str]:
    """vendor_account:* of one vendor. Rescue's are sums of its per-node rules (which come
    first in the group, so they are already evaluated), the others read the histograms."""
    out: list[str] = []
    lab = {"vendor": vendor.name}
    by = "account"
    for w in windows:
        if vendor is RESCUE:

            def node(series: str, w: str = w) -> str:
                return f"sum by (account) (account_node:rescue_{series}:increase{w})"

            offered, answered = node("sessions_offered"), node("sessions_answered")
            abandoned: str | None = node("sessions_abandoned")
            inside = node("sessions_answered_within_threshold")
        else:
            offered = count(vendor.wait, vendor.known, by, w)
            answered = count(vendor.wait, vendor.answered, by, w)
            abandoned = count(vendor.wait, vendor.abandoned, by, w) if vendor.abandoned else None
            inside = within(vendor.wait, vendor.answered, by, w, vendor.name)
        out.append(rule(f"vendor_account:sessions_offered:increase{w}", offered, lab))
        out.append(
            rule(f"vendor_account:sessions_answered_within_threshold:increase{w}", inside, lab)
        )
        if w in KPI_WINDOWS:
            out.append(rule(f"vendor_account:sessions_answered:increase{w}", answered, lab))
            if abandoned:
                out.append(rule(f"vendor_account:sessions_abandoned:increase{w}", abandoned, lab))
    return out


def kpi_rules(windows: tuple[str, ...]) -> list[str]:
    """Ratios and means per (vendor, account), from the counts above or the histograms."""
    out: list[str] = []
    for w in windows:
        out.append(
            rule(
                f"vendor_account:session_service_level:ratio{w}",
                ratio(
                    f"vendor_account:sessions_answered_within_threshold:increase{w}",
                    f"vendor_account:sessions_offered:increase{w}",
                    "vendor, account",
                ),
            )
        )
        if w not in KPI_WINDOWS:
            continue
        out.append(
            rule(
                f"vendor_account:session_abandonment:ratio{w}",
                ratio(
                    f"vendor_account:sessions_abandoned:increase{w}",
                    f"vendor_account:sessions_offered:increase{w}",
                    "vendor, account",
                ),
            )
        )
        out.extend(
            rule(
                f"vendor_account:session_speed_of_answer_seconds:mean{w}",
                mean(vendor.wait, vendor.answered, "account", w),
                {"vendor": vendor.name},
            )
            for vendor in VENDORS
        )
        out.extend(
            rule(
                f"vendor_account:session_handle_seconds:mean{w}",
                mean(vendor.handle, vendor.handle_sel, "account", w),
                {"vendor": vendor.name},
            )
            for vendor in VENDORS
            if vendor.handle
        )
    return out


def rescue_node_rules(windows: tuple[str, ...]) -> list[str]:
    by = "account, node"
    metric, answered = RESCUE.wait, RESCUE.answered
    prefix = "account_node:rescue_"
    out: list[str] = []
    for w in windows:
        if w not in KPI_WINDOWS:
            continue
        out.append(
            rule(f"{prefix}sessions_offered:increase{w}", count(metric, RESCUE.known, by, w))
        )
        out.append(rule(f"{prefix}sessions_answered:increase{w}", count(metric, answered, by, w)))
        out.append(
            rule(
                f"{prefix}sessions_abandoned:increase{w}",
                count(metric, 'outcome="abandoned"', by, w),
            )
        )
        out.append(
            rule(
                f"{prefix}sessions_answered_within_threshold:increase{w}",
                within(metric, answered, by, w, "rescue"),
            )
        )
        out.append(
            rule(
                f"{prefix}session_service_level:ratio{w}",
                ratio(
                    f"{prefix}sessions_answered_within_threshold:increase{w}",
                    f"{prefix}sessions_offered:increase{w}",
                    by,
                ),
            )
        )
        out.append(
            rule(
                f"{prefix}session_abandonment:ratio{w}",
                ratio(
                    f"{prefix}sessions_abandoned:increase{w}",
                    f"{prefix}sessions_offered:increase{w}",
                    by,
                ),
            )
        )
        out.append(
            rule(f"{prefix}session_speed_of_answer_seconds:mean{w}", mean(metric, answered, by, w))
        )
    # Rescue's offered and within-threshold of the alert windows that have no node rule.
    for w in windows:
        if w in KPI_WINDOWS:
            continue
        out.append(
            rule(f"{prefix}sessions_offered:increase{w}", count(metric, RESCUE.known, by, w))
        )
        out.append(
            rule(
                f"{prefix}sessions_answered_within_threshold:increase{w}",
                within(metric, answered, by, w, "rescue"),
            )
        )
    return out


HEADER = """\
# GENERATED by prometheus/build_service_level_rules.py: do not edit; edit the script and run
#   python3 prometheus/build_service_level_rules.py
#
# Service-level recording rules of session-exporter, per account (vendor_account:*) and, for
# LogMeIn Rescue, per node (account_node:rescue_*): offered, answered, abandoned, answered
# within the service-level threshold, service level, average speed of answer, abandonment
# rate and average handle time, over 5m, 1h and 1d (and 30m, 6h for the burn-rate alerts).
# README.md ("Service level and KPIs") gives the PromQL of each KPI and says which are exact
# per vendor; prometheus/RUNBOOK.md explains the alerts built on them.
#
# The threshold, objective and minimum volume come from session-exporter-thresholds.rules.yml
# (defaults and per-account overrides). The threshold must be a bucket bound of the wait
# histograms, one of (seconds):
#   {supported}
#
# Rules in a group run in order and each sees the ones before it, so the per-account
# settings come first and Rescue's per-account series are sums of its per-node series.
"""


def build() -> str:
    supported = ", ".join(str(t) for t in SUPPORTED_THRESHOLDS)
    fast = (
        settings_rules()
        + rescue_node_rules(FAST_WINDOWS)
        + [r for v in VENDORS for r in vendor_rules(v, FAST_WINDOWS)]
        + kpi_rules(FAST_WINDOWS)
    )
    day = (
        rescue_node_rules(DAY_WINDOWS)
        + [r for v in VENDORS for r in vendor_rules(v, DAY_WINDOWS)]
        + kpi_rules(DAY_WINDOWS)
    )
    return (
        HEADER.format(supported=supported)
        + "groups:\n"
        + "  - name: session-exporter-service-level\n    rules:\n"
        + "\n".join(fast)
        + "\n"
        + "  # One-day windows read a day of samples per series: evaluated every 5 minutes.\n"
        + "  - name: session-exporter-service-level-1d\n    interval: 5m\n    rules:\n"
        + "\n".join(day)
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the committed rule file differs from the built one",
    )
    args = parser.parse_args(argv)
    text = build()
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(
                f"{OUT.name} is out of date: run python3 prometheus/build_service_level_rules.py",
                file=sys.stderr,
            )
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
