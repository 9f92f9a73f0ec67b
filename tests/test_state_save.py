"""Saving durable state (--storage.path) by its changes: the dedupe memory journals what
was added, refreshed and forgotten; the store writes that, with the small blob, in one
transaction; a failed or cancelled save makes the next one whole; old rows still load."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import structlog.testing

from exporter.dedupe import DedupeFull, KeyJournal, SeenRecords
from exporter.persistence import Persistence
from exporter.savedstate import KeyedChanges, SavedState
from exporter.scheduler import AccountRunner
from exporter.selfmetrics import RESTORE_FAILURE_SHOWN, SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.storage import StateGap, StateStore

RETENTION, SLACK = 3600.0, 600.0


class Remembering:
    """The durable-state half of a collector: a count and the ids it was counted from."""

    def __init__(self) -> None:
        self.seen = SeenRecords(RETENTION, slack=SLACK)
        self.count = 0
        self.taken: list[SavedState] = []  # every state saved_state() gave

    def see(self, keys: list[Any], now: float) -> None:
        self.count += sum(self.seen.add(key, now) for key in keys)

    def saved_state(self) -> SavedState:
        saved = SavedState({"count": self.count}, {"seen": self.seen.changes()})
        self.taken.append(saved)
        return saved

    def state_unsaved(self) -> None:
        self.seen.unsaved()

    def restore(self, state: dict[str, Any]) -> None:
        if not isinstance(state["count"], int):  # as a collector checks before it applies
            raise ValueError("state count is not a number")
        self.count = state["count"]
        self.seen.load_state(state["seen"])

    def restored_from_store(self) -> None:
        self.seen.journal.in_store()


def runner(collector: Remembering, name: str = "a") -> AccountRunner:
    return cast(
        AccountRunner,
        SimpleNamespace(
            collector=collector, common=SimpleNamespace(vendor="v", name=name), restored=False
        ),
    )


def stored_keys(path: Path) -> dict[Any, float]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT entry FROM account_keys").fetchall()
    return {_hashable(json.loads(entry)[0]): json.loads(entry)[1] for (entry,) in rows}


def stored_blob(path: Path) -> dict[str, Any]:
    with sqlite3.connect(path) as db:
        (text,) = db.execute("SELECT state FROM account_state").fetchone()
    blob = json.loads(text)
    assert isinstance(blob, dict)
    return blob


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def fail_on_key(path: Path, key: Any) -> None:
    """A write that fails half-way: the keys before it are written, then SQLite aborts."""
    with sqlite3.connect(path) as db:
        db.execute(
            f"CREATE TRIGGER boom BEFORE INSERT ON account_keys "
            f"WHEN NEW.key = '{json.dumps(key)}' BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )


def heal(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER boom")


def restarted(path: Path) -> Remembering:
    store = StateStore(path)
    state = store.load("v", "a")
    store.close()
    assert state is not None
    fresh = Remembering()
    fresh.restore(state)
    return fresh


def test_re_seen_keys_move_in_slack_steps_and_are_never_forgotten_early() -> None:
    seen = SeenRecords(RETENTION, slack=SLACK)
    seen.changes()  # the first save: from now on changes are journalled
    rng = random.Random(5)
    last: dict[int, float] = {}
    now = 0.0
    rewrites = 0
    for _ in range(600):
        now += 60.0
        for key in rng.sample(range(200), 40):
            seen.add(key, now)
            last[key] = now
        seen.prune(now - 60.0)
        for key, when in last.items():
            if now - 60.0 < when + RETENTION:  # not due: must still be remembered
                assert key in seen
        changes = seen.changes()
        rewrites += len(changes.upserts)
    # 40 sightings a minute; an expiry moves at most once per SLACK per key.
    assert rewrites <= 200 * (600 * 60.0 / SLACK + 1)
    assert rewrites < 600 * 40 / 2  # without the slack: every sighting


def test_shortest_keys_are_kept_past_their_earliest_time_and_journalled_when_moved() -> None:
    seen = SeenRecords(RETENTION, slack=SLACK)
    seen.changes()
    assert seen.add_shortest("a", 1000.0)
    assert not seen.add_shortest("a", 5000.0)  # a later read: kept as it was
    assert seen.changes().upserts == {"a": 1000.0 + RETENTION + SLACK}
    assert not seen.add_shortest("a", 500.0)  # a shorter read: brought forward
    assert seen.changes().upserts == {"a": 500.0 + RETENTION + SLACK}
    seen.prune(500.0 + RETENTION + SLACK - 1)
    assert "a" in seen
    seen.prune(500.0 + RETENTION + SLACK)
    assert "a" not in seen
    seen.prune(1000.0 + RETENTION + SLACK)  # its stale heap entry: skipped
    assert len(seen) == 0
    assert seen.add_shortest("a", 2000.0)  # new again after it was forgotten


def test_keys_brought_forward_again_and_again_keep_the_heap_bounded() -> None:
    # Found by a review: each halved re-read pushed a second heap entry per key brought
    # forward, 25,569 entries for 5,000 keys.
    seen = SeenRecords(RETENTION)
    for key in range(5000):
        seen.add_shortest(key, 10_000.0)
    for read_end in (9000.0, 8000.0, 7000.0, 6000.0, 5000.0):
        for key in range(5000):
            seen.add_shortest(key, read_end)
    assert len(seen._heap) <= 2 * 5000 + 1024
    seen.prune(5000.0 + RETENTION)
    assert len(seen) == 0


def test_a_batch_is_remembered_whole_or_not_at_all() -> None:
    seen = SeenRecords(RETENTION, limit=3)
    seen.make_room(["a", "b", "b", "c"])
    for key in "abc":
        seen.add(key, 0.0)
    seen.make_room(["a", "c"])  # nothing new: fits
    with pytest.raises(DedupeFull, match="1 more do not fit in 3"):
        seen.make_room(["a", "d"])
    with pytest.raises(DedupeFull, match="fit in 2 "):
        seen.make_room(["a"], within=2)  # a lower bound for this batch
    assert len(seen) == 3
    SeenRecords(RETENTION).make_room(range(10**4))  # no limit


def test_only_what_changed_is_taken_and_written(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = StateStore(path)
    c = Remembering()
    c.see(list(range(1000)), 0.0)
    first = c.saved_state().tables["seen"]
    assert first.whole and len(first.upserts) == 1000
    store.save("v", "a", SavedState({"count": c.count}, {"seen": first}), 0.0)
    # New ids, and the old ones seen again: not yet due for a refresh, so unchanged.
    c.see(list(range(1000, 3000)) + list(range(1000)), 300.0)
    changes = c.saved_state().tables["seen"]
    assert (changes.whole, len(changes.upserts), len(changes.deletes)) == (False, 2000, 0)
    store.save("v", "a", SavedState({"count": c.count}, {"seen": changes}), 300.0)
    # The first thousand expire; the others live on.
    c.seen.prune(RETENTION + SLACK + 1.0)
    assert len(c.seen) == 2000
    changes = c.saved_state().tables["seen"]
    assert (len(changes.upserts), len(changes.deletes)) == (0, 1000)
    changes_before = store._db.total_changes
    store.save("v", "a", SavedState({"count": c.count}, {"seen": changes}), 4300.0)
    assert store._db.total_changes - changes_before == 1 + 1000  # the blob and the deletes
    store.close()
    assert stored_keys(path) == c.seen._expiry
    assert stored_blob(path)["count"] == 3000


def test_restart_restores_keys_expiries_and_counts_exactly(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    clock = FakeClock(1000.0)
    store = StateStore(path)
    persistence = Persistence(store, clock, SelfMetrics())
    c = Remembering()
    rng = random.Random(3)

    async def cycles() -> None:
        for step in range(40):
            clock.advance(60.0)
            c.see(
                [rng.randrange(3000) for _ in range(100)] + [("tuple", step, rng.randrange(3))],
                clock.time(),
            )
            c.seen.prune(clock.time() - 900.0)
            await persistence.save(runner(c))

    asyncio.run(cycles())
    persistence.close()
    back = restarted(path)
    assert back.count == c.count
    assert back.seen._expiry == c.seen._expiry
    assert any(isinstance(key, tuple) for key in back.seen._expiry)  # tuples stay tuples
    # The restored memory goes on as the original: its first save is whole.
    assert back.saved_state().tables["seen"].whole


def test_a_failed_write_then_a_good_one_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    clock = FakeClock(0.0)
    persistence = Persistence(StateStore(path), clock, SelfMetrics())
    c = Remembering()

    async def scenario() -> None:
        c.see([1, 2, 3], clock.time())
        await persistence.save(runner(c))
        fail_on_key(path, "boom")
        clock.advance(60.0)
        c.see([4, "boom", 5], clock.time())  # this cycle's save fails half-way
        await persistence.save(runner(c))
        heal(path)
        clock.advance(60.0)
        c.see([6], clock.time())  # the next save alone would only have id 6
        await persistence.save(runner(c))

    asyncio.run(scenario())
    persistence.close()
    assert stored_keys(path) == c.seen._expiry
    assert set(stored_keys(path)) == {1, 2, 3, 4, "boom", 5, 6}
    assert restarted(path).count == 7


def test_a_failed_save_is_counted_and_shown_until_a_save_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    clock = FakeClock(0.0)
    metrics = SelfMetrics()
    persistence = Persistence(StateStore(path), clock, metrics)
    c = Remembering()
    r = runner(c)

    def failures() -> dict[str, float]:
        return {k[2]: v for k, v in metrics.state_failures.values.items() if k[:2] == ("v", "a")}

    async def scenario() -> None:
        await persistence.restore(r)
        # Both series exist before anything fails, so that increase() sees the first.
        assert failures() == {"restore": 0.0, "save": 0.0}
        c.see([1], clock.time())
        await persistence.save(r)
        assert metrics.account(("v", "a")).state_failure is None
        fail_on_key(path, "boom")
        clock.advance(60.0)
        c.see(["boom"], clock.time())
        await persistence.save(r)
        assert failures() == {"restore": 0.0, "save": 1.0}
        shown = metrics.account(("v", "a")).state_failure
        assert shown is not None
        assert (shown.operation, shown.at) == ("save", 60.0)
        assert shown.message == "IntegrityError: boom"
        heal(path)
        clock.advance(60.0)
        await persistence.save(r)

    asyncio.run(scenario())
    persistence.close()
    assert failures() == {"restore": 0.0, "save": 1.0}  # a counter: the failure stays counted
    assert metrics.account(("v", "a")).state_failure is None  # but the page shows it no more


def test_an_unusable_saved_state_is_counted_as_a_failed_restore(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = StateStore(path)
    store.save("v", "a", SavedState({"count": "not a number"}, {}), 0.0)
    store.close()
    metrics = SelfMetrics()
    clock = FakeClock(60.0)
    persistence = Persistence(StateStore(path), clock, metrics)
    c = Remembering()
    r = runner(c)

    async def scenario() -> None:
        await persistence.restore(r)
        assert metrics.state_failures.values[("v", "a", "restore")] == 1.0
        shown = metrics.account(("v", "a")).state_failure
        assert shown is not None and shown.operation == "restore"
        # The first good save comes an interval later: the failed restore stays shown
        # (cleared then, nobody opening the page a minute later saw why counts restarted),
        clock.advance(60.0)
        c.see([1], clock.time())
        await persistence.save(r)
        assert metrics.account(("v", "a")).state_failure == shown
        # for an hour.
        clock.advance(RESTORE_FAILURE_SHOWN)
        c.see([2], clock.time())
        await persistence.save(r)
        assert metrics.account(("v", "a")).state_failure is None

    asyncio.run(scenario())
    persistence.close()


def test_a_write_killed_half_way_leaves_the_last_complete_cycle(tmp_path: Path) -> None:
    """Blob and keys are one transaction: a failure among the keys keeps the old blob."""
    path = tmp_path / "s.db"
    store = StateStore(path)
    c = Remembering()
    c.see([1, 2], 0.0)
    store.save("v", "a", c.saved_state(), 0.0)
    fail_on_key(path, "boom")
    c.see([3, "boom"], 60.0)
    with pytest.raises(sqlite3.IntegrityError):
        store.save("v", "a", c.saved_state(), 60.0)
    # Changes alone cannot follow a failed write: they would miss id 3.
    c.state_unsaved()
    c.see([7], 120.0)
    heal(path)
    with pytest.raises(StateGap):
        store.save(
            "v", "a", SavedState({"count": 99}, {"seen": KeyedChanges(False, {8: 1.0})}), 120.0
        )
    store.close()
    assert stored_blob(path)["count"] == 2
    assert set(stored_keys(path)) == {1, 2}
    assert restarted(path).count == 2
    # The whole state that follows the failure is complete.
    store = StateStore(path)
    store.save("v", "a", c.saved_state(), 180.0)
    store.close()
    assert set(stored_keys(path)) == {1, 2, 3, "boom", 7}


def test_a_cancelled_save_makes_the_next_whole(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    clock = FakeClock(0.0)
    persistence = Persistence(StateStore(path), clock, SelfMetrics())
    c = Remembering()

    async def scenario() -> None:
        c.see([1], 0.0)
        await persistence.save(runner(c))
        c.see([2], 60.0)
        task = asyncio.create_task(persistence.save(runner(c)))
        await asyncio.sleep(0)  # taken on the loop, handed to the writer
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert c.saved_state().tables["seen"].whole

    asyncio.run(scenario())
    persistence.close()


def test_an_old_whole_state_row_loads_and_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as db:  # as the store wrote it before keys had a table
        db.execute(
            "CREATE TABLE account_state (vendor TEXT NOT NULL, account TEXT NOT NULL, "
            "saved_at REAL NOT NULL, state TEXT NOT NULL, PRIMARY KEY (vendor, account))"
        )
        db.execute(
            "INSERT INTO account_state VALUES ('v', 'a', 1.0, ?)",
            (json.dumps({"count": 3, "seen": [[1, 4000.0], [[2, "x"], 4100.0]]}),),
        )
    c = restarted(path)
    assert c.count == 3 and c.seen._expiry == {1: 4000.0, (2, "x"): 4100.0}
    c.see([9], 100.0)
    store = StateStore(path)
    store.save("v", "a", c.saved_state(), 100.0)
    store.close()
    assert "seen" not in stored_blob(path)
    assert restarted(path).seen._expiry == c.seen._expiry


def test_removing_an_account_deletes_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = StateStore(path)
    for account in ("a", "b"):  # another account keeps its own
        c = Remembering()
        c.see([1, 2], 0.0)
        store.save("v", account, c.saved_state(), 0.0)
    store.delete("v", "a")
    assert store.load("v", "a") is None
    assert store.load("v", "b") is not None
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT DISTINCT account FROM account_keys").fetchall() == [("b",)]


def test_without_saves_the_journal_stays_empty() -> None:
    """No store: nothing journalled, so memory is the remembered keys alone."""
    seen = SeenRecords(RETENTION, slack=SLACK)
    for step in range(100):
        seen.add(step, step * 100.0)
        seen.prune(step * 100.0)
    assert not seen.journal.dirty and not seen.journal.deleted


def test_a_key_dropped_without_notice_is_saved_as_deleted() -> None:
    journal: KeyJournal[int] = KeyJournal()
    entries = {1: 1.0, 2: 2.0}
    journal.take(entries)
    journal.changed(1)
    journal.changed(2)
    del entries[2]
    changes = journal.take(entries)
    assert (dict(changes.upserts), set(changes.deletes)) == ({1: 1.0}, {2})


def test_save_all_saves_the_others_when_one_fails(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    persistence = Persistence(StateStore(path), FakeClock(0.0), SelfMetrics())
    failing, fine = Remembering(), Remembering()
    failing.see(["boom"], 0.0)
    fine.see([1, 2], 0.0)
    fail_on_key(path, "boom")
    asyncio.run(persistence.save_all([runner(failing, "a"), runner(fine, "b")]))
    persistence.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT account FROM account_state").fetchall() == [("b",)]
    assert failing.saved_state().tables["seen"].whole  # the next try writes it all


def test_a_restart_from_the_keys_table_saves_changes_alone(tmp_path: Path) -> None:
    """Restored from `account_keys`, the memory is what the store holds: its first save
    writes what changed since, not every id."""
    path = tmp_path / "s.db"
    clock = FakeClock(0.0)

    async def run(c: Remembering, keys: list[Any]) -> None:
        persistence = Persistence(StateStore(path), clock, SelfMetrics())
        await persistence.restore(runner(c))
        clock.advance(60.0)
        c.see(keys, clock.time())
        await persistence.save(runner(c))
        persistence.close()

    first = Remembering()
    asyncio.run(run(first, list(range(500))))
    second = Remembering()
    asyncio.run(run(second, [1000, 1001]))
    (taken,) = second.taken
    assert (taken.tables["seen"].whole, len(taken.tables["seen"].upserts)) == (False, 2)
    assert stored_keys(path) == second.seen._expiry and len(second.seen) == 502
    assert restarted(path).count == 502


def test_a_restart_from_an_old_whole_row_saves_every_id(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = StateStore(path)
    store.save("v", "a", {"count": 2, "seen": [[1, 4000.0], [2, 4000.0]]}, 0.0)
    store.close()
    c = Remembering()
    persistence = Persistence(StateStore(path), FakeClock(60.0), SelfMetrics())

    async def run() -> None:
        await persistence.restore(runner(c))
        c.see([3], 60.0)
        await persistence.save(runner(c))

    asyncio.run(run())
    persistence.close()
    (taken,) = c.taken
    assert taken.tables["seen"].whole
    assert set(stored_keys(path)) == {1, 2, 3}


def persisted(tmp_path: Path) -> tuple[Path, FakeClock, SelfMetrics, Persistence]:
    """A store at `tmp_path / "s.db"` behind a Persistence, its clock and its metrics."""
    path = tmp_path / "s.db"
    clock = FakeClock(0.0)
    metrics = SelfMetrics()
    return path, clock, metrics, Persistence(StateStore(path), clock, metrics)


def test_a_state_file_deleted_while_running_is_made_anew_and_written_whole(
    tmp_path: Path,
) -> None:
    # Probe 13: saves went on into the deleted file, nothing was said or counted, and the
    # next start found no state: counters from zero, feeds from now.
    path, clock, metrics, persistence = persisted(tmp_path)
    first, second = Remembering(), Remembering()

    def failed() -> dict[str, float]:
        return {k[1]: v for k, v in metrics.state_failures.values.items() if k[2] == "save"}

    async def cycle(keys: list[Any]) -> None:
        clock.advance(60.0)
        first.see(keys, clock.time())
        second.see([f"b{k}" for k in keys], clock.time())
        await persistence.save(runner(first, "a"))
        await persistence.save(runner(second, "b"))

    def delete_the_file() -> None:
        for leftover in tmp_path.glob("s.db*"):
            if leftover.suffix != ".lock":
                leftover.unlink()

    async def scenario() -> None:
        await cycle([1, 2])
        delete_the_file()
        await cycle([3])  # each account's save fails once, saying why,
        failure = metrics.account(("v", "a")).state_failure
        assert failure is not None and "deleted or replaced" in failure.message
        assert failed() == {"a": 1.0, "b": 1.0}
        await cycle([4])  # and the next writes it whole, into the new file
        assert failed() == {"a": 1.0, "b": 1.0}

    asyncio.run(scenario())
    persistence.close()
    assert path.exists()
    again = restarted(path)
    assert (again.count, set(again.seen._expiry)) == (4, {1, 2, 3, 4})


def test_the_same_save_failure_is_logged_once_an_hour_without_a_traceback(
    tmp_path: Path,
) -> None:
    # Probe 13: a read-only or full disk wrote an ERROR line with its traceback for every
    # account at every cycle; each failure is still counted.
    path, clock, metrics, persistence = persisted(tmp_path)
    c = Remembering()

    async def scenario() -> None:
        c.see([1], clock.time())
        await persistence.save(runner(c))
        fail_on_key(path, "boom")
        for _ in range(5):
            clock.advance(60.0)
            c.see(["boom"], clock.time())
            await persistence.save(runner(c))
        heal(path)
        clock.advance(60.0)
        await persistence.save(runner(c))

    with structlog.testing.capture_logs() as logs:
        asyncio.run(scenario())
    persistence.close()
    failed = [e for e in logs if e["event"].startswith("state not saved")]
    assert [(e["error"], e["exc_info"]) for e in failed] == [("IntegrityError: boom", False)]
    assert metrics.state_failures.values[("v", "a", "save")] == 5.0
    assert [e["event"] for e in logs if e["event"] == "state saved again"] == ["state saved again"]
