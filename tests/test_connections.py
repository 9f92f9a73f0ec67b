"""The cap on client connections: at the limit, the oldest idle connection makes room."""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
import structlog
from aiohttp import web

from exporter import connections
from exporter.cli import app_runner, positive_int
from exporter.connections import CappedTCPSite, ConnectionCap, default_limit

from .support import get, start_exporter, wait_for

SILENCE_BOUND = 10.0  # a bound on failure only: each wait ends as soon as it can


@dataclass
class Served:
    url: str
    port: int
    runner: web.AppRunner
    cap: ConnectionCap
    release: asyncio.Event
    entered: asyncio.Event


async def serve_capped(
    cap: ConnectionCap, routes: dict[str, Callable[[web.Request], Awaitable[web.Response]]]
) -> tuple[web.AppRunner, int]:
    """`routes` behind `cap`, as the daemon serves: (the runner to clean up, the port)."""
    app = web.Application(middlewares=[cap.middleware()])
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = app_runner(app)
    await runner.setup()
    await CappedTCPSite(runner, "127.0.0.1", 0, cap).start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    limit: int = request.param
    release, entered = asyncio.Event(), asyncio.Event()

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text="up 1\n")

    async def slow(_request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(text="done")

    clock = iter(range(0, 10_000, 30))  # each warning check is 30 s after the last
    cap = ConnectionCap(limit, monotonic=lambda: float(next(clock)))
    runner, port = await serve_capped(cap, {"/metrics": metrics, "/slow": slow})
    try:
        yield Served(f"http://127.0.0.1:{port}", port, runner, cap, release, entered)
    finally:
        release.set()
        await runner.cleanup()


REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


async def answered(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"up 1\n"), SILENCE_BOUND)


async def idle_connection(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection kept alive after one request: the server has surely taken it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    assert (await answered(reader)).startswith(b"HTTP/1.1 200")
    return reader, writer


async def slow_request(served: Served) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection: aiohttp's client would quietly retry a request cut short."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(served.entered.wait(), SILENCE_BOUND)
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), SILENCE_BOUND) == b""


async def scrape(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as reply:
        await reply.read()
        return reply.status


@pytest.mark.parametrize("served", [2], indirect=True)
async def test_at_the_limit_a_scrape_closes_the_oldest_idle_connection(served: Served) -> None:
    first, first_writer = await idle_connection(served.port)
    second, second_writer = await idle_connection(served.port)

    assert await scrape(served.url) == 200

    assert await closed_by_server(first)
    second_writer.write(REQUEST)  # the second is still open
    assert (await answered(second)).startswith(b"HTTP/1.1 200")
    assert served.cap.closed_for_room == 1
    for writer in (first_writer, second_writer):
        writer.close()


@pytest.mark.parametrize("served", [2], indirect=True)
async def test_a_request_in_flight_keeps_its_connection(served: Served) -> None:
    busy, busy_writer = await slow_request(served)
    idle, idle_writer = await idle_connection(served.port)

    # The older connection is busy, so the newer idle one makes room.
    assert await scrape(served.url) == 200
    assert await closed_by_server(idle)

    served.release.set()
    reply = await asyncio.wait_for(busy.readuntil(b"done"), SILENCE_BOUND)
    assert reply.startswith(b"HTTP/1.1 200")
    for writer in (busy_writer, idle_writer):
        writer.close()


@pytest.mark.parametrize("served", [1], indirect=True)
async def test_with_every_connection_in_flight_the_oldest_makes_room(served: Served) -> None:
    reader, writer = await slow_request(served)
    assert await scrape(served.url) == 200
    assert await closed_by_server(reader)
    assert served.cap.closed_for_room == 1
    writer.close()


@pytest.mark.parametrize("served", [1], indirect=True)
async def test_making_room_is_logged_once_a_minute(served: Served) -> None:
    # The fixture's clock says 30 s between checks: the first, third and fifth warn.
    with structlog.testing.capture_logs() as logged:
        reader, _writer = await idle_connection(served.port)
        for _ in range(4):
            older = reader
            reader, _writer = await idle_connection(served.port)
            assert await closed_by_server(older)
    warnings = [e for e in logged if e["event"].startswith("connection limit reached")]
    assert served.cap.closed_for_room == 4
    assert [w["closed_so_far"] for w in warnings] == [1, 3]
    assert all(w["limit"] == 1 and "--web.max-connections" in w["hint"] for w in warnings)


@pytest.mark.parametrize(
    ("soft", "expected"),
    [(1024, 256), (256, 64), (16, connections._FEWEST), (1 << 20, 1024)],
)
def test_the_default_limit_is_a_quarter_of_the_open_file_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, expected: int
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (soft, soft))
    assert default_limit() == expected


def test_an_unlimited_open_file_limit_gives_the_default_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unlimited = resource.RLIM_INFINITY
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (unlimited, unlimited))
    assert default_limit() == 1024


@pytest.mark.parametrize("text", ["0", "-3", "many", "1.5"])
def test_the_flag_takes_a_positive_whole_number(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int(text)
    assert positive_int("256") == 256


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionCap(0)


def test_the_daemon_keeps_to_its_connection_limit() -> None:
    with start_exporter("--demo", "--demo.fault-rate", "0", "--web.max-connections", "2") as ex:
        assert "max_connections=2" in ex.log()
        port = int(ex.url.rsplit(":", 1)[1])
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        try:
            # The scrape needs a slot: it closes the older connection left idle.
            assert get(ex.url + "/metrics")[0] == 200
            assert idle[0].recv(1) == b""  # closed by the server
        finally:
            for s in idle:
                s.close()
        # Logged by the exporter process as it closes it; read by our reader thread.
        assert wait_for(lambda: "connection limit reached" in ex.log(), 10)


async def test_a_burst_accepted_at_once_is_brought_within_the_limit() -> None:
    # Connections accepted in one go all pass the cap before any is registered: a burst
    # that landed while the loop was busy stayed over the limit until the next came.
    busy, burst_in = threading.Event(), threading.Event()

    async def block(_request: web.Request) -> web.Response:
        busy.set()
        burst_in.wait(SILENCE_BOUND)  # the loop held, as by a long render or GC pause
        return web.Response(text="done")

    cap = ConnectionCap(2)
    made_room = asyncio.Event()
    warn = cap._warn

    def warned() -> None:  # called once connections were closed to make room
        warn()
        made_room.set()

    cap._warn = warned  # type: ignore[method-assign]
    runner, port = await serve_capped(cap, {"/block": block})
    sockets: list[socket.socket] = []

    def burst() -> None:
        busy.wait(SILENCE_BOUND)
        # Taken by the kernel while the loop is held: asyncio accepts them in one go (a
        # backlog's worth: the limit), and neither sees the other registered.
        sockets.extend(socket.create_connection(("127.0.0.1", port)) for _ in range(2))
        burst_in.set()

    try:
        blocker, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        thread = threading.Thread(target=burst)
        thread.start()
        assert (await asyncio.wait_for(blocker.readuntil(b"done"), SILENCE_BOUND)).startswith(
            b"HTTP/1.1 200"
        )
        thread.join()
        # No other connection comes: the limit holds all the same.
        await asyncio.wait_for(made_room.wait(), SILENCE_BOUND)
        server = runner.server
        assert server is not None
        assert len([c for c in server.connections if c.transport is not None]) == 2
        assert cap.closed_for_room == 1
        writer.close()
    finally:
        for s in sockets:
            s.close()
        await runner.cleanup()
