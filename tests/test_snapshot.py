from __future__ import annotations

import gzip

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from exporter.families import gauge
from exporter.registry import VENDORS
from exporter.simulators import SIMULATORS
from exporter.simulators.clock import FakeClock
from exporter.snapshot import assemble, render, render_chunks

from .support import daemon_for, serve_app


def account_families(account: str) -> list[Metric]:
    counter = CounterMetricFamily("x_sessions", "Sessions.", labels=["account", "status"])
    counter.add_metric([account, 'odd "value"\n# HELP fake 1'], 3.0)
    histogram = HistogramMetricFamily("x_wait_seconds", "Waits.", labels=["account"])
    histogram.add_metric([account], [("1.0", 1.0), ("+Inf", 2.0)], 5.0)
    return [gauge("x_now", "Now.", ("account",), {(account,): 1.0}), counter, histogram]


def test_stitched_accounts_equal_one_render_of_everything() -> None:
    accounts = [account_families(name) for name in ("a", "b", "c")]
    whole = render([f for families in accounts for f in families])
    stitched = assemble(render_chunks(families) for families in accounts)
    assert stitched == whole
    assert stitched.text.count(b"# HELP x_sessions_total") == 1
    assert stitched.openmetrics.endswith(b"# EOF\n")
    assert stitched.openmetrics.count(b"# EOF") == 1
    assert gzip.decompress(stitched.openmetrics_gzip) == stitched.openmetrics


async def test_daemon_render_equals_a_naive_render_with_every_vendor() -> None:
    clock = FakeClock()
    simulators = {name: new(clock, 3) for name, new in SIMULATORS.items()}
    async with serve_app(simulators["glance"].app()) as g, \
            serve_app(simulators["securevideo"].app()) as s, \
            serve_app(simulators["rescue"].app()) as r:
        data: dict[str, object] = {}
        for name, url in (("glance", g), ("securevideo", s), ("rescue", r)):
            entries = simulators[name].demo_accounts(url)
            data[name] = entries + [{**e, "name": e["name"] + "-2"} for e in entries]
        async with daemon_for(data, VENDORS, clock) as daemon:
            for _ in range(3):
                clock.advance(30)
                await daemon.collect_all_once()
            assert daemon.render_now() == render(daemon.families())
            assert b"rescue_sessions" in daemon.snapshot.text
