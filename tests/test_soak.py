"""Soak: all three vendors under a random fault mix, the real Daemon schedule, the real
aiohttp app, and a client scraping /metrics the whole time.

About 40 s by default; set SOAK_SECONDS for a longer run. Faults go on and off in rounds;
at the end the schedule is stopped, the world is frozen, one clean cycle runs, and the
final counters and histograms are compared with each simulator's ground truth of what
the exporter could have seen.

The world runs on an accelerated clock (SPEED simulated seconds per real second) so that
a CI-length soak still sees a few hundred sessions; the Daemon's scheduling, timeouts
and backoff stay on real time, as in production. Every simulator reply carries the world
instant it was computed at (X-Simulator-Time), and the test records which replies the
exporter actually parsed: polls lost to a fault are not polls the exporter "could have
seen", and the schedule-dependent truths (SecureVideo first sightings, Rescue waits) are
replayed from exactly the polls that got through.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import parse_config
from exporter.http import Reply, Upstream
from exporter.loop import Daemon
from exporter.registry import VENDORS
from exporter.server import WebOptions, build_app
from exporter.simulators.glance import DEMO_API_KEY, DEMO_PARTNER_ID, GlanceSimulator
from exporter.simulators.rescue import CHANNELS, GROUP_ID, RescueSimulator
from exporter.simulators.securevideo import (
    DEMO_API_KEY as SV_KEY,
)
from exporter.simulators.securevideo import (
    DEMO_API_SECRET as SV_SECRET,
)
from exporter.simulators.securevideo import (
    SecureVideoSimulator,
)

from .securevideo.harness import Truth as SecureVideoTruth
from .support import serve_app

T = TypeVar("T")

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "40"))
SPEED = 10.0  # simulated seconds per real second
FAULT_RATE = 0.2
FAULT_KINDS = (
    "latency",
    "http_500",
    "http_503",
    "rate_limit",
    "timeout",
    "reset",
    "truncate",
    "garbage",
    "auth",
)
EXPIRE_RATE = 0.1  # Rescue: share of getSession calls before which every login expires
TIMEOUT = 0.7  # real seconds; below the 1 s that random latency/timeout faults last
WORLD_TIME = "X-Simulator-Time"
# 15:00 UTC: far from the midnights and month ends where the day windows move.
WORLD_START = datetime(2026, 3, 10, 15, 0, tzinfo=UTC).timestamp()
RESCUE_CHANNEL = CHANNELS[0].id


class AcceleratedClock:
    """Real time, sped up, from a fixed start; freezable for the final settling cycle."""

    def __init__(self, start: float, speed: float) -> None:
        self._start, self._speed = start, speed
        self._origin = time.monotonic()
        self._frozen: float | None = None

    def _elapsed(self) -> float:
        return (time.monotonic() - self._origin) * self._speed

    def time(self) -> float:
        return self._frozen if self._frozen is not None else self._start + self._elapsed()

    def monotonic(self) -> float:
        return self.time() - self._start

    def freeze(self) -> float:
        self._frozen = self.time()
        return self._frozen


class RecordingUpstream:
    """Wraps an account's Upstream; records the world time of every reply that parsed.

    Rescue and SecureVideo poll one request at a time per account, so the last reply
    fetched is the one being parsed. (Glance runs its operations side by side, but its
    truth does not depend on the poll schedule.)"""

    def __init__(self, inner: Upstream) -> None:
        self._inner = inner
        self._pending: tuple[str, str, float] | None = None
        self.parsed: list[tuple[str, str, float]] = []  # (operation, node, world time)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def fetch(self, operation: str, method: str, url: str, **kwargs: Any) -> Reply:
        self._pending = None
        reply = await self._inner.fetch(operation, method, url, **kwargs)
        stamp = reply.headers.get(WORLD_TIME)
        if stamp is not None:
            node = (kwargs.get("data") or {}).get("node", "")
            self._pending = (operation, node, float(stamp))
        return reply

    def parse(self, operation: str, parser: Callable[[bytes], T], body: bytes) -> T:
        return self._parsed(self._inner.parse(operation, parser, body))

    async def parse_off_loop(self, operation: str, parser: Callable[[bytes], T], body: bytes) -> T:
        return self._parsed(await self._inner.parse_off_loop(operation, parser, body))

    def _parsed(self, result: T) -> T:
        pending, self._pending = self._pending, None
        # A Rescue reply with another code than OK is a failure, not a poll.
        if pending is not None and getattr(result, "code", "OK") == "OK":
            self.parsed.append(pending)
        return result

    def polls(self, operation: str, node: str = "") -> list[float]:
        return [t for op, n, t in self.parsed if op == operation and n == node]


def rss_bytes() -> int | None:
    statm = Path("/proc/self/statm")
    if not statm.exists():
        return None
    return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Scrapes:
    """What the scraping client saw, checked scrape by scrape."""

    count: int = 0
    last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    up_values: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=dict)
    rss: list[tuple[float, int]] = field(default_factory=list)
    phase: int = 0  # odd: faults on

    def check(self, text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        current: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        monotone: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                current[key] = s.value
                if family.type in ("counter", "histogram"):
                    monotone.add(key)
        for key in monotone:
            before = self.last.get(key)
            assert before is None or current[key] >= before, (
                f"{key} went backwards: {before} -> {current[key]}"
            )
        self.last = {k: v for k, v in current.items() if k in monotone} | {
            k: v for k, v in self.last.items() if k not in current
        }
        for (name, labels), value in current.items():
            if name == "session_exporter_up":
                d = dict(labels)
                self.up_values.setdefault((d["vendor"], d["account"]), []).append(
                    (self.phase, value)
                )
        self.count += 1
        return current

    def up_now(
        self, current: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    ) -> dict[tuple[str, str], float]:
        return {
            (dict(k)["vendor"], dict(k)["account"]): v
            for (n, k), v in current.items()
            if n == "session_exporter_up"
        }


def config_data(urls: dict[str, str], rescue: RescueSimulator) -> dict[str, Any]:
    return {
        "global": {
            "interval": "1s",
            "timeout": f"{TIMEOUT}s",
            "max_backoff": "2s",
            "jitter": 0.2,
            "stale_after": "1h",
        },
        "glance": [
            {
                "name": "acme",
                "base_url": urls["glance"],
                "partner_id": DEMO_PARTNER_ID,
                "api_key": DEMO_API_KEY,
                "users": ["JDemo", "ASmith"],
            }
        ],
        "securevideo": [
            {
                "name": "clinic",
                "base_url": urls["securevideo"],
                "api_key": SV_KEY,
                "api_secret": SV_SECRET,
                "month_interval": "1m",
            }
        ],
        "rescue": [
            {
                "name": "helpdesk",
                "base_url": urls["rescue"],
                "auth_code": rescue.auth_code,
                "nodes": [
                    {"id": GROUP_ID, "ref": "NODE"},
                    {"id": RESCUE_CHANNEL, "ref": "CHANNEL"},
                ],
            },
            {
                "name": "desk-login",
                "base_url": urls["rescue"],
                "email": rescue.email,
                "password": rescue.password,
                "nodes": [{"id": GROUP_ID, "ref": "NODE"}],
            },
        ],
    }


def rescue_expected_waits(
    sim: RescueSimulator, node: int, ref: str, polls: list[float]
) -> list[float]:
    """Waits a poller at `polls` sees end: seen Waiting by one poll, over by a later one,
    measured from the true start to the last poll inside it (as the Rescue tests do)."""
    observed = []
    for _, start, end in sim.waits(node, ref):
        inside = [p for p in polls if start <= p < end]
        if inside and any(p >= end for p in polls):
            observed.append(max(inside) - start)
    return observed


def pick(
    final: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> dict[tuple[tuple[str, str], ...], float]:
    want = set(labels.items())
    return {k: v for (n, k), v in final.items() if n == name and want <= set(k)}


def total(
    final: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(pick(final, name, **labels).values())


@pytest.mark.slow
async def test_soak_all_vendors_under_faults() -> None:  # noqa: C901 - one long scenario
    clock = AcceleratedClock(WORLD_START, SPEED)
    glance = GlanceSimulator(clock, seed=21)
    securevideo = SecureVideoSimulator(clock, seed=22)
    rescue = RescueSimulator(clock, seed=23)
    sims: dict[str, GlanceSimulator | SecureVideoSimulator | RescueSimulator] = {
        "glance": glance,
        "securevideo": securevideo,
        "rescue": rescue,
    }

    async with (
        serve_app(glance.app()) as glance_url,
        serve_app(securevideo.app()) as sv_url,
        serve_app(rescue.app()) as rescue_url,
    ):
        urls = {"glance": glance_url, "securevideo": sv_url, "rescue": rescue_url}
        config = parse_config(config_data(urls, rescue), VENDORS)
        daemon = Daemon(config, VENDORS, clock=clock, seed=5)
        started_at = daemon.started_at
        await daemon.start()
        # No await since start(): no cycle has run yet, so every reply gets recorded.
        recorders = {}
        for key, runner in daemon.runners.items():
            recorders[key] = RecordingUpstream(runner.upstream)
            runner.upstream = recorders[key]  # type: ignore[assignment]

        async def reloader() -> str | None:
            return None

        scrapes = Scrapes()
        try:
            async with (
                serve_app(build_app(daemon, reloader, WebOptions())) as url,
                aiohttp.ClientSession() as client,
            ):

                async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                    # Every scrape must succeed, whatever the vendors do; gzip now and then.
                    headers = {"Accept-Encoding": "gzip" if scrapes.count % 4 else "identity"}
                    async with client.get(url + "/metrics", headers=headers) as response:
                        assert response.status == 200
                        text = await response.text()
                    rss = rss_bytes()
                    if rss is not None:
                        scrapes.rss.append((time.monotonic(), rss))
                    for sim in sims.values():
                        sim.requests.clear()  # test bookkeeping, not exporter memory
                    return scrapes.check(text)

                async def scrape_for(
                    seconds: float,
                    until: Callable[..., bool] | None = None,
                ) -> bool:
                    end = time.monotonic() + seconds
                    while time.monotonic() < end:
                        current = await scrape()
                        if until is not None and until(current):
                            return True
                        await asyncio.sleep(0.05)  # pacing the client, not synchronising
                    return until is None

                rounds = 2
                on_time = SOAK_SECONDS * 0.3
                accounts = set(daemon.runners)
                for _ in range(rounds):
                    scrapes.phase += 1
                    for sim in sims.values():
                        sim.faults.set_random(FAULT_RATE, FAULT_KINDS)
                    rescue.expire_rate = EXPIRE_RATE

                    def every_account_down_once(current: Any) -> bool:
                        downs = {
                            k
                            for k, seen in scrapes.up_values.items()
                            if (scrapes.phase, 0.0) in seen
                        }
                        return downs >= accounts

                    # Stay in the fault phase its full time, and at least until each
                    # account has been seen down.
                    await scrape_for(on_time)
                    assert await scrape_for(30.0, every_account_down_once), (
                        "some account never went down under faults"
                    )

                    scrapes.phase += 1
                    for sim in sims.values():
                        sim.faults.clear()
                    rescue.expire_rate = 0.0
                    # A Rescue login blocked by LIMITREACHED stays blocked 180 world seconds.
                    recovery = 180.0 / SPEED + 15.0
                    assert await scrape_for(
                        recovery,
                        lambda c: (
                            set(k for k, v in scrapes.up_now(c).items() if v == 1.0) >= accounts
                        ),
                    ), f"not every account came back up: {scrapes.up_now(scrapes.last)}"
                    await scrape_for(SOAK_SECONDS * 0.2)

                # Settle: stop the schedule, freeze the world, run one clean cycle.
                tasks = [r.task for r in daemon.runners.values() if r.task is not None]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                frozen = clock.freeze()
                await daemon.collect_all_once()
                assert all(r.failures == 0 for r in daemon.runners.values()), {
                    k: r.failures for k, r in daemon.runners.items()
                }
                final = await scrape()
        finally:
            await daemon.stop()

    injected = {vendor: dict(sim.faults.injected) for vendor, sim in sims.items()}
    assert all(sum(kinds.values()) >= 2 for kinds in injected.values()), injected
    assert len({kind for kinds in injected.values() for kind in kinds}) >= 6, injected
    assert scrapes.count > 100

    # Glance: the feed covers [start, frozen] without a gap; each session once.
    # From the first whole second after the start (Glance times are whole seconds).
    ended = glance.completed_ended(math.ceil(started_at), frozen)
    want = Counter((s.type, s.final_status) for s in ended)
    got = {
        (dict(k)["session_type"], dict(k)["status"]): v
        for k, v in pick(final, "glance_sessions_completed_total").items()
        if v
    }
    assert got == {k: float(v) for k, v in want.items()}
    assert sum(want.values()) >= 5
    for session_type in "CGV":
        mine = [s for s in ended if s.type == session_type]
        assert total(
            final, "glance_session_duration_seconds_count", session_type=session_type
        ) == len(mine)
        assert total(
            final, "glance_session_duration_seconds_sum", session_type=session_type
        ) == sum(s.duration for s in mine)

    # SecureVideo: replay exactly the feed polls that got through.
    sv_polls = recorders[("securevideo", "clinic")].polls("history")
    truth = SecureVideoTruth()
    for t in sv_polls:
        truth.poll(securevideo.world, t, started_at)
    got_sv = Counter(
        {
            (dict(k)["billable_status"], dict(k)["schedule_type"], dict(k)["provider"]): int(v)
            for k, v in pick(final, "securevideo_sessions_total").items()
            if v
        }
    )
    assert got_sv == +truth.sessions
    assert sum(truth.sessions.values()) > 5
    for name, observed in (
        ("securevideo_session_duration_seconds", truth.durations),
        ("securevideo_session_wait_seconds", truth.waits),
    ):
        for provider in ("Zoom", "One-Click", "VSee"):
            values = observed.get(provider, [])
            assert total(final, f"{name}_count", provider=provider) == len(values)
            assert total(final, f"{name}_sum", provider=provider) == pytest.approx(sum(values))

    # Rescue: every wait seen begin and end by the polls that got through, once.
    rescue_nodes = {
        "helpdesk": [(GROUP_ID, "NODE"), (RESCUE_CHANNEL, "CHANNEL")],
        "desk-login": [(GROUP_ID, "NODE")],
    }
    for account, nodes in rescue_nodes.items():
        for node, ref in nodes:
            polls = recorders[("rescue", account)].polls("getSession", str(node))
            expected = rescue_expected_waits(rescue, node, ref, polls)
            labels = {"account": account, "node": str(node)}
            count = total(final, "rescue_session_wait_seconds_count", **labels)
            # Said in full when it fails: this once failed on CI (0 of 58) and not since.
            assert count == len(expected), (
                account,
                node,
                count,
                len(expected),
                f"{len(polls)} polls recorded",
                {
                    n: v
                    for (n, k), v in final.items()
                    if n.startswith("rescue_")
                    and dict(k).get("account") == account
                    and (v or n.endswith("_count"))
                },
                list(daemon.runners[("rescue", account)].history.cycles)[-3:],
            )
            # The exporter dates a wait by its own clock when the reply arrives: allow a
            # couple of world seconds per wait for whole-second Waiting Time and transit.
            assert abs(
                total(final, "rescue_session_wait_seconds_sum", **labels) - sum(expected)
            ) <= 3.0 * len(expected)
    assert len(recorders[("rescue", "desk-login")].polls("getSession", str(GROUP_ID))) > 5
    assert rescue.logins > 1, "expired logins should have forced new ones"

    # Memory: the second half of the run is no bigger than the first, generously.
    if scrapes.rss:
        half = len(scrapes.rss) // 2
        first = max(r for _, r in scrapes.rss[:half])
        second = max(r for _, r in scrapes.rss[half:])
        assert second <= first * 1.25 + 16 * 2**20, (first, second)
