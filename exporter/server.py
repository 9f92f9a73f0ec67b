"""The HTTP side: /metrics from the latest snapshot, the status pages, and /-/ endpoints."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .config import JSON_SUFFIX
from .loop import Daemon
from .snapshot import content_type, wants_gzip, wants_openmetrics
from .statuspage import (
    StatusView,
    build_view,
    config_json,
    detail_json,
    render_config,
    render_detail,
    render_status,
)

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


# The pages hold no script and load nothing: say so, so an injected tag could do nothing.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", headers=PAGE_HEADERS)


def _json(data: Any) -> web.Response:
    return web.json_response(data, headers=PAGE_HEADERS, dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def _wants_json(request: web.Request) -> bool:
    return request.query.get("format") == "json"


def _view(request: web.Request) -> StatusView:
    return build_view(request.app[DAEMON_KEY], request.app[OPTIONS_KEY].telemetry_path)


async def landing(request: web.Request) -> web.Response:
    """The status page: every account's state and, when it fails, why."""
    view = _view(request)
    if _wants_json(request):
        return _json(
            {
                "up": view.up,
                "total": len(view.accounts),
                "time": view.now,
                "accounts": [detail_json(view, a, with_cycles=False) for a in view.accounts],
            }
        )
    return _html(render_status(view))


async def account_detail(request: web.Request) -> web.Response:
    view = _view(request)
    vendor, name = request.match_info["vendor"], request.match_info["name"]
    as_json = _wants_json(request)
    accounts = {(a.vendor, a.name): a for a in view.accounts}
    account = accounts.get((vendor, name))
    if account is None and name.endswith(JSON_SUFFIX):  # no account's name ends so
        account, as_json = accounts.get((vendor, name.removesuffix(JSON_SUFFIX))), True
    if account is None:
        raise web.HTTPNotFound(text="no such account\n")
    if as_json:
        return _json(detail_json(view, account))
    return _html(render_detail(view, account))


async def config_page(request: web.Request) -> web.Response:
    config = request.app[DAEMON_KEY].config
    if _wants_json(request):
        return _json(config_json(config))
    return _html(render_config(_view(request), config))


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
    app.router.add_get("/accounts/{vendor}/{name}", account_detail)
    app.router.add_get("/config", config_page)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    return app
