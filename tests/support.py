"""Helpers shared by every test: the real daemon against simulators over loopback, the
real process on a port it binds itself, metric readers, tools that may be missing.

Fixtures built on these are in tests/conftest.py; vendor-specific set-up is in
tests/<vendor>/harness.py. Test modules import from here, never from each other."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
import structlog
from aiohttp import web
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from exporter.clock import Clock
from exporter.config import parse_config
from exporter.loop import Daemon
from exporter.simulators.base import Simulator
from exporter.simulators.clock import FakeClock
from exporter.vendors.base import CollectorContext, Vendor


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp app on 127.0.0.1 on a free port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def daemon_for(
    config_data: Mapping[str, Any], vendors: Mapping[str, Vendor], clock: FakeClock
) -> AsyncIterator[Daemon]:
    daemon = Daemon(parse_config(config_data, vendors), vendors, clock=clock, seed=1)
    await daemon.start(schedule=False)
    try:
        yield daemon
    finally:
        await daemon.stop()


S = TypeVar("S", bound=Simulator)


@asynccontextmanager
async def simulated(
    new_simulator: Callable[[Clock, int], S], clock: FakeClock, seed: int = 7
) -> AsyncIterator[tuple[S, str]]:
    """A simulator (a class of exporter.simulators, or SIMULATORS[name]) on loopback."""
    simulator = new_simulator(clock, seed)
    async with serve_app(simulator.app()) as base_url:
        yield simulator, base_url


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse exposition text into {(sample name, sorted labels): value}."""
    result = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            result[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return result


def value(text: bytes, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def series_names(text: bytes) -> set[str]:
    return {name for name, _ in samples(text)}


# -- tools and the real process ------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def skip_or_fail(message: str) -> NoReturn:
    """Skip a check that cannot run here, except in CI (SESSION_EXPORTER_REQUIRE_TOOLS),
    where .ci/run installs everything and a skip would hide a broken check."""
    if os.environ.get("SESSION_EXPORTER_REQUIRE_TOOLS"):
        pytest.fail(f"{message} (required here)")
    pytest.skip(message)


def require_tool(name: str) -> None:
    """Skip when a real tool (promtool, prometheus, amtool) is absent, fail in CI."""
    if shutil.which(name) is None:
        skip_or_fail(f"{name} not installed")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, bytes(exc.read())
    except OSError:
        return 0, b""


def wait_for(predicate: Callable[[], object], deadline: float) -> bool:
    """Poll an external process until `predicate` holds: waiting on another process,
    not sleeping to synchronise our own code."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


_LISTENING = re.compile(r"listening.*?address=\"?[^\s\"]*:(\d+)")


def listening_port(log: str) -> list[int]:
    """The ports of every `listening` line in an exporter's log, in order."""
    return [int(m.group(1)) for m in _LISTENING.finditer(log)]


class Exporter:
    """`python -m exporter` started on port 0: the server binds a free port itself and we
    read it back from its `listening` log line, so no other process can take it between."""

    def __init__(
        self, *args: str, env: Mapping[str, str] | None = None, startup: float = 30.0
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args, "--web.listen-address", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        port = None
        if wait_for(lambda: self._port() is not None or self.proc.poll() is not None, startup):
            port = self._port()
        if port is None:
            self.kill()
            raise AssertionError(f"the exporter did not start listening: {self.log()}")
        self.url = f"http://127.0.0.1:{port}"

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.append(line)

    def _port(self) -> int | None:
        ports = listening_port("".join(list(self._lines)))
        return ports[0] if ports else None

    def log(self) -> str:
        """Everything it logged so far (all of it once it has exited)."""
        if self.proc.poll() is not None:
            self._reader.join(timeout=5)
        return "".join(self._lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def start_exporter(*args: str, env: Mapping[str, str] | None = None) -> Iterator[Exporter]:
    exporter = Exporter(*args, env=env)
    try:
        yield exporter
    finally:
        exporter.kill()


@contextmanager
def demo(*extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The demo as users start it (faults off), on a port it binds itself."""
    with start_exporter("--demo", "--demo.fault-rate", "0", *extra) as exporter:
        yield exporter.proc, exporter.url


def openssl(args: list[str]) -> None:
    """Run openssl. It blocks: call it while setting up, before any server of the test
    runs on the event loop."""
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_cert(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by openssl."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    openssl(
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ]
    )
    return cert, key


# -- collectors without the daemon ---------------------------------------------------------

FamilySamples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# The conftest fixture `make_context`: (clock, **options) -> (context, reject counter).
ContextFactory = Callable[..., tuple[CollectorContext, Counter[str]]]


def family_samples(families: Iterable[Metric]) -> FamilySamples:
    """{(sample name, sorted labels): value} of metric families, as /metrics shows them."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families
        for s in family.samples
    }


def collector_context(
    clock: Clock,
    rejects: Counter[str],
    *,
    started_at: float | None = None,
    label_limit: int = 50,
    log: Any = None,
    **limits: int,
) -> CollectorContext:
    """The context the daemon gives a collector, counting rejected records in `rejects`;
    `limits` sets max_records_per_reply and the other GlobalConfig bounds."""

    def reject(reason: str, count: int) -> None:
        rejects[reason] += count

    return CollectorContext(
        clock=clock,
        log=structlog.get_logger() if log is None else log,
        label_value_limit=label_limit,
        reject=reject,
        started_at=clock.time() if started_at is None else started_at,
        **limits,
    )
