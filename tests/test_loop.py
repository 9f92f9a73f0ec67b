from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import structlog
from prometheus_client.core import Metric

from exporter import loop
from exporter import render as render_module
from exporter.config import ConfigError, parse_config
from exporter.errors import UpstreamError
from exporter.loop import Daemon, next_delay
from exporter.selfmetrics import AccountCounts, Key, SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.snapshot import Chunks, Snapshot

from .fakevendor import VENDORS, FakeSimulator
from .support import daemon_for, serve_app, value


def config(base_url: str, **global_: object) -> dict[str, object]:
    return {
        "global": {"interval": "60s", "stale_after": "5m", **global_},
        "fake": [{"name": "acme", "base_url": base_url, "token": "s3cret-token"}],
    }


async def test_failing_upstream_keeps_values_then_goes_stale_then_recovers() -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url, daemon_for(config(url), VENDORS, clock) as d:
        assert await d.collect_once("fake", "acme")
        text = d.snapshot.text
        assert value(text, "fake_value", account="acme") == 42.0
        assert value(text, "session_exporter_up", vendor="fake", account="acme") == 1.0
        assert (
            value(
                text,
                "session_exporter_last_success_timestamp_seconds",
                vendor="fake",
                account="acme",
            )
            == clock.time()
        )

        simulator.faults.inject("http_500", count=None)
        simulator.value = 7.0
        clock.advance(60)
        assert not await d.collect_once("fake", "acme")
        text = d.snapshot.text
        assert value(text, "session_exporter_up", vendor="fake", account="acme") == 0.0
        assert value(text, "fake_value", account="acme") == 42.0  # last good value stays
        assert (
            value(
                text,
                "session_exporter_upstream_request_failures_total",
                vendor="fake",
                account="acme",
                operation="value",
                reason="http_5xx",
            )
            == 1.0
        )

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
        assert (
            value(
                text,
                "session_exporter_upstream_requests_total",
                vendor="fake",
                account="acme",
                operation="value",
            )
            == 4.0
        )


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("http_503", "http_5xx"),
        ("auth", "auth"),
        ("rate_limit", "rate_limited"),
        ("garbage", "parse"),
        ("reset", "connection"),
        ("truncate", "connection"),
    ],
)
async def test_faults_map_to_reasons(fault: str, reason: str) -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    simulator.value = 1e300  # half of '1e+300' is not a number
    async with serve_app(simulator.app()) as url, daemon_for(config(url), VENDORS, clock) as d:
        simulator.faults.inject(fault)
        assert not await d.collect_once("fake", "acme")
        assert (
            value(
                d.snapshot.text,
                "session_exporter_upstream_request_failures_total",
                vendor="fake",
                account="acme",
                operation="value",
                reason=reason,
            )
            == 1.0
        )


async def test_timeout_is_a_failure_not_a_hang() -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with (
        serve_app(simulator.app()) as url,
        daemon_for(config(url, timeout="0.2s"), VENDORS, clock) as d,
    ):
        simulator.faults.inject("timeout", seconds=30)
        assert not await d.collect_once("fake", "acme")
        assert (
            value(
                d.snapshot.text,
                "session_exporter_upstream_request_failures_total",
                vendor="fake",
                account="acme",
                operation="value",
                reason="timeout",
            )
            == 1.0
        )


async def test_every_cycle_is_a_debug_line() -> None:
    # Probe 11: `--log.level debug` printed what `info` did; a healthy account was
    # never in the log at all.
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url, daemon_for(config(url), VENDORS, clock) as d:
        with structlog.testing.capture_logs() as logs:
            assert await d.collect_once("fake", "acme")
            simulator.faults.inject("http_500", count=None)
            assert not await d.collect_once("fake", "acme")
    done = [e for e in logs if e["event"] == "cycle done"]
    assert [(e["log_level"], e["account"], e["up"], e["requests"]) for e in done] == [
        ("debug", "acme", True, 1),
        ("debug", "acme", False, 1),
    ]
    assert all(e["seconds"] >= 0 and e["next_in"] > 0 for e in done)


def test_backoff_grows_to_a_cap_and_honours_retry_after() -> None:
    data = parse_config(
        {
            "global": {"interval": "10s", "max_backoff": "80s", "jitter": 0.1},
            "fake": [{"name": "a", "token": "t"}],
        },
        VENDORS,
    )
    common, global_ = data.accounts[0].common, data.global_
    rng = random.Random(1)
    ok = next_delay(common, global_, 0, None, rng)
    assert 9.0 <= ok <= 11.0
    assert [next_delay(common, global_, n, None, rng) for n in (1, 2, 3, 4, 5)] == [
        10,
        20,
        40,
        80,
        80,
    ]
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
        assert (
            value(
                text,
                "session_exporter_upstream_requests_total",
                vendor="fake",
                account="acme",
                operation="value",
            )
            is None
        )
        assert value(text, "session_exporter_up", vendor="fake", account="beta") == 1.0


async def test_ready_after_every_first_cycle() -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url, daemon_for(config(url), VENDORS, clock) as d:
        assert not d.ready()
        simulator.faults.inject("http_500")
        await d.collect_once("fake", "acme")
        assert d.ready()  # a failed first cycle still counts as finished


class HeldSession:
    """Stands in for the aiohttp session: each request counts as in flight per account
    (the first part of its URL path) until `release` is set, then fails to connect. No
    network and no timing: every request that its bounds let through is in flight as
    soon as the loop has run each caller once."""

    def __init__(self, saturated_at: int) -> None:
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.peak_total = 0
        self.started = 0
        self.accounts: list[str] = []  # whose requests started, in order
        self.saturated_at = saturated_at
        self.saturated = asyncio.Event()
        self.release = asyncio.Event()

    @asynccontextmanager
    async def request(self, method: str, url: str, **_: object) -> AsyncIterator[None]:
        account = urlsplit(url).path.split("/")[1]
        self.started += 1
        self.accounts.append(account)
        self.in_flight[account] += 1
        self.peak[account] = max(self.peak[account], self.in_flight[account])
        self.peak_total = max(self.peak_total, self.in_flight.total())
        if self.in_flight.total() == self.saturated_at:
            self.saturated.set()
        try:
            await self.release.wait()
            raise aiohttp.ClientConnectionError("held")
        finally:
            self.in_flight[account] -= 1
        yield  # never reached: a generator, for asynccontextmanager

    async def close(self) -> None:
        return None


def held_accounts(names: Iterable[str], **global_: object) -> dict[str, object]:
    """Fake accounts whose URLs `HeldSession` tells apart (the first part of the path)."""
    return {
        "global": global_,
        "fake": [{"name": n, "base_url": f"http://127.0.0.1:9/{n}", "token": "t"} for n in names],
    }


async def test_requests_in_flight_are_bounded_per_account_within_the_vendor_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 3 accounts of 2 slots each would be 6 in flight; the vendor's bound holds it at 5.
    session = HeldSession(saturated_at=5)
    monkeypatch.setattr(loop, "new_client_session", lambda: session)
    names = ("a", "b", "c")
    data = held_accounts(names, max_concurrency=5, max_concurrency_per_account=2)
    async with daemon_for(data, VENDORS, FakeClock()) as d:
        calls = [
            d.runners[("fake", n)].upstream.fetch("value", "GET", f"http://127.0.0.1:9/{n}/value")
            for n in names
            for _ in range(4)
        ]
        results = asyncio.gather(*calls, return_exceptions=True)
        await session.saturated.wait()
        # Every caller has run by now: those over a bound wait on it, not in flight.
        assert session.in_flight.total() == 5
        assert max(session.in_flight.values()) == 2
        session.release.set()
        failures = await results
    assert all(isinstance(f, UpstreamError) and f.reason == "connection" for f in failures)
    assert session.started == 12  # the waiting ones got their turn
    assert max(session.peak.values()) == 2 and session.peak_total == 5


async def test_the_vendors_slots_go_to_the_oldest_cycle_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = HeldSession(saturated_at=1)
    monkeypatch.setattr(loop, "new_client_session", lambda: session)
    names = ("busy", "late", "early")
    data = held_accounts(names, max_concurrency=1)
    clock = FakeClock()
    async with daemon_for(data, VENDORS, clock) as d:
        runners = {n: d.runners[("fake", n)] for n in names}
        # What the scheduler stamps on each cycle: when it began (its requests fail at
        # once while `release` is set).
        session.release.set()
        assert await d.collect_once("fake", "busy") is False
        assert runners["busy"].upstream.cycle_started == clock.monotonic()
        session.accounts.clear()
        session.started = 0
        session.release.clear()
        runners["late"].upstream.cycle_started = clock.monotonic() + 20
        runners["early"].upstream.cycle_started = clock.monotonic() + 10

        def fetch(name: str) -> asyncio.Task[object]:
            return asyncio.create_task(
                runners[name].upstream.fetch("value", "GET", f"http://127.0.0.1:9/{name}/value")
            )

        calls = [fetch("busy")]
        await session.saturated.wait()
        calls += [fetch("late"), fetch("early")]  # both wait: "late" asked first
        await asyncio.sleep(0)
        session.release.set()
        await asyncio.gather(*calls, return_exceptions=True)
    assert session.accounts == ["busy", "early", "late"]


@pytest.mark.parametrize("bad", [0, -1, "four"])
def test_max_concurrency_per_account_is_validated_with_its_path(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"global": {"max_concurrency_per_account": bad}}, VENDORS)
    assert info.value.path == "global.max_concurrency_per_account"


@asynccontextmanager
async def four_accounts_collected() -> AsyncIterator[Daemon]:
    """A daemon of four fake accounts, each through its first cycle."""
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url:
        data = {
            "fake": [
                {"name": f"acct{i}", "base_url": url, "token": "s3cret-token"} for i in range(4)
            ]
        }
        async with daemon_for(data, VENDORS, clock) as d:
            await d.collect_all_once()
            yield d


async def render_between_ticks(
    d: Daemon, events: list[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[Snapshot, list[str]]:
    """A render set to yield after each account, with a task beside it appending "tick"
    to `events` at each turn of the loop: the snapshot, and what else was logged, once
    it is checked that the loop turned after each entry but the last."""
    monkeypatch.setattr(render_module, "LOOP_SLICE", -1.0)

    async def ticking() -> None:
        while True:
            events.append("tick")
            await asyncio.sleep(0)

    ticker = asyncio.create_task(ticking())
    try:
        snapshot = await d.render_off_loop()
    finally:
        ticker.cancel()
    logged = [i for i, e in enumerate(events) if e != "tick"]
    assert all(events[i + 1] == "tick" for i in logged[:-1])  # the loop ran between
    return snapshot, [events[i] for i in logged]


def log_families_taken(
    d: Daemon, events: list[str], monkeypatch: pytest.MonkeyPatch, prefix: str = ""
) -> None:
    """Mark every account to be encoded, as at the end of its cycle, and append
    `prefix` + its name to `events` each time a render takes its families."""
    for key, runner in d.runners.items():
        runner.generation += 1
        take = runner.collector.families

        def logged(
            take: Callable[[], Iterable[Metric]] = take, name: str = key[1]
        ) -> Iterable[Metric]:
            events.append(prefix + name)
            return take()

        monkeypatch.setattr(runner.collector, "families", logged)


async def test_a_render_gives_the_loop_back_while_taking_many_accounts_families(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with four_accounts_collected() as d:
        events: list[str] = []
        log_families_taken(d, events, monkeypatch)
        snapshot, taken = await render_between_ticks(d, events, monkeypatch)
        assert len(taken) == 4
        assert snapshot.text == d.render_now().text
        assert value(snapshot.text, "fake_value", account="acct3") == 42.0


async def test_a_render_encodes_each_slice_of_families_before_taking_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The families of hundreds of accounts, all held until one encoding at the end,
    # made the garbage collector's longest pauses at 2,000 accounts.
    monkeypatch.setattr(render_module, "LOOP_SLICE", -1.0)  # a slice per account
    async with four_accounts_collected() as d:
        events: list[str] = []
        log_families_taken(d, events, monkeypatch, prefix="take ")
        real_encode = render_module.encode

        def encode(
            families: list[Metric] | None, previous: Chunks | None = None
        ) -> Chunks | Exception:
            events.append("encode")
            return real_encode(families, previous)

        monkeypatch.setattr(render_module, "encode", encode)
        d.snapshot = await d.render_off_loop()
        assert events == [step for i in range(4) for step in (f"take acct{i}", "encode")]
        assert value(d.snapshot.text, "fake_value", account="acct3") == 42.0


async def test_a_render_gives_the_loop_back_while_building_our_own_series(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with four_accounts_collected() as d:
        await d.render_off_loop()  # every account's own series encoded once
        for key in d.runners:
            d.metrics.record_rejected(*key, "invalid_record")  # each one's changed
        events: list[str] = []
        build = SelfMetrics.families_of

        def logged(metrics: SelfMetrics, key: Key, counts: AccountCounts) -> list[Metric]:
            events.append(key[1])
            return build(metrics, key, counts)

        monkeypatch.setattr(SelfMetrics, "families_of", logged)
        snapshot, built = await render_between_ticks(d, events, monkeypatch)
        assert sorted(built) == [f"acct{i}" for i in range(4)]
        assert snapshot.text == d.render_now().text
        assert (
            value(
                snapshot.text,
                "session_exporter_records_rejected_total",
                vendor="fake",
                account="acct2",
                reason="invalid_record",
            )
            == 1.0
        )


class HeldInThread:
    """`render_module.<name>` made to stop, when a worker thread calls it, until
    `release` is set: a render held in its off-loop step while the test acts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self._reached, self.release = threading.Event(), threading.Event()
        real = getattr(render_module, name)

        def held(*args: Any) -> Any:
            if threading.current_thread() is not threading.main_thread():
                self._reached.set()
                self.release.wait(10)
            return real(*args)

        monkeypatch.setattr(render_module, name, held)

    async def reached(self) -> bool:
        """Whether a worker thread got there (waited for off the loop)."""
        return await asyncio.to_thread(self._reached.wait, 10)


async def test_a_render_that_ends_late_never_replaces_a_newer_snapshot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A reload (here `collect_once`) renders at once while the render loop may still be
    # encoding: served after it, the older render would take counters back.
    async with four_accounts_collected() as d:
        held = HeldInThread(monkeypatch, "assemble")  # the off-loop render's last step
        older = asyncio.create_task(d.render_off_loop())
        assert await held.reached()
        d.metrics.record_rejected("fake", "acct1", "invalid_record")
        await d.collect_once("fake", "acct1")  # renders at once, as a reload does
        held.release.set()
        d.snapshot = await older  # as the render loop stores what it rendered
        assert (
            value(
                d.snapshot.text,
                "session_exporter_records_rejected_total",
                vendor="fake",
                account="acct1",
                reason="invalid_record",
            )
            == 1.0
        )


async def test_an_account_whose_cycle_ends_during_a_render_stays_in_its_snapshot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its cycle ends after this render took the families it encodes: the snapshot must
    # show the account's last encoding, not drop it.
    async with four_accounts_collected() as d:
        d.runners[("fake", "acct0")].generation += 1  # acct0's cycle ended: to encode
        held = HeldInThread(monkeypatch, "encode")
        rendering = asyncio.create_task(d.render_off_loop())
        assert await held.reached()
        await d.cycle(d.runners[("fake", "acct1")])  # ends while acct0 is being encoded
        held.release.set()
        d.snapshot = await rendering
        for name in ("acct0", "acct1", "acct2"):
            assert value(d.snapshot.text, "fake_value", account=name) == 42.0, name


async def test_an_accounts_series_stay_counted_between_its_cycle_and_its_render() -> None:
    # The status page counts the series of the account's last encoding: a cycle that
    # has ended, and is not encoded yet, must not turn the count into "unknown".
    from exporter.statuspage import build_view

    def series(d: Daemon) -> int | None:
        views = {view.name: view for view in build_view(d, "/metrics").accounts}
        return views["acct0"].series

    async with four_accounts_collected() as d:
        counted = series(d)
        assert counted is not None and counted > 0
        runner = d.runners[("fake", "acct0")]
        await d.cycle(runner)
        assert runner.needs_encoding
        assert series(d) == counted
        d.snapshot = await d.render_off_loop()
        assert not runner.needs_encoding and series(d) == counted


async def test_a_reload_changing_a_limit_every_runner_uses_reaches_every_account() -> None:
    # Found by a probe: runners of unchanged accounts were kept with the limits they were
    # built with, so raising max_remembered_ids (as its limit_exceeded message says to)
    # and reloading changed nothing until a restart.
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url, daemon_for(config(url), VENDORS, clock) as d:
        await d.collect_all_once()
        first = d.runners[("fake", "acme")]
        assert first.collector.ctx.max_remembered_ids == 250_000  # type: ignore[attr-defined]
        same = config(url)
        d.apply_config(parse_config(same, VENDORS))
        assert d.runners[("fake", "acme")] is first  # nothing changed: kept
        d.apply_config(parse_config(config(url, max_remembered_ids=500_000), VENDORS))
        rebuilt = d.runners[("fake", "acme")]
        assert rebuilt is not first
        assert rebuilt.collector.ctx.max_remembered_ids == 500_000  # type: ignore[attr-defined]
        await d.collect_all_once()
        assert value(d.snapshot.text, "fake_value", account="acme") == 42.0
