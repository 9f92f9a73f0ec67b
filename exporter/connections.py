"""A cap on open client connections, so that clients cannot use up the file descriptors.

The idle timeout (``cli.IDLE_CONNECTION_SECONDS``) closes each silent connection in the
end, but a client opening a few hundred every minute still exhausts a low
``ulimit -n``: ``accept`` then fails and scrapes time out. At the cap, a new connection
makes room by closing the oldest one that has no request in flight. Refusing the new one
instead would let whoever holds the slots lock Prometheus out. A scrape in flight is
closed only when every open connection has one.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .logs import get_logger

log = get_logger(component="http")
# Half the descriptors go to polling, the state file and logs; a quarter is plenty for
# Prometheus, a browser and probes, and keeps the cap within a low `ulimit -n`.
_SHARE_OF_DESCRIPTORS = 4
_MOST_BY_DEFAULT = 1024
_FEWEST = 8
_WARN_EVERY_SECONDS = 60.0
# A TLS connection reaches the cap only once its handshake is done, so a client that
# opens connections and never says hello is bounded by this instead (asyncio's default
# is 60 s). A real handshake takes well under a second.
TLS_HANDSHAKE_SECONDS = 10.0


def default_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MOST_BY_DEFAULT
    return max(_FEWEST, min(_MOST_BY_DEFAULT, soft // _SHARE_OF_DESCRIPTORS))


class ConnectionCap:
    """Counts requests in flight per connection and makes room at the cap."""

    def __init__(self, limit: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError("the connection limit must be at least 1")
        self.limit = limit
        self.closed_for_room = 0
        self._in_flight: dict[object, int] = {}
        self._monotonic = monotonic
        self._last_warning: float | None = None

    def middleware(self) -> Any:
        @web.middleware
        async def track(request: web.Request, handler: Any) -> web.StreamResponse:
            connection = request.protocol
            self._in_flight[connection] = self._in_flight.get(connection, 0) + 1
            try:
                response: web.StreamResponse = await handler(request)
                return response
            finally:
                left = self._in_flight[connection] - 1
                if left:
                    self._in_flight[connection] = left
                else:
                    del self._in_flight[connection]

        return track

    def protocol_factory(self, server: web.Server) -> Callable[[], RequestHandler]:
        loop = asyncio.get_running_loop()

        def new_connection() -> RequestHandler:
            self._keep_within(server.connections, self.limit - 1)  # room for this one
            # Connections accepted in one go all pass here before any is registered (its
            # `connection_made` is queued once this returns): look again after that, two
            # hops on, or a burst stayed over the limit until the next connection came.
            loop.call_soon(loop.call_soon, self._recheck, server)
            return server()

        return new_connection

    def _recheck(self, server: web.Server) -> None:
        self._keep_within(server.connections, self.limit)

    def _keep_within(self, open_now: list[RequestHandler], most: int) -> None:
        """Close the oldest idle connections (then, if need be, the oldest of all) until
        at most `most` are left."""
        # Already closing: a TLS one waits up to 30 s for the client's goodbye, and was
        # closed again and again, each time in place of a live one.
        live = [c for c in open_now if c.transport is not None]  # oldest first
        excess = len(live) - most
        if excess <= 0:
            return
        # Idle ones first, oldest first within each (the sort is stable).
        for connection in sorted(live, key=self._busy)[:excess]:
            # Aborted, not closed: a TLS close keeps the socket until the client answers.
            transport = connection.transport
            if transport is not None:
                transport.abort()
            connection.force_close()
            self.closed_for_room += 1
        self._warn()

    def _busy(self, connection: RequestHandler) -> bool:
        # aiohttp writes a reply after its handler returns: bytes still to send are a
        # reply in flight (a slow reader of a big /metrics) as much as a running handler.
        transport = connection.transport
        return connection in self._in_flight or bool(
            transport is not None and transport.get_write_buffer_size()
        )

    def _warn(self) -> None:
        now = self._monotonic()
        if self._last_warning is None or now - self._last_warning >= _WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning(
                "connection limit reached; closed an older connection to make room",
                limit=self.limit,
                closed_so_far=self.closed_for_room,
                hint="raise --web.max-connections, or look for a client that opens "
                "connections and leaves them idle",
            )


class CappedTCPSite(web.BaseSite):
    """``web.TCPSite``, with each new connection passing the cap first."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        cap: ConnectionCap,
        ssl_context: Any = None,
        handshake_seconds: float = TLS_HANDSHAKE_SECONDS,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._listen_host = host
        self._listen_port = port
        self._cap = cap
        self._handshake_seconds = handshake_seconds

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._listen_host or '*'}:{self._listen_port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("call runner.setup() before starting a site")
        self._server = await asyncio.get_running_loop().create_server(
            self._cap.protocol_factory(server),
            self._listen_host or None,
            self._listen_port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_seconds if self._ssl_context else None,
            # asyncio accepts up to `backlog` connections in one go before any reaches
            # the cap (`_recheck`), so a flood holds at most twice the limit, briefly.
            backlog=min(self._backlog, self._cap.limit),
        )
