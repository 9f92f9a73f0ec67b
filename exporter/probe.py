"""`session-exporter probe`: one cycle of each account against the real vendor, now.

The probe runs the same daemon, collectors and clients as the service, once, in memory:
no --storage.path, nothing saved, nothing served, so trying credentials can never
disturb a running exporter's counters. What it reports is derived from the account's
history and families alone, so it knows no vendor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric

from . import scrub
from .clock import Clock
from .config import Config
from .history import CycleRecord, Failure
from .loop import AccountRunner, Daemon
from .statuspage import scrubbed
from .vendors.base import Vendor


class UnknownAccount(ValueError):
    pass


@dataclass(frozen=True)
class Seen:
    """One family's total over the account's series, and its split by status if any."""

    total: float
    by_status: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeResult:
    vendor: str
    name: str
    ok: bool
    duration: float
    failure: Failure | None
    hint: str | None
    pages: dict[str, int]  # requests per operation
    records: int
    rejected: dict[str, int]
    seen: dict[str, Seen]
    series: int

    @property
    def key(self) -> str:
        return f"{self.vendor}/{self.name}"


def select(config: Config, names: Sequence[str]) -> Config:
    """Only the accounts named ``vendor/name``; all of them when none is named."""
    if not names:
        return config
    known = {f"{a.common.vendor}/{a.common.name}": a for a in config.accounts}
    missing = [n for n in names if n not in known]
    if missing:
        raise UnknownAccount(
            f"no such account: {', '.join(missing)}; configured: {', '.join(known) or 'none'}"
        )
    wanted = [known[n] for n in dict.fromkeys(names)]
    return dataclasses.replace(config, accounts=tuple(wanted))


def is_session_family(name: str) -> bool:
    """Families that count sessions (gauges and counters), not times or averages."""
    return "session" in name and not any(
        word in name for word in ("seconds", "timestamp", "duration", "info")
    )


def summarize(families: Iterable[Metric]) -> dict[str, Seen]:
    totals: dict[str, float] = {}
    statuses: dict[str, dict[str, float]] = {}
    for family in families:
        if family.type not in ("gauge", "counter") or not is_session_family(family.name):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            name = sample.name
            totals[name] = totals.get(name, 0.0) + sample.value
            status = sample.labels.get("status")
            if status is not None and sample.value:
                split = statuses.setdefault(name, {})
                split[status] = split.get(status, 0.0) + sample.value
    return {name: Seen(total, statuses.get(name, {})) for name, total in totals.items()}


def result_of(runner: AccountRunner) -> ProbeResult:
    common = runner.common
    cycle = runner.history.last or CycleRecord(started=0.0, duration=0.0, ok=False)
    pages: dict[str, int] = {}
    for request in cycle.requests:
        pages[request.operation] = pages.get(request.operation, 0) + 1
    families = list(runner.collector.families())
    return ProbeResult(
        vendor=common.vendor,
        name=common.name,
        ok=bool(cycle.ok),
        duration=cycle.duration or 0.0,
        failure=cycle.failure,
        hint=cycle.hint,
        pages=pages,
        records=cycle.records_parsed,
        rejected=dict(cycle.rejected),
        seen=summarize(families),
        series=sum(len(f.samples) for f in families),
    )


async def run_probe(
    config: Config, vendors: Mapping[str, Vendor], clock: Clock | None = None
) -> list[ProbeResult]:
    """One cycle of every account in `config`, all at once, in a throwaway daemon."""
    daemon = Daemon(config, vendors, clock=clock, store=None)
    await daemon.start(schedule=False)
    try:
        await daemon.collect_all_once()
        return [result_of(runner) for runner in daemon.runners.values()]
    finally:
        await daemon.stop()


def _number(value: float) -> str:
    return f"{value:g}"


def describe_seen(seen: Mapping[str, Seen]) -> str:
    parts = []
    for name, s in seen.items():
        split = ""
        if s.by_status:
            split = (
                " (" + ", ".join(f"{k} {_number(v)}" for k, v in sorted(s.by_status.items())) + ")"
            )
        parts.append(f"{name}={_number(s.total)}{split}")
    return ", ".join(parts)


def format_line(result: ProbeResult) -> str:
    pages = ", ".join(f"{op} {n}" for op, n in result.pages.items())
    requests = sum(result.pages.values())
    head = f"{'ok' if result.ok else 'FAIL':4}  {result.key}  {result.duration:.2f}s"
    if result.ok:
        rejected = sum(result.rejected.values())
        reasons = ""
        if result.rejected:
            reasons = " (" + ", ".join(f"{k} {v}" for k, v in sorted(result.rejected.items())) + ")"
        text = (
            f"{head}  {requests} request(s) [{pages}], {result.records} record(s), "
            f"{rejected} rejected{reasons}, {result.series} series; "
            f"saw {describe_seen(result.seen) or 'no session series'}"
        )
        if result.hint:
            text += f"  check: {result.hint}"
    else:
        failure = result.failure
        what = (
            f"{failure.reason} in {failure.operation}: {failure.message}"
            if failure is not None
            else "no cycle ran"
        )
        text = f"{head}  {what}"
        if result.hint:
            text += f"  check: {result.hint}"
        if pages:
            text += f"  [{requests} request(s): {pages}]"
    return scrub.scrub(text)


def as_json(results: Sequence[ProbeResult]) -> dict[str, Any]:
    def one(r: ProbeResult) -> dict[str, Any]:
        failure = r.failure
        return {
            "vendor": r.vendor,
            "name": r.name,
            "ok": r.ok,
            "duration_seconds": r.duration,
            "operation": failure.operation if failure else None,
            "reason": failure.reason if failure else None,
            "message": failure.message if failure else None,
            "hint": r.hint,
            "requests": r.pages,
            "records_parsed": r.records,
            "rejected": r.rejected,
            "series": r.series,
            "seen": {
                name: {"total": s.total, "by_status": s.by_status} for name, s in r.seen.items()
            },
        }

    return scrubbed({"ok": all(r.ok for r in results), "accounts": [one(r) for r in results]})


def exit_status(results: Sequence[ProbeResult]) -> int:
    return 0 if all(r.ok for r in results) else 1
