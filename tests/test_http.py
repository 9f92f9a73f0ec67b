from __future__ import annotations

import asyncio
import socket
import struct
import tracemalloc
import zlib

import pytest
from aiohttp import web

from exporter.admission import Admission
from exporter.errors import UpstreamError
from exporter.hints import for_failure
from exporter.history import AccountHistory
from exporter.http import Upstream, new_client_session, parse_retry_after
from exporter.selfmetrics import SelfMetrics

from .support import serve_app


async def big_reply(request: web.Request) -> web.StreamResponse:
    # Chunked, so no Content-Length warns us: the cap must hold while streaming.
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(64):
        await response.write(b"x" * 1024)
    await response.write_eof()
    return response


async def declared_reply(request: web.Request) -> web.Response:
    return web.Response(body=b"y" * 4096)


async def failed_get(url: str, metrics: SelfMetrics) -> UpstreamError:
    """The error of a GET of `url` (bodies capped at 2 KiB)."""
    async with new_client_session() as session:
        upstream = Upstream(
            session,
            vendor="v",
            account="a",
            timeout=5,
            admission=Admission(1),
            metrics=metrics,
            max_body_bytes=2048,
            wall_time=lambda: 0.0,
        )
        with pytest.raises(UpstreamError) as info:
            await upstream.fetch("op", "GET", url)
    return info.value


async def failed_fetch(app: web.Application, path: str) -> tuple[UpstreamError, SelfMetrics]:
    """The error of a GET of `path` on `app`, and the metrics."""
    metrics = SelfMetrics()
    async with serve_app(app) as url:
        return await failed_get(url + path, metrics), metrics


@pytest.mark.parametrize(("path", "message"), [("/big", "exceeds"), ("/declared", "declares")])
async def test_body_cap(path: str, message: str) -> None:
    app = web.Application()
    app.router.add_get("/big", big_reply)
    app.router.add_get("/declared", declared_reply)
    error, metrics = await failed_fetch(app, path)
    assert error.reason == "body_too_large"
    assert message in error.message
    assert metrics.failures.values == {("v", "a", "op", "body_too_large"): 1.0}


def gzip_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    block = bytes(1 << 20)
    return b"".join([*(packer.compress(block) for _ in range(size >> 20)), packer.flush()])


async def test_a_compressed_body_is_capped_as_it_is_inflated() -> None:
    # 256 KiB on the wire, 256 MiB inflated. aiohttp before 3.14 inflated each network read
    # whole (3.10.11: 267 MiB of heap for this reply) or called the refusal a
    # body cut short (3.13.3-3.13.5); pyproject.toml asks for 3.14.
    bomb = gzip_of_zeros(256 << 20)

    async def answer(request: web.Request) -> web.StreamResponse:
        # Chunked: a Content-Length over the cap would be refused before a byte is read.
        response = web.StreamResponse(headers={"Content-Encoding": "gzip"})
        await response.prepare(request)
        await response.write(bomb)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/bomb", answer)
    tracemalloc.start()
    try:
        error, metrics = await failed_fetch(app, "/bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (error.reason, error.message) == ("body_too_large", "reply exceeds 2048 bytes")
    assert metrics.failures.values == {("v", "a", "op", "body_too_large"): 1.0}
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB of heap to refuse a 2 KiB reply"


@pytest.mark.parametrize(("encoding", "named"), [("gzip", "gzip"), ("br", "brotli")])
async def test_a_body_that_is_not_in_its_content_encoding_says_so(
    encoding: str, named: str
) -> None:
    # Found by a probe: a gzip header on a plain body was "reply body was cut short", and
    # a brotli one (we never ask for it) "bad HTTP reply (400)", from a vendor's 200.
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=b"plain text", headers={"Content-Encoding": encoding})

    app = web.Application()
    app.router.add_get("/lie", answer)
    error, metrics = await failed_fetch(app, "/lie")
    assert error.reason == "connection"
    assert error.message == (f"reply body cannot be decoded as its Content-Encoding says ({named})")
    assert metrics.failures.values == {("v", "a", "op", "connection"): 1.0}


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (302, "http_3xx"),
        (301, "http_3xx"),
        (304, "http_3xx"),
        (204, "vendor_error"),
        (404, "http_4xx"),
        (401, "auth"),
        (429, "rate_limited"),
        (503, "http_5xx"),
    ],
)
async def test_each_unexpected_status_is_counted_by_its_class(status: int, reason: str) -> None:
    # A redirect (never followed) was counted, and hinted, as the vendor refusing the
    # request (http_4xx); so was a 204.
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": "http://127.0.0.1:1/sso"})

    app = web.Application()
    app.router.add_get("/x", answer)
    error, metrics = await failed_fetch(app, "/x")
    assert (error.reason, error.message) == (reason, f"HTTP {status}")
    assert metrics.failures.values == {("v", "a", "op", reason): 1.0}


def test_retry_after_forms() -> None:
    assert parse_retry_after("120", 0) == 120
    assert parse_retry_after("Thu, 01 Jan 1970 00:02:00 GMT", 60) == 60
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after(None, 0) is None


async def test_a_request_stopped_mid_reply_is_on_the_accounts_page() -> None:
    # Probe 8: a reply still dripping in when the cycle's deadline stopped it was counted
    # as sent, but the account's page listed no request at all.
    replying, never = asyncio.Event(), asyncio.Event()

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"OK\r\n")
        replying.set()
        await never.wait()
        return response

    app = web.Application()
    app.router.add_get("/drip", drip)
    history = AccountHistory()
    history.begin(0.0)
    async with serve_app(app) as url, new_client_session() as session:
        upstream = Upstream(
            session,
            vendor="v",
            account="a",
            timeout=30,
            admission=Admission(1),
            metrics=SelfMetrics(),
            max_body_bytes=2048,
            wall_time=lambda: 0.0,
            history=history,
        )
        fetch = asyncio.create_task(upstream.fetch("op", "GET", url + "/drip"))
        await replying.wait()
        fetch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fetch
        never.set()
    assert history.current is not None
    (record,) = history.current.requests
    assert (record.operation, record.reason) == ("op", "cancelled")
    assert record.error is not None and "deadline" in record.error


async def test_a_reply_aiohttp_cannot_read_is_not_called_a_vendors_400() -> None:
    async def huge_header(request: web.Request) -> web.Response:
        return web.Response(text="OK", headers={"X-Big": "x" * 20_000})

    app = web.Application()
    app.router.add_get("/big-header", huge_header)
    error, _ = await failed_fetch(app, "/big-header")
    assert error.reason == "connection"
    assert "400" not in error.message and "not readable HTTP" in error.message


async def failure_from_raw_server(send: bytes, reset: bool) -> UpstreamError:
    """The error of a GET from a server that reads the request, sends `send` and then
    closes the connection, with a TCP reset when `reset`."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(send)
        await writer.drain()
        if reset:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await failed_get(f"http://127.0.0.1:{port}/x", SelfMetrics())
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("send", "reset", "message"),
    [
        (b"", False, "the vendor closed the connection before its reply"),
        (b"HTTP/1.1 200 OK\r\nContent-Ty", True, "Connection reset by peer"),
    ],
)
async def test_a_connection_closed_or_reset_says_so(send: bytes, reset: bool, message: str) -> None:
    # Probe 13: a reset mid-headers was the bare "ClientOSError", with the catch-all hint.
    error = await failure_from_raw_server(send, reset)
    assert error.reason == "connection"
    assert message in error.message
    assert "closed or reset" in (for_failure("v", "op", error.reason, error.message) or "")
