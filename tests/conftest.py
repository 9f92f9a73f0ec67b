"""Fixtures every test directory shares. The helpers behind them are plain functions in
tests/support.py (import those directly); vendor set-up is in tests/<vendor>/harness.py."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exporter.logs import configure
from exporter.simulators.clock import FakeClock
from exporter.vendors.base import CollectorContext

from .support import ContextFactory, FamilySamples, collector_context, family_samples


def pytest_configure() -> None:
    configure("debug", "logfmt")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from the current code (review the diff)",
    )


@pytest.fixture
def unused_port() -> Iterator[int]:
    """A loopback port bound (not listening) for the whole test: connecting to it is
    refused, and no other process can take it meanwhile. For a server of our own, bind
    port 0 instead and read the port back (support.serve_app, support.start_exporter)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.fixture
def make_context() -> ContextFactory:
    """make_context(clock, **options) -> (a collector's context, its reject counter)."""

    def make(clock: FakeClock, **options: Any) -> tuple[CollectorContext, Counter[str]]:
        rejects: Counter[str] = Counter()
        return collector_context(clock, rejects, **options), rejects

    return make


@pytest.fixture
def read_metrics() -> Callable[..., FamilySamples]:
    """read_metrics(families) -> {(sample name, sorted labels): value}."""
    return family_samples
