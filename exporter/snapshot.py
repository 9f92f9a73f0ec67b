"""Metric families -> pre-rendered exposition bytes, built once per collection cycle.

Scrapes only pick one of four byte strings; they never render and never wait on vendors.
Rendering is split in two so that hundreds of accounts stay cheap: each account's
families are encoded once per cycle of that account (`render_chunks`), and a snapshot
only stitches the accounts' encoded families together under one header each
(`assemble`), which is byte copying and gzip.
"""

from __future__ import annotations

import gzip
import re
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


# (family name, "# HELP/# TYPE/# UNIT" header lines, sample lines) of one exposition.
Chunk = tuple[bytes, bytes, bytes]
_OM_EOF = b"# EOF\n"
_HELP = re.compile(rb"^# HELP ", re.MULTILINE)


@dataclass(frozen=True)
class Chunks:
    """Some families encoded in both formats, split per family for `assemble`."""

    text: tuple[Chunk, ...]
    openmetrics: tuple[Chunk, ...]

    @property
    def size(self) -> int:
        """Bytes this part adds to the text exposition (headers shared, counted once)."""
        return sum(len(body) for _, _, body in self.text)


def _split(exposition: bytes) -> tuple[Chunk, ...]:
    # Headers start a line; label values cannot hold a raw newline (they are escaped),
    # so a line starting "# HELP " only ever marks the next family.
    starts = [m.start() for m in _HELP.finditer(exposition)]
    chunks = []
    for start, stop in zip(starts, [*starts[1:], len(exposition)][: len(starts)], strict=True):
        block = exposition[start:stop]
        name = block[7 : block.index(b" ", 7)]
        end = block.index(b"\n", block.index(b"\n# TYPE ") + 1) + 1
        if block.startswith(b"# UNIT ", end):
            end = block.index(b"\n", end) + 1
        chunks.append((name, block[:end], block[end:]))
    return tuple(chunks)


def render_chunks(families: Iterable[Metric]) -> Chunks:
    registry = _Families(merge_families(families))
    text = generate_latest(registry)
    om: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    return Chunks(_split(text), _split(om.removesuffix(_OM_EOF)))


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
