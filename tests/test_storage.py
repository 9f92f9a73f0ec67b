from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from exporter.config import parse_config
from exporter.loop import Daemon
from exporter.simulators.clock import FakeClock
from exporter.storage import StateStore, _refuse_read_only

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


@pytest.mark.parametrize(
    "table",
    [
        "account_state (vendor TEXT, account TEXT, state TEXT)",  # no saved_at
        "account_state (vendor TEXT NOT NULL, account TEXT NOT NULL, saved_at REAL NOT NULL, "
        "state TEXT NOT NULL, extra TEXT, PRIMARY KEY (vendor, account))",
        "account_keys (vendor TEXT NOT NULL, account TEXT NOT NULL, tbl TEXT NOT NULL, "
        "key TEXT NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (vendor, account, key))",
    ],
)
def test_a_file_whose_tables_have_another_shape_is_refused_at_open(
    tmp_path: Path, table: str
) -> None:
    # Opened as ours, every save failed, cycle after cycle, and nothing was kept.
    path = tmp_path / "state.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"CREATE TABLE {table}")
        db.commit()
    before = path.read_bytes()
    with pytest.raises(sqlite3.DatabaseError, match="has another shape"):
        StateStore(path)  # `cli` logs it, "cannot open --storage.path", and exits 2
    # Refused as it was: not turned to WAL, no table of ours added to another's file.
    assert path.read_bytes() == before
    assert not path.with_name("state.db-wal").exists()


def test_a_state_that_is_json_but_not_an_object_is_refused_not_skipped(
    tmp_path: Path,
) -> None:
    # Skipped without a word, the account started afresh and counted its lookback again.
    store = StateStore(tmp_path / "state.db")
    store.save("v", "a", {"cursor": 1.0}, now=1.0)
    store.close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE account_state SET state = '[1, 2]'")
    store = StateStore(tmp_path / "state.db")
    with pytest.raises(ValueError, match="not a JSON object"):
        store.load("v", "a")  # persistence logs it: "saved state unreadable; starting afresh"


def test_a_failed_commit_raises_its_own_error_not_the_rollbacks(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.save("v", "a", {"cursor": 1.0}, now=1.0)
    db = store._db  # a commit that fails after ending its transaction, as a full disk does

    class FullDisk:
        def execute(self, statement: str, *args: Any) -> object:
            if statement == "COMMIT":
                db.execute("ROLLBACK")  # SQLite ends the transaction itself
                raise sqlite3.OperationalError("database or disk is full")
            return db.execute(statement, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(db, name)

    store._db = FullDisk()  # type: ignore[assignment]
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        store.save("v", "a", {"cursor": 2.0}, now=2.0)
    store._db = db
    assert store.load("v", "a") == {"cursor": 1.0}


async def test_daemon_saves_after_success_and_restores_on_start(tmp_path: Path) -> None:
    clock = FakeClock()
    simulator = FakeSimulator(clock, 1)
    async with serve_app(simulator.app()) as url:
        config = parse_config(
            {"fake": [{"name": "acme", "base_url": url, "token": "s3cret-token"}]}, VENDORS
        )
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


def test_a_damaged_file_is_refused_at_open(tmp_path: Path) -> None:
    # One page overwritten: opened, some accounts started afresh, then every save of
    # every account failed, each with a traceback, and nothing recovered.
    path = tmp_path / "state.db"
    store = StateStore(path)
    for n in range(200):
        store.save("v", f"a{n}", {"cursor": float(n), "seen": [[i, 2.0] for i in range(50)]}, 1.0)
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * page_size
    data[3 * page_size : 4 * page_size] = b"\xa5" * page_size  # page 4
    path.write_bytes(bytes(data))
    with pytest.raises(sqlite3.DatabaseError, match=r"the file is damaged .*: restore a copy"):
        StateStore(path)  # `cli` logs it, "cannot open --storage.path", and exits 2


def test_a_file_that_cannot_be_opened_as_it_is_is_not_called_damaged(tmp_path: Path) -> None:
    # Found by a probe: a `-wal` that is a directory (or a read-only directory) was
    # reported as a damaged file, with the advice to move it away: good state thrown out.
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.save("v", "a", {"cursor": 1.0}, 1.0)
    store.close()
    (tmp_path / "state.db-wal").mkdir()
    with pytest.raises(sqlite3.OperationalError, match="cannot be used") as info:
        StateStore(path)
    assert "damaged" not in str(info.value) and "-wal" in str(info.value)


def test_a_file_in_use_by_another_store_is_refused_until_it_is_closed(tmp_path: Path) -> None:
    # Found by a probe: two exporters on one file each saved only their own changes over
    # the other's; a reload in one deleted the other's dedupe keys, and after a restart
    # the other counted sessions again.
    path = tmp_path / "state.db"
    first = StateStore(path)
    first.save("v", "a", {"cursor": 1.0}, 1.0)
    with pytest.raises(sqlite3.OperationalError, match="in use by another session-exporter"):
        StateStore(path)
    assert first.load("v", "a") == {"cursor": 1.0}  # the refused one changed nothing
    first.close()
    second = StateStore(path)  # the lock goes with the store that held it
    assert second.load("v", "a") == {"cursor": 1.0}
    second.close()


def test_a_file_that_can_only_be_read_is_refused_at_open(tmp_path: Path) -> None:
    # Probe 13: SQLite opens such a file read-only without a word, and every save then
    # failed, each with a traceback. Opened read-only here as SQLite opens it then.
    path = tmp_path / "state.db"
    StateStore(path).close()
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        with pytest.raises(sqlite3.OperationalError, match="cannot be written"):
            _refuse_read_only(db, path)
        assert not db.in_transaction
