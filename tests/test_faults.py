"""Each vendor's simulator breaks its replies in its own way on demand; the exporter
counts a parse failure, keeps the last good values and recovers."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from exporter.registry import VENDORS
from exporter.simulators import SIMULATORS
from exporter.simulators.clock import FakeClock

from .support import daemon_for, samples, serve_app, value

FIRST_METRIC = {
    "glance": "glance_sessions_current",
    "securevideo": "securevideo_sessions_month",
    "rescue": "rescue_sessions",
}


@pytest.mark.parametrize("vendor", sorted(VENDORS))
async def test_malformed_replies_are_parse_failures_that_lose_nothing(vendor: str) -> None:
    clock = FakeClock()
    simulator = SIMULATORS[vendor](clock, 5)
    async with serve_app(simulator.app()) as url:
        (entry,) = simulator.demo_accounts(url)
        async with daemon_for({vendor: [entry]}, VENDORS, clock) as daemon:
            name = entry["name"]
            assert await daemon.collect_once(vendor, name)
            before = {
                k: v
                for k, v in samples(daemon.snapshot.text).items()
                if k[0] == FIRST_METRIC[vendor]
            }
            assert before

            simulator.faults.inject("malformed", count=None)
            clock.advance(10)
            assert not await daemon.collect_once(vendor, name)
            text = daemon.snapshot.text
            failures = {
                k: v
                for k, v in samples(text).items()
                if k[0] == "session_exporter_upstream_request_failures_total"
            }
            assert failures and all(dict(k[1])["reason"] == "parse" for k in failures)
            after = {k: v for k, v in samples(text).items() if k[0] == FIRST_METRIC[vendor]}
            assert after == before  # the last good values stay

            simulator.faults.clear()
            clock.advance(10)
            assert await daemon.collect_once(vendor, name)
            assert (
                value(daemon.snapshot.text, "session_exporter_up", vendor=vendor, account=name)
                == 1.0
            )


@pytest.mark.parametrize("vendor", sorted(VENDORS))
async def test_every_reply_is_dated_by_the_simulators_clock(vendor: str) -> None:
    # The exporter reads the vendor's clock from Date; the host's real time there made a
    # vendor on a test clock look months apart from us.
    clock = FakeClock(1_700_000_000.0)
    simulator = SIMULATORS[vendor](clock, 5)
    async with serve_app(simulator.app()) as url, aiohttp.ClientSession() as session:
        dates = []
        for fault in (None, "http_500"):
            if fault:
                simulator.faults.inject(fault, count=1)
            async with session.get(f"{url}/no-such-path") as reply:
                dates.append(parsedate_to_datetime(reply.headers["Date"]).timestamp())
            clock.advance(61)
    assert dates == [1_700_000_000.0, 1_700_000_061.0]
