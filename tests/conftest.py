"""Fixtures every test directory shares. The helpers behind them are plain functions in
tests/support.py (import those directly); vendor set-up is in tests/<vendor>/harness.py."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp.web_app
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


@pytest.fixture(autouse=True)
def forget_served_handlers() -> Iterator[None]:
    """After each test, empty aiohttp's cache of middleware-wrapped handlers (up to 1,024,
    kept for the life of the process). Each held a simulator's bound handler, so every
    simulator a test made lived on with its world: 1.5 million Glance sessions after
    1,300 tests, and full garbage collections of 1.1-1.9 s late in the suite, which
    timed out a 1 s request in test_secrets under CI. Private to aiohttp (3.10 on):
    skipped where it is absent."""
    yield
    cached = getattr(aiohttp.web_app, "_cached_build_middleware", None)
    if cached is not None:
        cached.cache_clear()


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
