"""Metric families -> pre-rendered exposition bytes, built once per collection cycle.

Scrapes only pick one of four byte strings; they never render and never wait on vendors.
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


def render(families: Iterable[Metric]) -> Snapshot:
    registry = _Families(merge_families(families))
    text = generate_latest(registry)
    om: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    # Level 6 is zlib's default; higher levels cost far more CPU for a few percent.
    return Snapshot(text, gzip.compress(text, 6, mtime=0), om, gzip.compress(om, 6, mtime=0))


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
