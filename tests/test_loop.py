from __future__ import annotations

import random

import pytest

from exporter.config import parse_config
from exporter.loop import next_delay
from exporter.simulators.clock import FakeClock

from .fakevendor import VENDORS, FakeSimulator
from .support import daemon_for, serve_app, value


def config(base_url: str, **global_: object) -> dict[str, object]:
    return {"global": {"interval": "60s", "stale_after": "5m", **global_},
            "fake": [{"name": "acme", "base_url": base_url, "token": "s3cret-token"}]}


async def test_failing_upstream_keeps_values_then_goes_stale_then_recovers() -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url, daemon_for(config(url), VENDORS, clock) as d:
        assert await d.collect_once("fake", "acme")
        text = d.snapshot.text
        assert value(text, "fake_value", account="acme") == 42.0
        assert value(text, "session_exporter_up", vendor="fake", account="acme") == 1.0
        assert value(text, "session_exporter_last_success_timestamp_seconds",
                     vendor="fake", account="acme") == clock.time()

        simulator.faults.inject("http_500", count=None)
        simulator.value = 7.0
        clock.advance(60)
        assert not await d.collect_once("fake", "acme")
        text = d.snapshot.text
        assert value(text, "session_exporter_up", vendor="fake", account="acme") == 0.0
        assert value(text, "fake_value", account="acme") == 42.0  # last good value stays
        assert value(text, "session_exporter_upstream_request_failures_total", vendor="fake",
                     account="acme", operation="value", reason="http_5xx") == 1.0

        clock.advance(241)  # 301 s since the last success: past stale_after
        assert not await d.collect_once("fake", "acme")
        text = d.snapshot.text
        assert value(text, "fake_value", account="acme") is None
        assert value(text, "session_exporter_up", vendor="fake", account="acme") == 0.0

        simulator.faults.clear()
        clock.advance(60)
        assert await d.collect_once("fake", "acme")
        text = d.snapshot.text
        assert value(text, "fake_value", account="acme") == 7.0
        assert value(text, "session_exporter_up", vendor="fake", account="acme") == 1.0
        assert value(text, "session_exporter_upstream_requests_total", vendor="fake",
                     account="acme", operation="value") == 4.0


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("http_503", "http_5xx"), ("auth", "auth"), ("rate_limit", "rate_limited"),
     ("garbage", "parse"), ("reset", "connection"), ("truncate", "connection")],
)
async def test_faults_map_to_reasons(fault: str, reason: str) -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    simulator.value = 1e300  # half of '1e+300' is not a number
    async with serve_app(simulator.app()) as url, daemon_for(config(url), VENDORS, clock) as d:
        simulator.faults.inject(fault)
        assert not await d.collect_once("fake", "acme")
        assert value(d.snapshot.text, "session_exporter_upstream_request_failures_total",
                     vendor="fake", account="acme", operation="value", reason=reason) == 1.0


async def test_timeout_is_a_failure_not_a_hang() -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url, \
            daemon_for(config(url, timeout="0.2s"), VENDORS, clock) as d:
        simulator.faults.inject("timeout", seconds=30)
        assert not await d.collect_once("fake", "acme")
        assert value(d.snapshot.text, "session_exporter_upstream_request_failures_total",
                     vendor="fake", account="acme", operation="value", reason="timeout") == 1.0


def test_backoff_grows_to_a_cap_and_honours_retry_after() -> None:
    data = parse_config({"global": {"interval": "10s", "max_backoff": "80s", "jitter": 0.1},
                         "fake": [{"name": "a", "token": "t"}]}, VENDORS)
    common, global_ = data.accounts[0].common, data.global_
    rng = random.Random(1)
    ok = next_delay(common, global_, 0, None, rng)
    assert 9.0 <= ok <= 11.0
    assert [next_delay(common, global_, n, None, rng) for n in (1, 2, 3, 4, 5)] == [
        10, 20, 40, 80, 80]
    assert next_delay(common, global_, 1, 45.0, rng) == 45.0
    assert next_delay(common, global_, 1, 9999.0, rng) == 80.0


async def test_reload_adds_changes_and_removes_accounts() -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url, daemon_for(config(url), VENDORS, clock) as d:
        await d.collect_all_once()
        first = d.runners[("fake", "acme")]
        new = config(url)
        new["fake"].append({"name": "beta", "base_url": url, "token": "s3cret-token"})  # type: ignore[attr-defined]
        d.apply_config(parse_config(new, VENDORS))
        assert d.runners[("fake", "acme")] is first  # unchanged account keeps its state
        await d.collect_all_once()
        assert value(d.snapshot.text, "fake_value", account="beta") == 42.0

        d.apply_config(parse_config({"fake": [new["fake"][1]]}, VENDORS))  # type: ignore[index]
        await d.collect_all_once()
        text = d.snapshot.text
        assert value(text, "fake_value", account="acme") is None
        assert value(text, "session_exporter_up", vendor="fake", account="acme") is None
        assert value(text, "session_exporter_upstream_requests_total", vendor="fake",
                     account="acme", operation="value") is None
        assert value(text, "session_exporter_up", vendor="fake", account="beta") == 1.0


async def test_ready_after_every_first_cycle() -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url, daemon_for(config(url), VENDORS, clock) as d:
        assert not d.ready()
        simulator.faults.inject("http_500")
        await d.collect_once("fake", "acme")
        assert d.ready()  # a failed first cycle still counts as finished
