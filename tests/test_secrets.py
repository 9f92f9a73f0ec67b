"""No credential ever leaves the exporter: not in logs, /metrics, the landing page,
reload answers, error messages or exception texts.

Every credential field gets its own distinct secret (inline, `${ENV}` and `*_file`
forms); every vendor runs at debug level through successes and every failure we can
provoke (auth errors, 5xx, garbage, truncation, resets, timeouts, 429, NOTLOGGEDIN and
re-login, and vendors that echo the credential back in their error text). Then every
byte the exporter produced is searched for each secret in raw, URL-encoded and base64
forms. Time is a FakeClock; cycles are driven with `collect_all_once`.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
import yaml
from aiohttp import BasicAuth, web

from exporter.config import ConfigError, load_config
from exporter.errors import UpstreamError
from exporter.logs import configure
from exporter.loop import Daemon
from exporter.registry import VENDORS
from exporter.server import WebOptions, build_app
from exporter.simulators.clock import FakeClock
from exporter.simulators.glance import DEMO_PARTNER_ID, GlanceSimulator
from exporter.simulators.rescue import CHANNELS, GROUP_ID, RescueSimulator
from exporter.simulators.securevideo import SecureVideoSimulator

from .support import serve_app

# Distinct, recognisable, and full of characters that URL-encode and base64 differently.
SECRETS = {
    "glance_api_key": "GLK-9f1c+e7/a2=b&c?d",
    "sv_api_key": "SVK-51d0 8b+e4/f=x",  # no colon: Basic forbids one
    "sv_api_secret": "SVS-c3a7%9e+1/0=z",
    "rescue_auth_code": "RAC-77e2b9+d/41=q",
    "rescue_password": "RPW-0b8f6a+c/9e=w&",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Echo:
    """How a hostile vendor quotes back what it received in its error text."""

    on: bool = False
    header: bool = False  # also the raw Authorization header (SecureVideo)


ECHO = web.AppKey("echo", Echo)


def forms(secret: str) -> set[str]:
    """The ways a secret could show up in text."""
    core = secret.split("-", 1)[1][:6]  # a fragment: catches cut or re-escaped leaks
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        quote(secret),
        base64.b64encode(secret.encode()).decode(),
        core,
    }


def basic_forms() -> set[str]:
    pair = f"{SECRETS['sv_api_key']}:{SECRETS['sv_api_secret']}"
    token = base64.b64encode(pair.encode()).decode()
    return {token, f"Basic {token}"}


def leaks(text: str) -> list[str]:
    found = [
        f"{name} as {form!r}"
        for name, secret in SECRETS.items()
        for form in forms(secret)
        if form in text
    ]
    found += [f"Basic auth as {form!r}" for form in basic_forms() if form in text]
    return found


@web.middleware
async def echo_credentials(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A hostile vendor: when armed, its error text quotes the credentials it received."""
    echo = request.app[ECHO]
    if not echo.on:
        return await handler(request)
    form = await request.post() if request.method == "POST" else {}
    sent = " ".join(str(v) for v in form.values())
    auth = request.headers.get("Authorization", "")
    with contextlib.suppress(ValueError):
        decoded = BasicAuth.decode(auth)
        sent += f" {decoded.login} {decoded.password}"
    if request.path.startswith("/history"):
        body = json.dumps(
            {"Message": f"Denied for {sent}", "MessageDetail": auth if echo.header else None}
        )
        return web.Response(status=401, text=body, content_type="application/json")
    if "/API/" in request.path:
        return web.Response(text=f"ERROR {sent}\r\n", content_type="text/plain")
    return web.Response(status=500, text=f"System.Exception: Invalid apiKey {sent}\r\n")


def config_yaml(tmp_path: Path, urls: dict[str, str]) -> dict[str, Any]:
    (tmp_path / "sv_secret").write_text(SECRETS["sv_api_secret"] + "\n")
    (tmp_path / "rescue_pw").write_text(SECRETS["rescue_password"])
    return {
        "global": {"interval": "30s", "timeout": "2s", "stale_after": "1h"},
        "glance": [
            {
                "name": "acme",
                "base_url": urls["glance"],
                "partner_id": DEMO_PARTNER_ID,
                "api_key": SECRETS["glance_api_key"],
                "users": ["JDemo"],
            }
        ],
        "securevideo": [
            {
                "name": "clinic",
                "base_url": urls["securevideo"],
                "api_key": "${SOAK_SV_KEY}",
                "api_secret_file": str(tmp_path / "sv_secret"),
            }
        ],
        "rescue": [
            {
                "name": "code",
                "base_url": urls["rescue"],
                "auth_code": SECRETS["rescue_auth_code"],
                "nodes": [
                    {"id": GROUP_ID, "ref": "NODE"},
                    {"id": CHANNELS[0].id, "ref": "CHANNEL"},
                ],
            },
            {
                "name": "login",
                "base_url": urls["rescue"],
                "email": "ops@example.com",
                "password_file": str(tmp_path / "rescue_pw"),
                "nodes": [{"id": GROUP_ID, "ref": "NODE"}],
            },
        ],
    }


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    app[ECHO] = Echo()
    app.middlewares.append(echo_credentials)  # inside the fault middleware
    async with serve_app(app) as url:
        yield url


@pytest.fixture
def log_buffer() -> Any:
    """Structlog at debug level into a buffer, then back to the suite's set-up."""
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        configure("debug", "logfmt")
    yield buffer
    configure("debug", "logfmt")


# echo-authorization-header found a real leak once: the Basic token quoted back in a
# SecureVideo error text. The client now masks the token as well as the key and secret.
@pytest.mark.parametrize(
    "header_echo", [False, True], ids=["echo-credentials", "echo-authorization-header"]
)
async def test_no_secret_leaks_anywhere(
    header_echo: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    log_buffer: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SOAK_SV_KEY", SECRETS["sv_api_key"])
    clock = FakeClock()
    glance = GlanceSimulator(clock, seed=1, api_key=SECRETS["glance_api_key"])
    sv = SecureVideoSimulator(
        clock, seed=2, api_key=SECRETS["sv_api_key"], api_secret=SECRETS["sv_api_secret"]
    )
    rescue = RescueSimulator(clock, seed=3)
    rescue.auth_code, rescue.email = SECRETS["rescue_auth_code"], "ops@example.com"
    rescue.password = SECRETS["rescue_password"]
    sims: dict[str, Any] = {"glance": glance, "securevideo": sv, "rescue": rescue}
    apps = {name: sim.app() for name, sim in sims.items()}

    produced: list[str] = []  # every text the exporter gave anyone
    outcomes: dict[str, set[str]] = {}  # vendor -> failure reasons seen

    async with (
        served(apps["glance"]) as g_url,
        served(apps["securevideo"]) as s_url,
        served(apps["rescue"]) as r_url,
    ):
        path = tmp_path / "config.yaml"
        path.write_text(
            yaml.safe_dump(
                config_yaml(tmp_path, {"glance": g_url, "securevideo": s_url, "rescue": r_url})
            )
        )
        config = load_config(path, VENDORS)
        produced += [repr(config), str(config)]
        daemon = Daemon(config, VENDORS, clock=clock, seed=1)

        async def reload() -> str | None:
            try:
                new = load_config(path, VENDORS)
            except ConfigError as exc:
                daemon.config_rejected(str(exc))
                produced.append(str(exc))
                return str(exc)
            daemon.apply_config(new)
            return None

        await daemon.start(schedule=False)
        try:
            async with (
                serve_app(build_app(daemon, reload, WebOptions())) as url,
                aiohttp.ClientSession() as client,
            ):

                async def everything_served() -> None:
                    for page in ("/metrics", "/", "/-/ready", "/-/healthy"):
                        async with client.get(url + page) as response:
                            produced.append(await response.text())
                    async with client.get(
                        url + "/metrics", headers={"Accept": "application/openmetrics-text"}
                    ) as response:
                        produced.append(await response.text())

                async def cycle(expect_failure: bool) -> None:
                    """Each collector once, directly, to see its exceptions; then the
                    daemon's own cycle, which logs and counts them."""
                    for runner in daemon.runners.values():
                        try:
                            await runner.collector.collect(runner.upstream)
                        except UpstreamError as exc:
                            produced.extend([str(exc), repr(exc), exc.message])
                            outcomes.setdefault(runner.common.vendor, set()).add(exc.reason)
                        clock.advance(1)
                    await daemon.collect_all_once()
                    if not expect_failure:
                        assert all(r.failures == 0 for r in daemon.runners.values()), {
                            k: (r.failures, r.history.last_failure)
                            for k, r in daemon.runners.items()
                        }
                    await everything_served()
                    clock.advance(30)

                await cycle(expect_failure=False)

                # The shared faults, one kind at a time, on every vendor.
                for kind in (
                    "auth",
                    "http_500",
                    "http_503",
                    "rate_limit",
                    "garbage",
                    "truncate",
                    "reset",
                    "timeout",
                ):
                    for sim in sims.values():
                        # aiohttp retries an idempotent request once on a reset.
                        # A timeout's reply comes after our 2 s timeout, never with it.
                        late = 3.0 if kind == "timeout" else 1.0
                        sim.faults.inject(kind, count=2 if kind == "reset" else 1, seconds=late)
                    await cycle(expect_failure=True)
                    for sim in sims.values():
                        sim.faults.clear()

                # Rescue: an expired login (NOTLOGGEDIN, then a fresh login), a second
                # NOTLOGGEDIN straight after a login, a refused login, a refused auth code.
                rescue.expire_logins()
                await cycle(expect_failure=False)
                rescue.fail_next("NOTLOGGEDIN", count=4)
                await cycle(expect_failure=True)
                rescue.expire_logins()
                rescue.fail_next("INVALID", endpoint="login")
                rescue.fail_next("INVALID_SECRETAUTHCODE")
                await cycle(expect_failure=True)

                # Vendors that stopped accepting our credentials...
                glance.api_key, sv.api_secret = "changed", "changed"
                rescue.auth_code, rescue.password = "changed", "changed"
                rescue.expire_logins()
                await cycle(expect_failure=True)
                # ... and vendors that quote them back in their error text.
                for app in apps.values():
                    app[ECHO].on, app[ECHO].header = True, header_echo
                rescue.expire_logins()
                await cycle(expect_failure=True)

                # Reload: a good file, then a bad one whose error is answered with 500.
                async with client.post(url + "/-/reload") as response:
                    produced.append(await response.text())
                    assert response.status == 200
                data = yaml.safe_load(path.read_text())
                data["glance"][0]["partner_id"] = "not-a-number"
                data["glance"][0]["apikey"] = SECRETS["glance_api_key"]  # a typo'd field
                path.write_text(yaml.safe_dump(data))
                async with client.post(url + "/-/reload") as response:
                    produced.append(await response.text())
                    assert response.status == 500
                await everything_served()
        finally:
            await daemon.stop()

    # The test did drive every path it claims to.
    assert outcomes["glance"] >= {
        "auth",
        "http_5xx",
        "rate_limited",
        "parse",
        "connection",
        "timeout",
    }, outcomes
    assert outcomes["securevideo"] >= {
        "auth",
        "http_5xx",
        "rate_limited",
        "parse",
        "connection",
        "timeout",
    }, outcomes
    assert outcomes["rescue"] >= {
        "auth",
        "http_5xx",
        "rate_limited",
        "parse",
        "connection",
        "timeout",
        "vendor_error",
    }, outcomes
    assert rescue.logins >= 2, "the login account should have logged in again"
    logs = log_buffer.getvalue()
    assert "level=debug" in logs or "level=warning" in logs
    assert "collection failed" in logs
    produced.append(logs)
    produced += [record.getMessage() for record in caplog.records]
    produced += [str(record.exc_info[1]) for record in caplog.records if record.exc_info]
    produced += [caplog.text]

    found = sorted({leak for text in produced for leak in leaks(text)})
    assert not found, f"secrets leaked: {found}"
