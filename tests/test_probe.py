"""`session-exporter probe` and the hints it shares with the log and the status page.

The probe runs the real collectors against the simulators over loopback (and, for TLS,
over a real TLS socket with an untrusted certificate); the CLI tests run the command as
a user does.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from exporter import hints
from exporter.config import parse_config
from exporter.loop import Daemon
from exporter.probe import (
    UnknownAccount,
    as_json,
    exit_status,
    format_line,
    run_probe,
    select,
    summarize,
)
from exporter.registry import VENDORS
from exporter.simulators.clock import FakeClock
from exporter.simulators.glance import GlanceSimulator
from exporter.simulators.rescue import GROUP_ID, RescueSimulator

from .support import make_cert, require_tool, serve_app, simulated

WRONG_KEY = "wrong-key-Kd83mq"


def glance_accounts(simulator: Any, base_url: str) -> list[dict[str, Any]]:
    good = {
        "name": "good",
        "base_url": base_url,
        "partner_id": simulator.partner_id,
        "api_key": simulator.api_key,
    }
    return [good, {**good, "name": "bad", "api_key": WRONG_KEY}]


async def test_probe_reports_each_account_and_fails_when_one_fails() -> None:
    clock = FakeClock(time.time())
    async with simulated(GlanceSimulator, clock) as (simulator, base_url):
        config = parse_config({"glance": glance_accounts(simulator, base_url)}, VENDORS)
        results = await run_probe(config, VENDORS, clock)
    good, bad = results
    assert good.ok and not bad.ok
    assert exit_status(results) == 1 and exit_status([good]) == 0
    # What it saw, from the families: sessions by status, and pages per operation.
    current = good.seen["glance_sessions_current"]
    assert current.total == len(simulator.in_progress()) > 0
    assert sum(current.by_status.values()) == current.total
    assert good.pages["PartnerActiveSessions"] == 1 and good.records > 0
    line = format_line(good)
    assert line.startswith("ok    glance/good") and "glance_sessions_current=" in line
    assert bad.failure is not None and bad.failure.reason == "auth"
    line = format_line(bad)
    assert line.startswith("FAIL  glance/bad")
    assert "auth in PartnerActiveSessions" in line
    assert "check: Glance refused partner_id or api_key" in line
    document = as_json(results)
    assert document["ok"] is False
    assert [a["ok"] for a in document["accounts"]] == [True, False]
    assert document["accounts"][1]["hint"] == bad.hint
    everything = json.dumps(document) + line + format_line(good)
    assert WRONG_KEY not in everything and simulator.api_key not in everything


async def test_wrong_rescue_node_gets_its_hint() -> None:
    clock = FakeClock(time.time())
    async with simulated(RescueSimulator, clock) as (simulator, base_url):
        account: dict[str, Any] = {
            "name": "hd",
            "base_url": base_url,
            "auth_code": simulator.auth_code,
            "nodes": [{"id": GROUP_ID + 999, "ref": "NODE"}],
        }
        [result] = await run_probe(parse_config({"rescue": [account]}, VENDORS), VENDORS, clock)
        assert not result.ok and result.failure is not None
        assert "INVALIDPARAM_NODE" in result.failure.message
        assert result.hint is not None and result.hint.startswith("Rescue does not know")

        # Beside a node that works, the account is up, but the hint still says what to fix
        # and the detail shows which request was refused.
        account["nodes"] = [{"id": GROUP_ID, "ref": "NODE"}, {"id": GROUP_ID + 999}]
        config = parse_config({"rescue": [account]}, VENDORS)
        daemon = Daemon(config, VENDORS, clock=clock)
        await daemon.start(schedule=False)
        try:
            assert await daemon.collect_once("rescue", "hd")
            cycle = daemon.runners[("rescue", "hd")].history.last
        finally:
            await daemon.stop()
    assert cycle is not None and cycle.ok
    assert cycle.hint is not None and cycle.hint.startswith("Rescue does not know this node")
    good, bad = cycle.requests
    assert (good.status, good.reason, good.records) == (200, None, good.records)
    assert good.records is not None and good.records > 0
    assert (bad.status, bad.reason, bad.records) == (200, "vendor_error", 0)
    assert bad.error is not None and "INVALIDPARAM_NODE" in bad.error


async def test_each_request_is_recorded_with_its_own_failure() -> None:
    clock = FakeClock(time.time())
    async with simulated(GlanceSimulator, clock) as (simulator, base_url):
        simulator.faults.inject("garbage", path_contains="PartnerActiveSessions")
        simulator.faults.inject("http_503", path_contains="PartnerSessionCountsEnding")
        config = parse_config({"glance": glance_accounts(simulator, base_url)[:1]}, VENDORS)
        daemon = Daemon(config, VENDORS, clock=clock)
        await daemon.start(schedule=False)
        try:
            assert not await daemon.collect_once("glance", "good")
            cycle = daemon.runners[("glance", "good")].history.last
        finally:
            await daemon.stop()
    assert cycle is not None and cycle.failure is not None
    by_operation = {r.operation: r for r in cycle.requests}
    active = by_operation["PartnerActiveSessions"]
    assert (active.status, active.reason, active.records) == (200, "parse", None)
    ending = by_operation["PartnerSessionCountsEnding"]
    assert (ending.status, ending.reason) == (503, "http_5xx")
    assert ending.error is not None and ending.error.startswith("HTTP 503")
    others = [
        r
        for r in cycle.requests
        if r.operation not in ("PartnerActiveSessions", "PartnerSessionCountsEnding")
    ]
    assert others and all(r.reason is None and r.status == 200 for r in others)
    assert sum(r.reason is not None for r in cycle.requests) == 2


async def test_refused_connection_and_clock_skew(unused_port: int) -> None:
    port = unused_port  # bound for the test, never listening: refused
    config = parse_config(
        {
            "glance": [
                {
                    "name": "nowhere",
                    "partner_id": 1,
                    "api_key": "k3y-x",
                    "base_url": f"http://127.0.0.1:{port}",
                }
            ]
        },
        VENDORS,
    )
    [result] = await run_probe(config, VENDORS)
    assert result.failure is not None and result.failure.reason == "connection"
    assert "refused" in result.failure.message.lower()
    assert result.hint is not None and "connection was refused" in result.hint

    # The simulator's replies carry its clock's Date; ours is an hour behind it.
    vendor_clock = FakeClock()
    async with simulated(GlanceSimulator, vendor_clock) as (simulator, base_url):
        config = parse_config({"glance": glance_accounts(simulator, base_url)[:1]}, VENDORS)
        [result] = await run_probe(config, VENDORS, FakeClock(vendor_clock.time() - 3600))
        [same_clock] = await run_probe(config, VENDORS, vendor_clock)
    assert result.ok
    assert result.hint is not None and "check this host's clock (NTP)" in result.hint
    assert "differ by 3600s" in result.hint
    assert same_clock.ok and same_clock.hint is None


async def test_untrusted_tls_certificate_is_named(tmp_path: Path) -> None:
    require_tool("openssl")
    cert, key = make_cert(tmp_path, "vendor")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    simulator = GlanceSimulator(FakeClock(), 1)
    runner = web.AppRunner(simulator.app(), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        base_url = f"https://127.0.0.1:{runner.addresses[0][1]}"
        config = parse_config({"glance": glance_accounts(simulator, base_url)[:1]}, VENDORS)
        [result] = await run_probe(config, VENDORS)
    finally:
        await runner.cleanup()
    assert result.failure is not None and result.failure.reason == "connection"
    assert result.failure.message.startswith("TLS certificate not accepted: ")
    assert "self-signed" in result.failure.message  # the verifier's own words
    assert result.hint is not None and result.hint.startswith("TLS to the vendor failed")


def test_select_named_accounts() -> None:
    data = {"glance": [{"name": n, "partner_id": 1, "api_key": "k3y-x"} for n in ("a", "b")]}
    config = parse_config(data, VENDORS)
    assert [a.common.name for a in select(config, ["glance/b"]).accounts] == ["b"]
    assert select(config, []) is config
    with pytest.raises(UnknownAccount, match="glance/c"):
        select(config, ["glance/c"])


def test_summarize_counts_sessions_not_times() -> None:
    from exporter.families import gauge

    families = [
        gauge(
            "x_sessions",
            "h",
            ("account", "status"),
            {("a", "Waiting"): 2.0, ("a", "Active"): 3.0, ("a", "Closed"): 0.0},
        ),
        gauge("x_session_oldest_start_timestamp_seconds", "h", ("account",), {("a",): 1e9}),
        gauge("x_other", "h", ("account",), {("a",): 9.0}),
    ]
    seen = summarize(families)
    assert set(seen) == {"x_sessions"}
    assert seen["x_sessions"].total == 5.0
    assert seen["x_sessions"].by_status == {"Waiting": 2.0, "Active": 3.0}


@pytest.mark.parametrize(
    ("vendor", "operation", "reason", "message", "start"),
    [
        (
            "glance",
            "PartnerActiveSessions",
            "auth",
            "HTTP 500: Invalid partnerId or apiKey.",
            "Glance refused partner_id or api_key",
        ),
        ("securevideo", "history", "auth", "HTTP 401", "SecureVideo refused"),
        (
            "rescue",
            "getSession",
            "vendor_error",
            "INVALIDPARAM_NODE for NODE 1",
            "Rescue does not know this node",
        ),
        ("rescue", "getSession", "auth", "NOTLOGGEDIN for NODE 1", "The Rescue login expired"),
        ("rescue", "login", "auth", "INVALID", "Rescue refused the credentials"),
        (
            "rescue",
            "getSession",
            "auth",
            "INVALID_SECRETAUTHCODE for NODE 1",
            "Rescue refused the credentials",
        ),
        ("rescue", "login", "rate_limited", "LIMITREACHED", "Too many Rescue logins"),
        (
            "glance",
            "x",
            "connection",
            "TLS certificate not accepted: certificate has expired",
            "The vendor's TLS certificate is expired",
        ),
        (
            "glance",
            "x",
            "connection",
            "TLS certificate not accepted: self-signed certificate",
            "TLS to the vendor failed",
        ),
        (
            "glance",
            "x",
            "connection",
            "proxy refused the tunnel (HTTP 407)",
            "A proxy asks for authentication",
        ),
        ("glance", "x", "http_4xx", "HTTP 407", "A proxy asks for authentication"),
        ("rescue", "getSession", "http_3xx", "HTTP 302", "The vendor redirected the request"),
        (
            "glance",
            "x",
            "connection",
            "cannot reach the proxy: Connection refused",
            "A proxy refused",
        ),
        (
            "glance",
            "x",
            "connection",
            "ClientConnectorError: Connection refused",
            "The connection was refused",
        ),
        ("glance", "x", "timeout", "no reply within 20s", "No reply in time"),
        # Probe 8: a reply dripping past the cycle's deadline was told to check that
        # base_url is reachable, though the vendor had answered.
        ("rescue", "cycle", "timeout", "cycle exceeded 4s", "The whole cycle ran past"),
    ],
)
def test_hint_table(vendor: str, operation: str, reason: str, message: str, start: str) -> None:
    hint = hints.for_failure(vendor, operation, reason, message)
    assert hint is not None and hint.startswith(start)


def test_hints_for_what_a_good_cycle_saw() -> None:
    assert hints.for_observations({}, None, 300) is None
    assert hints.for_observations({}, 12.0, 300) is None
    skew = hints.for_observations({}, -900.0, 300)
    assert skew is not None and "900s" in skew and "NTP" in skew
    unknown = hints.for_observations({"unknown_status": 3}, None, 300)
    assert unknown is not None and "status_aliases" in unknown


# -- the command ---------------------------------------------------------------------------


async def probe_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        "probe",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def glance_config(tmp_path: Path) -> AsyncIterator[tuple[Path, Any]]:
    simulator = GlanceSimulator(FakeClock(time.time()), 3)
    async with serve_app(simulator.app()) as base_url:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({"glance": glance_accounts(simulator, base_url)}))
        yield path, simulator


async def test_probe_command(tmp_path: Path) -> None:
    async with glance_config(tmp_path) as (path, simulator):
        code, out, err = await probe_cli("--config.file", str(path))
        assert code == 1, err
        lines = out.splitlines()
        assert lines[0].startswith("ok    glance/good")
        assert lines[1].startswith("FAIL  glance/bad") and "check: Glance refused" in lines[1]
        assert lines[-1] == "1 of 2 account(s) ok"
        # The log line of the failed cycle carries the same hint.
        assert 'event="collection failed"' in err and 'hint="Glance refused' in err
        for text in (out, err):
            assert WRONG_KEY not in text and simulator.api_key not in text

        code, out, _ = await probe_cli("--config.file", str(path), "--json", "glance/good")
        assert code == 0
        document = json.loads(out)
        assert document["ok"] is True and [a["name"] for a in document["accounts"]] == ["good"]
        assert document["accounts"][0]["seen"]["glance_sessions_current"]["total"] >= 0

        code, _, err = await probe_cli("--config.file", str(path), "glance/nobody")
        assert code == 2 and "no such account: glance/nobody" in err
        # It never writes state: there is no flag for it.
        code, _, err = await probe_cli(
            "--config.file", str(path), "--storage.path", str(tmp_path / "state.db")
        )
        assert code == 2 and "unrecognized arguments" in err
        assert not (tmp_path / "state.db").exists()


async def test_probe_the_demo_with_a_wrong_key() -> None:
    code, out, err = await probe_cli("--demo", "--demo.wrong-key", "securevideo")
    assert code == 1, err
    lines = out.splitlines()
    assert any(
        line.startswith("FAIL  securevideo/demo-clinic-wrong-key") and "SecureVideo refused" in line
        for line in lines
    )
    assert lines[-1] == "3 of 4 account(s) ok"
    code, _, err = await probe_cli("--demo", "--demo.wrong-key", "zoom")
    assert code == 2 and "unknown vendor 'zoom'" in err and "Traceback" not in err
