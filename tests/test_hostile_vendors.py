"""Each vendor's real simulator, its replies rewritten the way a hostile or broken vendor
would answer: unencodable strings, absurd numbers, megabyte labels, credentials echoed
as data. The real daemon must keep rendering, keep every value finite and every label
short, leak no secret, count what it rejected, and pass `promtool check metrics`."""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import parse_config
from exporter.loop import Daemon
from exporter.registry import VENDORS
from exporter.simulators import SIMULATORS
from exporter.simulators.clock import FakeClock

from .support import require_tool, serve_app

Rewrite = Callable[[bytes, dict[str, str]], bytes]
MAX_LABEL = 64


def hostile_securevideo(body: bytes, secrets: dict[str, str]) -> bytes:
    records = json.loads(body)
    if not isinstance(records, list):
        return body
    poison = [
        {"ReportableMeetingProvider": "Zoom\ud800"},
        {"WaitTime": 1e308},
        {"WaitTime": float("nan")},
        {"DurationMinutes": float("inf")},
        {"ScheduleTs": "9999-12-31T23:59:59", "BillableTs": "9999-12-31T23:59:59"},
        {"BillableTs": "0001-01-01T00:00:00"},
        {"ReportableMeetingProvider": secrets["securevideo"]},
        {"ReportableMeetingProvider": "P" * 100_000},
    ]
    for record, change in zip(records, poison, strict=False):
        record.update(change)
    # Python writes NaN and Infinity as bare words, as a broken JSON encoder would.
    return json.dumps(records).encode()


def hostile_glance(body: bytes, secrets: dict[str, str]) -> bytes:
    text = body.decode()
    text = re.sub(r"<type>[CGV]</type>", "<type>" + "T" * 32_768 + "</type>", text, count=1)
    text = re.sub(r"<status>[A-Z]</status>", f"<status>{secrets['glance']}</status>", text, count=1)
    text = re.sub(r"<duration>\d+</duration>", "<duration>1e308</duration>", text, count=1)
    text = re.sub(
        r"<startTime>[^<]+</startTime>",
        "<startTime>9999-12-31T23:59:59Z</startTime>",
        text,
        count=1,
    )
    return text.encode()


def hostile_rescue(body: bytes, secrets: dict[str, str]) -> bytes:
    text = body.decode()
    lines = text.split("\n")
    header = next((i for i, line in enumerate(lines) if line.startswith("ID|")), None)
    if header is None:
        return body
    columns = lines[header].split("|")
    changes = [
        ("Status", "S" * (1 << 20)),
        ("Waiting Time", "9" * 5000),
        ("Technician", secrets["rescue"]),
        ("Waiting Time", "\u0661\u0660"),
        ("Entry", "Canal\ud800"),
    ]
    rows = range(header + 1, len(lines))
    for row, (column, value) in zip(rows, changes, strict=False):
        if column not in columns:
            continue
        fields = lines[row].split("|")
        if len(fields) == len(columns):
            fields[columns.index(column)] = value
            lines[row] = "|".join(fields)
    return "\n".join(lines).encode("utf-8", "surrogatepass")


REWRITES: dict[str, Rewrite] = {
    "securevideo": hostile_securevideo,
    "glance": hostile_glance,
    "rescue": hostile_rescue,
}


Middleware = Callable[..., Awaitable[web.StreamResponse]]


def rewriting(rewrite: Rewrite, secrets: dict[str, str]) -> Middleware:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if (
            not isinstance(response, web.Response)
            or response.status != 200
            or not isinstance(response.body, bytes)
        ):
            return response
        return web.Response(
            status=200, body=rewrite(response.body, secrets), content_type=response.content_type
        )

    return middleware


def secret_of(vendor: str, account: dict[str, object]) -> str:
    field = {"glance": "api_key", "securevideo": "api_secret", "rescue": "auth_code"}[vendor]
    return str(account[field])


@pytest.mark.parametrize("vendor", sorted(REWRITES))
async def test_a_hostile_vendor_cannot_poison_freeze_or_leak(vendor: str, tmp_path: object) -> None:
    clock = FakeClock()
    simulator = SIMULATORS[vendor](clock, 3)
    probe_account = simulator.demo_accounts("http://127.0.0.1:1")[0]
    secrets = {vendor: secret_of(vendor, probe_account)}
    app = simulator.app()
    app.middlewares.append(rewriting(REWRITES[vendor], secrets))
    async with serve_app(app) as url:
        account = simulator.demo_accounts(url)[0]
        config = parse_config(
            {"global": {"interval": "60s", "stale_after": "10m"}, vendor: [account]}, VENDORS
        )
        daemon = Daemon(config, VENDORS, clock=clock, seed=1)
        await daemon.start(schedule=False)
        try:
            for _ in range(4):
                await daemon.collect_all_once()
                clock.advance(60)
                clock_text = daemon.snapshot.text.decode("utf-8")  # always encodable
            text = daemon.snapshot.text.decode("utf-8")
        finally:
            await daemon.stop()
    assert clock_text
    assert secrets[vendor] not in text
    vendor_series = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for value in sample.labels.values():
                assert len(value) <= MAX_LABEL, (family.name, value[:80])
            if sample.name.endswith("_sum"):
                assert math.isfinite(sample.value), sample
            if family.name.startswith(vendor):
                vendor_series += 1
    assert vendor_series, "the account must still export its data"
    assert 'reason="internal"' not in text
    rejected = re.findall(r'session_exporter_records_rejected_total\{[^}]*reason="([a-z_]+)"', text)
    assert rejected, "what was rejected must be counted"
    require_tool("promtool")
    check = await asyncio.to_thread(
        subprocess.run,
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
