"""Metric families -> pre-rendered exposition bytes, built once per collection cycle.

Scrapes only pick one of four byte strings; they never render and never wait on vendors.
Rendering is split in two so that hundreds of accounts stay cheap: each account's
families are encoded once per cycle of that account (`render_chunks`), and a snapshot
only stitches the accounts' encoded families together under one header each
(`assemble`), which is byte copying and gzip.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from .families import merge_families

# We emit the classic text format; say so, whatever newer version the library defaults to.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Families:
    """The minimal registry interface prometheus_client's encoders need."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


@dataclass(frozen=True)
class Snapshot:
    text: bytes
    text_gzip: bytes
    openmetrics: bytes
    openmetrics_gzip: bytes

    def body(self, openmetrics: bool, gzipped: bool) -> bytes:
        if openmetrics:
            return self.openmetrics_gzip if gzipped else self.openmetrics
        return self.text_gzip if gzipped else self.text


# (family name, "# HELP/# TYPE/# UNIT" header lines, sample lines) of one family.
Chunk = tuple[bytes, bytes, bytes]
_OM_EOF = b"# EOF\n"


@dataclass(frozen=True)
class Chunks:
    """Some families encoded in both formats, one chunk per family, for `assemble`."""

    text: tuple[Chunk, ...]
    openmetrics: tuple[Chunk, ...]

    @property
    def size(self) -> int:
        """Bytes this part adds to the text exposition (headers shared, counted once)."""
        return sum(len(body) for _, _, body in self.text)


def _chunk(family: Metric, encoded: bytes, header_lines: int) -> Chunk:
    # The library writes a family as its header lines, then one line per sample; label
    # values cannot hold a raw newline (they are escaped), so the first `header_lines`
    # line ends close the header.
    end = -1
    for _ in range(header_lines):
        end = encoded.index(b"\n", end + 1)
    return family.name.encode(), encoded[: end + 1], encoded[end + 1 :]


def render_chunks(families: Iterable[Metric]) -> Chunks:
    """Each family encoded on its own by prometheus_client's encoders (so its escaping
    and number formatting are the library's), then split into header and samples."""
    text: list[Chunk] = []
    om: list[Chunk] = []
    for family in merge_families(families):
        one = _Families([family])
        text.append(_chunk(family, generate_latest(one), 2))
        encoded: bytes = generate_openmetrics(one)  # type: ignore[no-untyped-call]
        om.append(_chunk(family, encoded.removesuffix(_OM_EOF), 3 if family.unit else 2))
    return Chunks(tuple(text), tuple(om))


def _stitch(parts: Iterable[tuple[Chunk, ...]]) -> bytes:
    headers: dict[bytes, bytes] = {}
    samples: dict[bytes, list[bytes]] = {}
    for chunks in parts:
        for name, header, body in chunks:
            if name not in headers:
                headers[name], samples[name] = header, []
            samples[name].append(body)
    return b"".join(headers[name] + b"".join(bodies) for name, bodies in samples.items())


def assemble(parts: Iterable[Chunks]) -> Snapshot:
    parts = list(parts)
    text = _stitch(p.text for p in parts)
    om = _stitch(p.openmetrics for p in parts) + _OM_EOF
    # Level 6 is zlib's default; higher levels cost far more CPU for a few percent.
    return Snapshot(text, gzip.compress(text, 6, mtime=0), om, gzip.compress(om, 6, mtime=0))


def render(families: Iterable[Metric]) -> Snapshot:
    return assemble([render_chunks(families)])


def content_type(openmetrics: bool) -> str:
    return OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE


# Scrapers send the same few header values on every scrape: caching the answer keeps
# header parsing off the hot path (bench/scrape.py). Bounded, so odd clients cannot grow it.
@lru_cache(maxsize=64)
def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept


@lru_cache(maxsize=64)
def wants_gzip(accept_encoding: str) -> bool:
    return any(part.split(";")[0].strip() == "gzip" for part in accept_encoding.split(","))


EMPTY = render(())
EMPTY_CHUNKS = Chunks((), ())
