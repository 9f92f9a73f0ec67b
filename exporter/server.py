"""The HTTP side: /metrics from the latest snapshot, the landing page, and /-/ endpoints."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from . import __version__
from .loop import Daemon, describe
from .snapshot import content_type, wants_gzip, wants_openmetrics

# Returns None on success, or the reason the new config was refused.
Reloader = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class WebOptions:
    telemetry_path: str = "/metrics"


DAEMON_KEY = web.AppKey("daemon", Daemon)
RELOAD_KEY = web.AppKey("reload", object)
OPTIONS_KEY = web.AppKey("options", WebOptions)


async def metrics(request: web.Request) -> web.Response:
    snapshot = request.app[DAEMON_KEY].snapshot
    openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
    gzipped = wants_gzip(request.headers.get("Accept-Encoding", ""))
    response = web.Response(body=snapshot.body(openmetrics, gzipped))
    response.headers["Content-Type"] = content_type(openmetrics)
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept, Accept-Encoding"
    return response


async def landing(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    path = html.escape(request.app[OPTIONS_KEY].telemetry_path)
    rows = "".join(
        f"<li>{html.escape(vendor)}: {html.escape(', '.join(names))}</li>"
        for vendor, names in describe(daemon.config).items()
    ) or "<li>no accounts configured</li>"
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>session-exporter</title></head>
<body>
<h1>session-exporter</h1>
<p>Prometheus exporter for remote-session vendors, version {html.escape(__version__)}.</p>
<ul>
<li><a href="{path}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
<h2>Accounts</h2>
<ul>{rows}</ul>
</body></html>
"""
    return web.Response(text=page, content_type="text/html")


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


async def ready(request: web.Request) -> web.Response:
    if request.app[DAEMON_KEY].ready():
        return web.Response(text="Ready.\n")
    return web.Response(status=503, text="Not ready: first collection cycles still running.\n")


async def reload(request: web.Request) -> web.Response:
    reloader: Reloader = request.app[RELOAD_KEY]  # type: ignore[assignment]
    problem = await reloader()
    if problem is not None:
        return web.Response(status=500, text=f"failed to reload config: {problem}\n")
    return web.Response(text="Config reloaded.\n")


def build_app(
    daemon: Daemon,
    reloader: Reloader,
    options: WebOptions = WebOptions(),
    middlewares: tuple[Callable[..., Awaitable[web.StreamResponse]], ...] = (),
) -> web.Application:
    app = web.Application(middlewares=list(middlewares))
    app[DAEMON_KEY] = daemon
    app[RELOAD_KEY] = reloader
    app[OPTIONS_KEY] = options
    app.router.add_get(options.telemetry_path, metrics)
    app.router.add_get("/", landing)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    return app
