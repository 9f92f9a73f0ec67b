from __future__ import annotations

from pathlib import Path

from exporter.config import parse_config
from exporter.loop import Daemon
from exporter.simulators.clock import FakeClock
from exporter.storage import StateStore

from .fakevendor import VENDORS, FakeSimulator
from .support import serve_app


def test_store_round_trip_and_delete(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.save("v", "a", {"cursor": 12.5, "seen": [[1, 2.0]]}, now=1.0)
    store.save("v", "a", {"cursor": 13.5}, now=2.0)
    store.close()
    store = StateStore(tmp_path / "state.db")
    assert store.load("v", "a") == {"cursor": 13.5}
    store.delete("v", "a")
    assert store.load("v", "a") is None


async def test_daemon_saves_after_success_and_restores_on_start(tmp_path: Path) -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url:
        config = parse_config({"fake": [{"name": "acme", "base_url": url,
                                         "token": "s3cret-token"}]}, VENDORS)
        first = Daemon(config, VENDORS, clock=clock, store=StateStore(tmp_path / "s.db"))
        await first.start(schedule=False)
        await first.collect_once("fake", "acme")
        simulator.faults.inject("http_500")
        simulator.value = 99.0
        await first.collect_once("fake", "acme")  # a failed cycle saves nothing new
        await first.stop()

        second = Daemon(config, VENDORS, clock=clock, store=StateStore(tmp_path / "s.db"))
        await second.start(schedule=False)
        restored = second.runners[("fake", "acme")].collector
        assert restored.value == 42.0  # type: ignore[attr-defined]
        await second.stop()
