"""The SecureVideo History API on loopback, over the seeded `World`, with Basic auth."""

from __future__ import annotations

import hmac
import json
import re
from collections import deque
from datetime import date
from typing import Any

from aiohttp import BasicAuth, hdrs, web

from ..clock import Clock
from .base import RECENT_REQUESTS, Simulator
from .faults import Faults
from .securevideo_world import World

DEMO_API_KEY = "demo-securevideo-id"
DEMO_API_SECRET = "demo-securevideo-secret"  # fixed: the demo and its docs use it
DEFAULT_HISTORY = 3 * 3600.0
_JSON = "application/json"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Every History reply says at which instant of the world it was computed, so a test
# running the real clock can replay exactly what a poll could have seen.
WORLD_TIME_HEADER = "X-Simulator-Time"


def _error(
    status: int, message: str, detail: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"Message": message, "MessageDetail": detail}
    return web.Response(
        status=status, text=json.dumps(body), content_type=_JSON, charset="utf-8", headers=headers
    )


class _BadDate(ValueError):
    pass


def _date_param(params: dict[str, str], name: str) -> date | None:
    text = params.get(name.lower())
    if not text:
        return None
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise _BadDate(f"{name} must be a date in yyyy-mm-dd format") from None


class SecureVideoSimulator(Simulator):
    def __init__(
        self,
        clock: Clock,
        seed: int,
        *,
        history: float = DEFAULT_HISTORY,
        api_key: str = DEMO_API_KEY,
        api_secret: str = DEMO_API_SECRET,
    ) -> None:
        self.clock = clock
        self.faults = Faults(seed, malformed=malformed_reply)
        self.api_key, self.api_secret = api_key, api_secret
        self.started = clock.time()
        self.world = World(seed, self.started - history)
        self.world.advance_to(self.started)
        # Query parameters of the latest requests, for tests; bounded for the demo.
        self.requests: deque[dict[str, str]] = deque(maxlen=RECENT_REQUESTS)

    def app(self) -> web.Application:
        app = self.new_app()
        app.router.add_get("/history", self.handle)
        app.router.add_get("/history/{host_user_id}", self.handle)
        return app

    def demo_accounts(self, base_url: str) -> list[dict[str, Any]]:
        return [
            {
                "name": "demo-clinic",
                "base_url": base_url,
                "interval": "5s",
                "month_interval": "1m",
                # The last hour's sessions at once: a wait is known only when a session ends
                # (about one a minute here), and service level and speed of answer should have
                # data from the first cycle, as they do for the other demo accounts.
                "lookback": "1h",
                "api_key": self.api_key,
                "api_secret": self.api_secret,
            }
        ]

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False
        # Both compared, always, so timing does not tell which half was wrong.
        key_ok = hmac.compare_digest(auth.login.encode(), self.api_key.encode())
        secret_ok = hmac.compare_digest(auth.password.encode(), self.api_secret.encode())
        return key_ok and secret_ok

    async def handle(self, request: web.Request) -> web.Response:
        now = self.clock.time()
        self.world.advance_to(now)
        if not self._authorized(request):
            return _error(
                401,
                "Authorization has been denied for this request.",
                headers={"WWW-Authenticate": 'Basic realm="SecureVideo"'},
            )
        host = request.match_info.get("host_user_id")
        if host is not None and not host.isdigit():
            return _error(404, "No HTTP resource was found that matches the request URI.")
        # ASP.NET binds query parameters case-insensitively (the doc spells them both ways).
        params = {k.lower(): v for k, v in request.query.items()}
        self.requests.append(dict(request.query))
        try:
            month = _date_param(params, "month")
            start = _date_param(params, "startDt")
            end = _date_param(params, "endDt")
        except _BadDate as exc:
            return _error(400, "The request is invalid.", str(exc))
        records = self.world.query(
            now,
            month=month,
            start=start,
            end=end,
            host_user_id=int(host) if host is not None else None,
            participant_email=params.get("participantemail") or None,
        )
        return web.Response(
            text=json.dumps(records),
            content_type=_JSON,
            charset="utf-8",
            headers={WORLD_TIME_HEADER: repr(now)},
        )


def malformed_reply(body: bytes) -> bytes:
    """Valid JSON of the wrong shape: the records wrapped in an object, not an array."""
    return b'{"sessions": ' + body + b"}"
