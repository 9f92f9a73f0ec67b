"""Metric families -> pre-rendered exposition bytes, built once per collection cycle.

Scrapes only pick one of four byte strings; they never render and never wait on vendors.
Rendering is split in two so that thousands of accounts stay cheap: each account's
families are encoded, and deflated, once per cycle of that account (`render_chunks`), and
a snapshot only stitches the accounts' pieces together under one header per family
(`assemble`), which is byte copying and one CRC-32: an unchanged account costs no
encoding and no compression.

The gzip bodies are built from pieces: each family's samples of each account are
compressed on their own as raw deflate ending in a full flush (byte-aligned, no reference
to earlier data), so the pieces can be concatenated in any order into one valid deflate
stream. The gzip member is a fixed header, those pieces in the order of the plain body,
an empty final block, and the plain body's CRC-32 and length (RFC 1952).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import msgspec
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from .encoding import headers, sample_lines
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


# Untracked by the garbage collector (it holds only bytes, so it can be in no cycle): a
# daemon of 2,000 accounts holds about 59,000 chunks, the most numerous objects the
# collector walked, and tuples and dicts holding only untracked objects are untracked too.
class Chunk(msgspec.Struct, frozen=True, gc=False):
    """One family of one account, in one format."""

    name: bytes
    header: bytes  # the "# HELP/# TYPE/# UNIT" lines, shown once per family
    body: bytes  # the sample lines
    deflated: bytes  # `body` as a self-contained deflate piece (see `deflate`)


_OM_EOF = b"# EOF\n"
# Level 6 is zlib's default; higher levels cost far more CPU for a few percent.
_LEVEL = 6
# gzip header (RFC 1952): deflate, no flags, mtime 0 (same bytes, same body), OS unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# What ends every deflate stream: an empty block marked final.
_FINAL_BLOCK = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)


def deflate(data: bytes, compressor: zlib._Compress | None = None) -> bytes:
    """`data` as raw deflate that ends in a full flush: byte-aligned, and referring to
    nothing before it, so it may follow any other such piece. One compressor may make
    many pieces (the flush resets it), which saves setting one up per piece. Nothing
    for nothing: most accounts' failure counters are empty, and a flush costs 5 bytes."""
    if not data:
        return b""
    compressor = compressor or zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


# Headers are the same for every account of a family: deflate each once. Bounded, so
# families that come and go cannot grow it.
_deflated_header = lru_cache(maxsize=4096)(deflate)


def gzip_member(plain: bytes, pieces: Iterable[bytes]) -> bytes:
    """The gzip file of `plain`, given `plain` as deflate pieces in order."""
    trailer = struct.pack("<II", zlib.crc32(plain), len(plain) & 0xFFFFFFFF)
    return b"".join((_GZIP_HEADER, *pieces, _FINAL_BLOCK, trailer))


@dataclass(frozen=True)
class Chunks:
    """Some families encoded in both formats, one chunk per family, for `assemble`."""

    text: tuple[Chunk, ...]
    openmetrics: tuple[Chunk, ...]
    # Each family's fingerprint and chunks, by name: the next `render_chunks` of the same
    # account reuses those of the families that did not change.
    by_family: Mapping[str, tuple[int, Chunk, Chunk]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @cached_property
    def size(self) -> int:
        """Bytes this part adds to the text exposition (headers shared, counted once).
        Cached: each render weighs every account against the budget, on the loop, and
        summing 2,000 accounts' chunks each time took up to 27 ms there."""
        return sum(len(chunk.body) for chunk in self.text)


def _chunk(family: Metric, encoded: bytes, header_lines: int, compressor: zlib._Compress) -> Chunk:
    # The library writes a family as its header lines, then one line per sample; label
    # values cannot hold a raw newline (they are escaped), so the first `header_lines`
    # line ends close the header.
    end = -1
    for _ in range(header_lines):
        end = encoded.index(b"\n", end + 1)
    body = encoded[end + 1 :]
    return Chunk(family.name.encode(), encoded[: end + 1], body, deflate(body, compressor))


def _encoded(family: Metric, compressor: zlib._Compress) -> tuple[Chunk, Chunk]:
    """The family's text and OpenMetrics chunks: its sample lines written once for both
    (`encoding.sample_lines`) when they can be, else each format by the library."""
    body = sample_lines(family)
    if body is not None:
        name = family.name.encode()
        text_header, om_header = headers(
            family.name, family.documentation, family.type, family.unit
        )
        deflated = deflate(body, compressor)
        return (Chunk(name, text_header, body, deflated), Chunk(name, om_header, body, deflated))
    one = _Families([family])
    encoded: bytes = generate_openmetrics(one)  # type: ignore[no-untyped-call]
    return (
        _chunk(family, generate_latest(one), 2, compressor),
        _chunk(family, encoded.removesuffix(_OM_EOF), 3 if family.unit else 2, compressor),
    )


def fingerprint(family: Metric) -> int:
    """Equal for two families that encode to the same bytes, but for a 64-bit hash
    collision. Hashing every sample costs a small fraction of encoding it."""
    return hash(
        (
            family.type,
            family.unit,
            family.documentation,
            tuple(
                (
                    s.name,
                    tuple(s.labels.items()),
                    s.value,
                    s.timestamp,
                    None if s.exemplar is None else repr(s.exemplar),
                )
                for s in family.samples
            ),
        )
    )


def render_chunks(families: Iterable[Metric], previous: Chunks | None = None) -> Chunks:
    """Each family encoded on its own, in the bytes prometheus_client's encoders write
    (`_encoded`), as header and samples, the samples also deflated for `assemble`. A
    family unchanged since `previous` (the same account's last encoding) keeps its
    chunks: between two cycles most of an account's families are, and encoding is the
    costly part of a render."""
    known = previous.by_family if previous is not None else {}
    text: list[Chunk] = []
    om: list[Chunk] = []
    by_family: dict[str, tuple[int, Chunk, Chunk]] = {}
    compressor: zlib._Compress | None = None
    for family in merge_families(families):
        mark = fingerprint(family)
        entry = known.get(family.name)
        if entry is None or entry[0] != mark:
            compressor = compressor or zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
            entry = (mark, *_encoded(family, compressor))
        by_family[family.name] = entry
        text.append(entry[1])
        om.append(entry[2])
    return Chunks(tuple(text), tuple(om), by_family)


def _stitch(parts: Iterable[tuple[Chunk, ...]], tail: bytes = b"") -> tuple[bytes, bytes]:
    """The plain body and its gzip: each family's header (the first account's), then
    every account's samples of it, in the order the families first appear."""
    headers: dict[bytes, bytes] = {}
    families: dict[bytes, list[Chunk]] = {}
    for part in parts:
        for chunk in part:
            if chunk.name not in headers:
                headers[chunk.name], families[chunk.name] = chunk.header, []
            families[chunk.name].append(chunk)
    plain: list[bytes] = []
    pieces: list[bytes] = []
    for name, family in families.items():
        plain.append(headers[name])
        pieces.append(_deflated_header(headers[name]))
        plain.extend(chunk.body for chunk in family)
        pieces.extend(chunk.deflated for chunk in family)
    if tail:
        plain.append(tail)
        pieces.append(_deflated_header(tail))
    body = b"".join(plain)
    return body, gzip_member(body, pieces)


def assemble(parts: Iterable[Chunks]) -> Snapshot:
    parts = list(parts)
    text, text_gzip = _stitch(p.text for p in parts)
    om, om_gzip = _stitch((p.openmetrics for p in parts), _OM_EOF)
    return Snapshot(text, text_gzip, om, om_gzip)


def render(families: Iterable[Metric]) -> Snapshot:
    return assemble([render_chunks(families)])


def content_type(openmetrics: bool) -> str:
    return OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE


# Scrapers send the same few header values on every scrape: caching the answer keeps
# header parsing off the hot path (bench/scrape.py). Bounded, so odd clients cannot grow it.
@lru_cache(maxsize=64)
def wants_openmetrics(accept: str) -> bool:
    return _accepts(accept, "application/openmetrics-text")


@lru_cache(maxsize=64)
def wants_gzip(accept_encoding: str) -> bool:
    return _accepts(accept_encoding, "gzip")


def _accepts(header: str, wanted: str) -> bool:
    """Whether a header's list names `wanted` (any case) with a weight above zero:
    `gzip;q=0` means "not gzip" (RFC 9110), and was answered gzipped."""
    for part in header.split(","):
        name, *parameters = part.split(";")
        if name.strip().casefold() != wanted:
            continue
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().casefold() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


EMPTY = render(())
EMPTY_CHUNKS = Chunks((), ())
