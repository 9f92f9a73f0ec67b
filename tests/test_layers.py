"""The daemon's layers: no import cycle between config and vendors, and no blocking
storage work on the event loop."""

from __future__ import annotations

import ast
import threading
from pathlib import Path
from typing import Any

from exporter.config import parse_config
from exporter.loop import Daemon
from exporter.simulators.clock import FakeClock
from exporter.storage import StateStore

from .fakevendor import VENDORS, FakeSimulator
from .support import serve_app

EXPORTER = Path(__file__).resolve().parent.parent / "exporter"


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, type-checking-only imports included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_config_and_accounts_never_import_the_vendor_layer() -> None:
    for module in ("config.py", "accounts.py"):
        imports = imported_modules(EXPORTER / module)
        assert not any("vendors" in name for name in imports), (module, imports)


def test_each_layer_imports_only_the_layers_below_it() -> None:
    # scheduler knows nothing of rendering or storage; render and persistence nothing
    # of each other; only the daemon composes them.
    forbidden = {
        "scheduler.py": {".render", ".persistence", ".storage", ".loop"},
        "render.py": {".persistence", ".storage", ".loop"},
        "persistence.py": {".render", ".loop"},
    }
    for module, names in forbidden.items():
        assert not imported_modules(EXPORTER / module) & names, module


class ThreadSpy:
    """Records which thread each store read ran in."""

    def __init__(self, store: StateStore) -> None:
        self.threads: list[str] = []
        original = store._read_saved

        def read(vendor: str, account: str) -> tuple[dict[str, Any] | None, bool]:
            self.threads.append(threading.current_thread().name)
            return original(vendor, account)

        store._read_saved = read  # type: ignore[method-assign]


async def test_state_is_restored_in_the_writer_thread_at_start_and_after_a_reload(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url:
        accounts = [{"name": n, "base_url": url, "token": "s3cret-token"} for n in ("a", "b")]
        both = parse_config({"fake": accounts}, VENDORS)
        first = Daemon(both, VENDORS, clock=clock, store=StateStore(tmp_path / "s.db"))
        await first.start(schedule=False)
        simulator.value = 7.0
        await first.collect_all_once()
        await first.stop()

        store = StateStore(tmp_path / "s.db")
        spy = ThreadSpy(store)
        only_a = parse_config({"fake": accounts[:1]}, VENDORS)
        second = Daemon(only_a, VENDORS, clock=clock, store=store)
        await second.start(schedule=False)
        try:
            assert second.runners[("fake", "a")].collector.value == 7.0  # type: ignore[attr-defined]
            assert spy.threads and all(t.startswith("state-store") for t in spy.threads)
            # An account added by a reload restores its state before its first cycle,
            # also in the writer thread, never on the loop.
            second.apply_config(both)
            added = second.runners[("fake", "b")]
            assert added.collector.value is None  # type: ignore[attr-defined]
            simulator.faults.inject("http_500")
            assert not await second.collect_once("fake", "b")
            assert added.collector.value == 7.0  # type: ignore[attr-defined]
            assert len(spy.threads) == 2
            assert all(t.startswith("state-store") for t in spy.threads)
        finally:
            await second.stop()


async def test_a_removed_account_forgets_its_saved_state(tmp_path: Path) -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url:
        accounts = [{"name": n, "base_url": url, "token": "s3cret-token"} for n in ("a", "b")]
        daemon = Daemon(
            parse_config({"fake": accounts}, VENDORS),
            VENDORS,
            clock=clock,
            store=StateStore(tmp_path / "s.db"),
        )
        await daemon.start(schedule=False)
        await daemon.collect_all_once()
        daemon.apply_config(parse_config({"fake": accounts[:1]}, VENDORS))
        await daemon.stop()
    store = StateStore(tmp_path / "s.db")
    try:
        assert store.load("fake", "b") is None
        assert store.load("fake", "a") == {"value": 42.0}
    finally:
        store.close()


async def test_ready_is_published_with_the_snapshot_that_shows_it() -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url:
        config = parse_config(
            {"fake": [{"name": "a", "base_url": url, "token": "s3cret-token"}]}, VENDORS
        )
        daemon = Daemon(config, VENDORS, clock=clock)
        await daemon.start(schedule=False)
        try:
            assert not daemon.ready()
            await daemon.cycle(daemon.runners[("fake", "a")])  # done, not rendered yet
            assert not daemon.ready()
            snapshot = await daemon.render_off_loop()
            # Encoded, but /metrics still serves the old snapshot: not ready yet.
            assert not daemon.ready() and b"fake_value" not in daemon.snapshot.text
            daemon.snapshot = snapshot
            assert daemon.ready() and b"fake_value" in daemon.snapshot.text
        finally:
            await daemon.stop()
