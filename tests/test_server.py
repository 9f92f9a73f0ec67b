from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from exporter.clock import FakeClock
from exporter.loop import Daemon
from exporter.server import WebOptions, build_app

from .fakevendor import VENDOR, VENDORS
from .support import daemon_for, serve_app, value

SECRET = "s3cret-token"


@asynccontextmanager
async def exporter(reload_problem: str | None = None) -> AsyncIterator[tuple[str, Daemon]]:
    clock = FakeClock()
    simulator = VENDOR.new_simulator(clock, 1)
    calls: list[int] = []

    async def reloader() -> str | None:
        calls.append(1)
        return reload_problem

    async with serve_app(simulator.app()) as sim_url:
        data = {"fake": [{"name": "acme", "base_url": sim_url, "token": SECRET}]}
        async with daemon_for(data, VENDORS, clock) as daemon:
            app = build_app(daemon, reloader, WebOptions("/metrics"))
            async with serve_app(app) as url:
                yield url, daemon


async def test_metrics_text_gzip_and_openmetrics() -> None:
    async with exporter() as (url, daemon), aiohttp.ClientSession(auto_decompress=False) as http:
        await daemon.collect_once("fake", "acme")
        async with http.get(url + "/metrics", headers={"Accept-Encoding": "identity"}) as r:
            plain = await r.read()
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert value(plain, "fake_value", account="acme") == 42.0
        async with http.get(url + "/metrics", headers={"Accept-Encoding": "gzip"}) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await r.read()) == plain
        async with http.get(url + "/metrics", headers={
                "Accept": "application/openmetrics-text; version=1.0.0",
                "Accept-Encoding": "identity"}) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
            body = await r.read()
        assert body.endswith(b"# EOF\n")
        assert b"session_exporter_upstream_requests_total" in body


async def test_scrape_serves_the_snapshot_not_a_fresh_render() -> None:
    async with exporter() as (url, daemon), aiohttp.ClientSession() as http:
        await daemon.collect_once("fake", "acme")
        before = daemon.snapshot
        async with http.get(url + "/metrics") as r:
            assert (await r.read()) == before.text
        assert daemon.snapshot is before


async def test_landing_health_ready_and_no_secret() -> None:
    async with exporter() as (url, daemon), aiohttp.ClientSession() as http:
        async with http.get(url + "/-/ready") as r:
            assert r.status == 503
        await daemon.collect_once("fake", "acme")
        async with http.get(url + "/-/ready") as r:
            assert r.status == 200
        async with http.get(url + "/-/healthy") as r:
            assert r.status == 200
        async with http.get(url + "/") as r:
            page = await r.text()
        assert 'href="/metrics"' in page and "acme" in page
        assert SECRET not in page
        async with http.get(url + "/metrics") as r:
            assert SECRET not in await r.text()


@pytest.mark.parametrize(("problem", "status"), [(None, 200), ("fake[0].token: required", 500)])
async def test_reload_endpoint(problem: str | None, status: int) -> None:
    async with exporter(problem) as (url, _), aiohttp.ClientSession() as http:
        async with http.get(url + "/-/reload") as r:
            assert r.status == 405
        async with http.post(url + "/-/reload") as r:
            assert r.status == status
            if problem:
                assert problem in await r.text()
