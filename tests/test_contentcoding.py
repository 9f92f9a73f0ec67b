"""Content-Encoding undone by `exporter.contentcoding`: whole bodies come back whole, a
compressed stream cut before its end is refused, and nothing is inflated in one go."""

from __future__ import annotations

import gzip
import zlib

import pytest
from aiohttp import web

from exporter.admission import Admission
from exporter.contentcoding import MAX_MEMBERS, PIECE, BodyDecoder, CutShort, Undecodable
from exporter.errors import UpstreamError
from exporter.http import Upstream, new_client_session
from exporter.selfmetrics import SelfMetrics

from .support import serve_app

TEXT = b"".join(b"row %d|Waiting|12\r\n" % i for i in range(20_000))


def decoded(header: str | None, body: bytes, step: int = 4096) -> bytes:
    decoder = BodyDecoder(header)
    pieces = [p for i in range(0, len(body), step) for p in decoder.feed(body[i : i + step])]
    decoder.finish()
    return b"".join(pieces)


def deflate(data: bytes, raw: bool) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("header", "body"),
    [
        (None, TEXT),
        ("identity", TEXT),
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("GZIP", gzip.compress(TEXT)),
        ("deflate", deflate(TEXT, raw=False)),
        ("deflate", deflate(TEXT, raw=True)),  # as some servers send it
        ("gzip, gzip", gzip.compress(gzip.compress(TEXT))),  # was a parse failure
        ("deflate, gzip", gzip.compress(deflate(TEXT, raw=False))),
        ("gzip", gzip.compress(TEXT[:5000]) + gzip.compress(TEXT[5000:])),  # two members
    ],
)
def test_a_whole_body_comes_back_whole(header: str | None, body: bytes) -> None:
    assert decoded(header, body) == TEXT
    assert decoded(header, body, step=1 << 20) == TEXT


@pytest.mark.parametrize("header", ["gzip", "deflate"])
def test_a_stream_cut_before_its_end_is_cut_short(header: str) -> None:
    # Probe 8: a gzip reply flushed after its first row and never ended was taken whole,
    # and the sessions of its missing rows as ended.
    whole = gzip.compress(TEXT) if header == "gzip" else deflate(TEXT, raw=False)
    with pytest.raises(CutShort) as info:
        decoded(header, whole[: len(whole) // 2])
    assert info.value.coding == header


@pytest.mark.parametrize(
    ("header", "body", "named"),
    [
        ("gzip", b"plain text", "gzip"),
        ("deflate", b"\xff\xfe not deflate", "deflate"),
        ("br", b"anything", "brotli"),  # never asked for
        ("compress", b"anything", "compress"),
        ("gzip", gzip.compress(b"x") + b"trailing junk", "gzip"),
    ],
)
def test_a_body_not_in_its_coding_is_undecodable(header: str, body: bytes, named: str) -> None:
    with pytest.raises(Undecodable) as info:
        decoded(header, body)
    assert info.value.coding == named


def test_padding_after_the_end_of_a_stream_is_no_second_stream() -> None:
    # aiohttp took a gzip body followed by a newline; so do we (a review found it refused).
    for padding in (b"\n", b"\r\n", b"\x00" * 8):
        assert decoded("gzip", gzip.compress(TEXT) + padding) == TEXT
        assert decoded("deflate", deflate(TEXT, raw=False) + padding) == TEXT


def test_gzip_members_are_bounded_in_number() -> None:
    # A review found it: 20-byte empty members decode to nothing, so the size cap never
    # came, and each cost a new inflater: 37 MiB of them went through against a 1 MiB cap.
    members = gzip.compress(b"") * (MAX_MEMBERS + 1)
    with pytest.raises(Undecodable):
        decoded("gzip", members)
    assert decoded("gzip", gzip.compress(b"x") * MAX_MEMBERS) == b"x" * MAX_MEMBERS


def test_nothing_is_inflated_more_than_a_piece_at_a_time() -> None:
    # A gzip bomb: 64 MiB of zeros from some 64 KiB. aiohttp inflated each network read
    # whole on the event loop, and scrapes waited 50-250 ms (probe 8).
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = bomb.compress(bytes(64 << 20)) + bomb.flush()
    assert len(body) < 100_000
    pieces = list(BodyDecoder("gzip").feed(body))
    assert max(map(len, pieces)) <= PIECE
    assert sum(map(len, pieces)) == 64 << 20


def test_an_empty_body_with_a_coding_is_empty() -> None:
    assert decoded("gzip", b"") == b""


async def test_a_cut_gzip_reply_over_http_is_a_connection_failure() -> None:
    whole = zlib.compressobj(6, zlib.DEFLATED, 31)
    flushed = whole.compress(TEXT) + whole.flush(zlib.Z_SYNC_FLUSH)  # no end marker

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=flushed, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/cut", answer)
    metrics = SelfMetrics()
    async with serve_app(app) as url, new_client_session() as session:
        upstream = Upstream(
            session,
            vendor="v",
            account="a",
            timeout=5,
            admission=Admission(1),
            metrics=metrics,
            max_body_bytes=1 << 24,
            wall_time=lambda: 0.0,
        )
        with pytest.raises(UpstreamError) as info:
            await upstream.fetch("op", "GET", url + "/cut")
    assert (info.value.reason, info.value.message) == (
        "connection",
        "reply body was cut short (its gzip stream ends early)",
    )
    assert metrics.failures.values == {("v", "a", "op", "connection"): 1.0}
