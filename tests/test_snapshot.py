from __future__ import annotations

import asyncio
import gzip
import shutil
import subprocess
import zlib
from collections.abc import Iterable

import pytest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from exporter import render as render_module
from exporter.config import GlobalConfig
from exporter.families import gauge
from exporter.registry import VENDORS
from exporter.render import Renderer
from exporter.selfmetrics import SelfMetrics
from exporter.simulators import SIMULATORS
from exporter.simulators.clock import FakeClock
from exporter.snapshot import (
    EMPTY,
    Chunks,
    Snapshot,
    assemble,
    render,
    render_chunks,
    wants_gzip,
    wants_openmetrics,
)

from .support import daemon_for, serve_app


def account_families(account: str) -> list[Metric]:
    counter = CounterMetricFamily("x_sessions", "Sessions.", labels=["account", "status"])
    counter.add_metric([account, 'odd "value"\n# HELP fake 1'], 3.0)
    histogram = HistogramMetricFamily("x_wait_seconds", "Waits.", labels=["account"])
    histogram.add_metric([account], [("1.0", 1.0), ("+Inf", 2.0)], 5.0)
    return [gauge("x_now", "Now.", ("account",), {(account,): 1.0}), counter, histogram]


def gunzip(data: bytes) -> bytes:
    """`data` through Python's gzip and zlib, and the gzip tool when present (which checks
    the CRC and length too), each required to agree."""
    plain = gzip.decompress(data)
    assert zlib.decompress(data, wbits=31) == plain
    if shutil.which("gzip"):
        tool = subprocess.run(["gzip", "-dc"], input=data, capture_output=True, check=True)
        assert tool.stdout == plain
    return plain


def assert_consistent(snapshot: Snapshot) -> None:
    """Each gzip body decompresses to exactly its plain body."""
    assert gunzip(snapshot.text_gzip) == snapshot.text
    assert gunzip(snapshot.openmetrics_gzip) == snapshot.openmetrics


def assert_same_exposition(a: Snapshot, b: Snapshot) -> None:
    # The gzip bytes depend on how the body was cut into pieces; what they decompress
    # to must not.
    assert (a.text, a.openmetrics) == (b.text, b.openmetrics)
    assert_consistent(a)
    assert_consistent(b)


def test_stitched_accounts_equal_one_render_of_everything() -> None:
    accounts = [account_families(name) for name in ("a", "b", "c")]
    whole = render([f for families in accounts for f in families])
    stitched = assemble(render_chunks(families) for families in accounts)
    assert_same_exposition(stitched, whole)
    assert stitched.text.count(b"# HELP x_sessions_total") == 1
    assert stitched.openmetrics.endswith(b"# EOF\n")
    assert stitched.openmetrics.count(b"# EOF") == 1


def test_the_empty_snapshot_is_valid_gzip() -> None:
    assert (EMPTY.text, EMPTY.openmetrics) == (b"", b"# EOF\n")
    assert_consistent(EMPTY)
    assert_consistent(assemble([]))


def changed(account: str, value: float) -> list[Metric]:
    """The account's families with one value changed and one family more."""
    return [
        *account_families(account)[:2],
        gauge("x_other", "Other.", ("account",), {(account,): value}),
    ]


@pytest.mark.parametrize("step", ["one_changed", "added", "removed", "all_removed", "reordered"])
def test_incremental_gzip_decompresses_to_the_plain_body_after_updates(step: str) -> None:
    """As the renderer does: keep the other accounts' encoded parts, replace some."""
    parts = {name: render_chunks(account_families(name)) for name in ("a", "b", "c")}
    assert_consistent(assemble(parts.values()))
    if step == "one_changed":
        parts["b"] = render_chunks(changed("b", 7.0))
    elif step == "added":
        parts["d"] = render_chunks(changed("d", 1e300))
    elif step == "removed":
        del parts["a"]
    elif step == "all_removed":
        parts.clear()
    else:
        parts = dict(reversed(parts.items()))
    snapshot = assemble(parts.values())
    assert_consistent(snapshot)
    # The same accounts encoded afresh, all in one: the same plain bytes.
    fresh = {
        name: render_chunks(
            changed(name, 7.0)
            if name == "b" and step == "one_changed"
            else changed(name, 1e300)
            if name == "d"
            else account_families(name)
        )
        for name in parts
    }
    assert_same_exposition(snapshot, assemble(fresh.values()))


def test_a_big_exposition_keeps_its_length_and_crc() -> None:
    # Thousands of accounts: long enough that pieces follow pieces of every kind.
    parts = [render_chunks(account_families(f"account-{i}")) for i in range(3000)]
    snapshot = assemble(parts)
    assert len(snapshot.text) > 900_000
    assert_consistent(snapshot)


async def test_daemon_render_equals_a_naive_render_with_every_vendor() -> None:
    clock = FakeClock()
    simulators = {name: new(clock, 3) for name, new in SIMULATORS.items()}
    async with (
        serve_app(simulators["glance"].app()) as g,
        serve_app(simulators["securevideo"].app()) as s,
        serve_app(simulators["rescue"].app()) as r,
    ):
        data: dict[str, object] = {}
        for name, url in (("glance", g), ("securevideo", s), ("rescue", r)):
            entries = simulators[name].demo_accounts(url)
            data[name] = entries + [{**e, "name": e["name"] + "-2"} for e in entries]
        async with daemon_for(data, VENDORS, clock) as daemon:
            for _ in range(3):
                clock.advance(30)
                await daemon.collect_all_once()
            assert_same_exposition(daemon.render_now(), render(daemon.families()))
            assert b"rescue_sessions" in daemon.snapshot.text


def own_series_renderer() -> tuple[Renderer, SelfMetrics]:
    metrics = SelfMetrics()
    for i in range(3):
        health = metrics.account(("v", f"a{i}"))
        health.up, health.last_success, health.collect_duration = True, 100.0 + i, 0.5
        metrics.upstream_request("v", f"a{i}", "op")
    return Renderer({}, GlobalConfig(), clock=FakeClock(), metrics=metrics), metrics


def test_our_own_series_are_re_encoded_only_for_the_accounts_that_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renderer, metrics = own_series_renderer()
    encoded: list[list[str]] = []

    def counting(families: Iterable[Metric]) -> Chunks:
        families = list(families)
        encoded.append(sorted({s.labels.get("account", "") for f in families for s in f.samples}))
        return render_chunks(families)

    monkeypatch.setattr(render_module, "render_chunks", counting)
    renderer.render_now()
    encoded.clear()
    metrics.upstream_failure("v", "a1", "op", "timeout")
    metrics.account(("v", "a2")).up = False
    snapshot = renderer.render_now()
    # The shared part (no account), then a1 and a2: a0 is taken from the cache.
    assert sorted(encoded) == [[""], ["a1"], ["a2"]]
    assert_same_exposition(snapshot, render(metrics.families()))
    encoded.clear()
    renderer.render_now()
    assert encoded == [[""]]


async def test_incremental_own_series_equal_a_naive_render_off_the_loop() -> None:
    renderer, metrics = own_series_renderer()
    assert_same_exposition(await renderer.render_off_loop(), render(metrics.families()))
    metrics.forget(("v", "a0"))
    metrics.upstream_request("v", "a3", "op")  # an account known only by its counters
    metrics.record_rejected("v", "a1", "shifted", 2)
    metrics.render_dropped("v", "a2", "too_many_series")
    snapshot = await renderer.render_off_loop()
    assert b'account="a0"' not in snapshot.text
    assert b'session_exporter_upstream_requests_total{account="a3"' in snapshot.text
    assert_same_exposition(snapshot, render(metrics.families()))
    assert_same_exposition(renderer.render_now(), snapshot)


def test_an_account_encoded_again_reuses_only_its_unchanged_families() -> None:
    before = render_chunks(account_families("a"))
    families = account_families("a")
    families[0] = gauge("x_now", "Now.", ("account",), {("a",): 2.0})  # a value changed
    families[1].documentation = "Sessions, renamed."  # a header changed
    after = render_chunks(families, before)
    assert after == render_chunks(families)  # the same bytes as encoding afresh
    assert after.text[0] is not before.text[0] and b"} 2.0" in after.text[0].body
    assert after.text[1] is not before.text[1] and b"renamed" in after.text[1].header
    assert after.text[2] is before.text[2] and after.openmetrics[2] is before.openmetrics[2]
    # Families gone and new ones: nothing stale is kept.
    again = render_chunks(changed("a", 3.0), after)
    assert again == render_chunks(changed("a", 3.0))
    assert set(again.by_family) == {"x_now", "x_sessions", "x_other"}


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip;q=0, identity", False),
        ("gzip; q=0.0", False),
        ("gzip;q=x", False),
        ("identity", False),
        ("", False),
        ("x-gzip", False),
    ],
)
def test_gzip_is_sent_only_when_asked_for_with_a_weight(
    accept_encoding: str, gzipped: bool
) -> None:
    # `gzip;q=0` means "not gzip" (RFC 9110); it was answered gzipped.
    assert wants_gzip(accept_encoding) is gzipped


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ("application/openmetrics-text; version=1.0.0", True),
        ("Application/OpenMetrics-Text", True),
        ("application/openmetrics-text;q=0, text/plain", False),
        ("text/plain;version=0.0.4;q=0.5,*/*;q=0.1", False),
    ],
)
def test_openmetrics_is_sent_only_when_asked_for_with_a_weight(
    accept: str, openmetrics: bool
) -> None:
    assert wants_openmetrics(accept) is openmetrics


async def test_the_render_loop_stops_when_cancelled_as_a_render_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Probe 7: one SIGTERM in about 8 hung after "shutting down". `asyncio.wait_for`
    # (Python 3.11) swallowed a cancel that came as the event was set, and the loop went
    # on to wait again: `daemon.stop()` waited on it for ever.
    renderer, _ = own_series_renderer()
    monkeypatch.setattr(renderer, "seconds_until_next_stale", lambda: 3600.0)
    waiting = asyncio.Event()
    wait = renderer._dirty.wait

    async def noted_wait() -> bool:
        waiting.set()
        return await wait()

    monkeypatch.setattr(renderer._dirty, "wait", noted_wait)
    task = asyncio.create_task(renderer.run())
    await waiting.wait()  # the loop waits for a render request
    renderer.request()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert task in done and task.cancelled()
