from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from exporter.cli import IDLE_CONNECTION_SECONDS, app_runner, telemetry_path
from exporter.loop import Daemon
from exporter.server import WebOptions, build_app
from exporter.simulators.clock import FakeClock
from exporter.webconfig import WebSecurity

from .fakevendor import VENDORS, FakeSimulator
from .support import daemon_for, serve_app, value

SECRET = "s3cret-token"


WRONG = "wrong-token-Hq7"


@asynccontextmanager
async def exporter(
    reload_problem: str | None = None,
    wrong_token: bool = False,
    middlewares: tuple[Callable[..., Awaitable[web.StreamResponse]], ...] = (),
) -> AsyncIterator[tuple[str, Daemon]]:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    calls: list[int] = []

    async def reloader() -> str | None:
        calls.append(1)
        return reload_problem

    async with serve_app(simulator.app()) as sim_url:
        data = {"fake": [{"name": "acme", "base_url": sim_url, "token": SECRET}]}
        if wrong_token:
            data["fake"].append({"name": "broken", "base_url": sim_url, "token": WRONG})
        async with daemon_for(data, VENDORS, clock) as daemon:
            app = build_app(daemon, reloader, WebOptions("/metrics"), middlewares)
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
        async with http.get(
            url + "/metrics",
            headers={
                "Accept": "application/openmetrics-text; version=1.0.0",
                "Accept-Encoding": "identity",
            },
        ) as r:
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


def visible(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def test_status_page_shows_each_account_state_and_why() -> None:
    async with exporter(wrong_token=True) as (url, daemon), aiohttp.ClientSession() as http:
        async with http.get(url + "/") as r:
            text = visible(await r.text())
        assert "0 of 2 accounts up, 2 not yet polled" in text
        await daemon.collect_all_once()
        async with http.get(url + "/") as r:
            assert r.headers["Content-Type"].startswith("text/html")
            assert "script-src" not in r.headers["Content-Security-Policy"]
            page = await r.text()
        text = visible(page)
        assert "1 of 2 accounts up, 1 failing" in text
        assert "fake / acme up" in text and "fake / broken failing" in text
        assert "auth in value : HTTP 401" in text
        assert "Check: The vendor refused the credentials" in text
        assert "Series exported 1" in text  # acme's one fake_value sample
        assert "Requests / failures 1 / 1" in text  # broken's request and its failure
        assert 'href="/accounts/fake/broken"' in page
        assert SECRET not in page and WRONG not in page
        async with http.get(url + "/?format=json") as r:
            summary = await r.json()
        assert (summary["up"], summary["total"]) == (1, 2)
        states = {a["name"]: (a["state"], a["last_failure"]) for a in summary["accounts"]}
        assert states["acme"] == ("up", None)
        assert states["broken"][0] == "failing" and states["broken"][1]["reason"] == "auth"


async def test_account_detail_html_json_and_404() -> None:
    async with exporter(wrong_token=True) as (url, daemon), aiohttp.ClientSession() as http:
        for _ in range(2):
            await daemon.collect_all_once()
        async with http.get(url + "/accounts/fake/broken") as r:
            assert r.status == 200
            page = await r.text()
        text = visible(page)
        assert "Last 2 cycle(s), newest first" in text
        assert "value POST 401" in text and "auth: HTTP 401" in text
        assert SECRET not in page and WRONG not in page
        for path in ("/accounts/fake/acme.json", "/accounts/fake/acme?format=json"):
            async with http.get(url + path) as r:
                assert r.status == 200 and r.content_type == "application/json"
                data = await r.json()
            assert data["state"] == "up" and len(data["cycles"]) == 2
            request = data["cycles"][0]["requests"][0]
            assert (request["operation"], request["status"], request["records"]) == (
                "value",
                200,
                None,
            )  # a float reply: nothing to count as records
            assert request["bytes"] == len(b"42.0")
        for path in ("/accounts/fake/nobody", "/accounts/glance/acme", "/accounts/fake/x.json"):
            async with http.get(url + path) as r:
                assert r.status == 404


async def test_config_page_redacts_secrets() -> None:
    async with exporter(wrong_token=True) as (url, _), aiohttp.ClientSession() as http:
        async with http.get(url + "/config") as r:
            page = await r.text()
        async with http.get(url + "/config?format=json") as r:
            data = await r.json()
    assert SECRET not in page and WRONG not in page
    assert "token <redacted>" in visible(page)
    fields = {s["title"]: s["fields"] for s in data["sections"]}
    assert fields["fake / broken"]["token"] == "<redacted>"
    assert fields["fake / acme"]["name"] == "acme"


async def test_status_pages_sit_behind_basic_auth(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  ops: '{hashed}'\n")
    security = WebSecurity.load(str(config))
    async with exporter(middlewares=(security.middleware(),)) as (url, daemon):
        await daemon.collect_all_once()
        async with aiohttp.ClientSession() as http:
            for path in ("/", "/accounts/fake/acme", "/accounts/fake/acme.json", "/config"):
                async with http.get(url + path) as r:
                    assert r.status == 401, path
        token = base64.b64encode(b"ops:pw").decode()
        headers = {"Authorization": f"Basic {token}"}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.get(url + "/accounts/fake/acme") as r,
        ):
            assert r.status == 200


@pytest.mark.parametrize("path", ["/", "/config", "/accounts/x", "/-/ready", "metrics"])
def test_telemetry_path_cannot_shadow_a_page(path: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        telemetry_path(path)
    assert telemetry_path("/custom-metrics") == "/custom-metrics"


@pytest.mark.parametrize("sent", [b"", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"])
async def test_a_connection_that_never_finishes_a_request_is_closed(sent: bytes) -> None:
    # aiohttp's default held such a socket for an hour: a few hundred of them and accept
    # failed (EMFILE), and scrapes timed out.
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/metrics", hello)
    runner = app_runner(app, idle_seconds=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(sent)
        # A bound on failure: the server closes at 0.2 s, or the read fails after 10.
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""
        writer.close()
    finally:
        await runner.cleanup()
    assert IDLE_CONNECTION_SECONDS > 60  # Prometheus's usual longest scrape interval
