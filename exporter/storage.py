"""Optional durable state (--storage.path): feed cursors, dedupe keys and counter values.

Per account: one row holding the small part of its state (cursors, counters, histograms,
as JSON), and one row per remembered dedupe key in `account_keys`. After each successful
cycle the row and the keys that changed (added, refreshed or forgotten) are written in
one transaction, so a process killed at any moment restarts from the last complete
cycle: what completed while it was down is counted when it comes back, and nothing twice.
Rows written before the keys had their own table (the whole state in the one row) still
load.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import math
import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from .savedstate import KeyedChanges, SavedState

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS account_state (
        vendor TEXT NOT NULL,
        account TEXT NOT NULL,
        saved_at REAL NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (vendor, account)
    )
    """,
    # `key` is the JSON of the key (tuples become lists), `entry` the JSON of the whole
    # entry as `state()` lists it, so that loading joins the texts and decodes them once.
    """
    CREATE TABLE IF NOT EXISTS account_keys (
        vendor TEXT NOT NULL,
        account TEXT NOT NULL,
        tbl TEXT NOT NULL,
        key TEXT NOT NULL,
        entry TEXT NOT NULL,
        PRIMARY KEY (vendor, account, tbl, key)
    ) WITHOUT ROWID
    """,
)
# In a row's JSON: the names of the keyed tables whose entries are in `account_keys`. A
# row without it is whole (the older format, or a collector without keyed tables).
KEYED = "_keyed"

_encode = json.JSONEncoder(separators=(",", ":")).encode


def _table_shapes(db: sqlite3.Connection, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's columns as (name, type, not null, default, key position)."""
    return {
        table: [column[1:] for column in db.execute(f"PRAGMA table_info({table})")]
        for table in tables
    }


def _refuse_another_shape(db: sqlite3.Connection, path: Path) -> None:
    """`CREATE TABLE IF NOT EXISTS` leaves a table of the same name as it is: a file of
    another program, or of another version of ours, opened and then failed every save.
    Refused at start instead, with what differs, and before anything is written to it.
    A table not there yet is fine: it is created. The shape wanted is what `SCHEMA`
    makes of an empty database."""
    with contextlib.closing(sqlite3.connect(":memory:")) as fresh:
        for statement in SCHEMA:
            fresh.execute(statement)
        tables = [
            name
            for (name,) in fresh.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        want = _table_shapes(fresh, tables)
    have = _table_shapes(db, tables)
    for table in tables:
        if have[table] and have[table] != want[table]:
            names = ", ".join(str(column[0]) for column in have[table])[:200]
            raise sqlite3.DatabaseError(
                f"{path}: table {table} has another shape ({names}): not this "
                "exporter's state, or another version's; move the file away"
            )


class StateGap(Exception):
    """Changes were offered for an account whose previous write failed: written, they
    would leave out what that write had. The collector must offer its whole state."""


def _refuse_damaged(db: sqlite3.Connection, path: Path) -> None:
    """A damaged file (one page overwritten) opened: some accounts' states read as
    unreadable and started afresh, then every save of every account failed. Refused at
    start instead; `quick_check` reads every page once (not the indexes' contents)."""
    try:
        problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(3)")]
    except sqlite3.OperationalError as exc:
        # Not damage: a file that cannot be opened or read as it is (a read-only
        # directory, a `-wal` that is a directory). Called damaged, the advice to move it
        # away threw good state out (probe 6).
        raise sqlite3.OperationalError(
            f"{path}: cannot be used ({str(exc)[:200]}): check that the file and its "
            "directory are writable by the exporter, and that its -wal and -shm files "
            "are files"
        ) from None
    except sqlite3.DatabaseError as exc:  # most damage: "database disk image is malformed"
        problems = [str(exc)]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError(
            f"{path}: the file is damaged ({'; '.join(problems)[:200]}): restore a copy "
            "or move it away to start afresh"
        )


def _refuse_read_only(db: sqlite3.Connection, path: Path) -> None:
    """SQLite opens a file it may not write read-only, without a word: every save then
    failed, each with its traceback (probe 13). Tried with a row never committed."""
    db.execute("BEGIN")
    try:
        db.execute(
            "INSERT OR REPLACE INTO account_state (vendor, account, saved_at, state) "
            "VALUES ('', '', 0, '{}')"
        )
    except sqlite3.OperationalError as exc:
        raise sqlite3.OperationalError(
            f"{path}: cannot be written ({str(exc)[:200]}): check that the exporter may "
            "write the file"
        ) from None
    finally:
        _roll_back(db)


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`; None when there is none."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


class StateFileReplaced(Exception):
    """The file at the path is not the one the store opened: deleted (or replaced) while
    the exporter ran. Saves went on into the deleted file, which no path names, and
    the next start found no state, with nothing said (probe 13)."""


def _lock_for(path: Path) -> IO[bytes]:
    """An exclusive lock on `<path>.lock`, held while the file is open (released by the
    system if the process dies). Two exporters on one file each saved only their own
    changes over the other's: a reload in one deleted the other's dedupe keys, and
    after a restart the other counted sessions again (found by a probe)."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = open(lock_path, "ab")  # noqa: SIM115 - held open for the store's life
    except OSError as exc:
        raise sqlite3.OperationalError(f"{lock_path}: cannot be opened ({exc.strerror})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise sqlite3.OperationalError(
            f"{path}: in use by another session-exporter (each needs a --storage.path of its own)"
        ) from None
    return handle


class StateStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # One writer thread: saves leave the event loop, stay in order, and never share
        # the connection between two threads at once.
        self._lock = _lock_for(self.path)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-store")
        try:
            self._db = self._open()
        except sqlite3.DatabaseError:
            self._writer.shutdown()
            self._lock.close()
            raise
        self._identity = _identity(self.path)
        # Accounts whose last write failed (touched in the writer thread only): until a
        # whole state is written, changes alone would be applied on top of a gap.
        self._gaps: set[tuple[str, str]] = set()
        # Once the file was made anew (`_check_file`): the accounts written whole since.
        # Any other account's changes alone would leave the rest of its state out.
        self._rewritten: set[tuple[str, str]] | None = None

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            _refuse_damaged(db, self.path)
            _refuse_another_shape(db, self.path)
            # WAL survives a killed process without fsync on every commit.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # Up to 16 MiB of pages cached (SQLite's default is 2): a whole save of
            # 250,000 dedupe keys then does not read back the pages it is writing.
            db.execute("PRAGMA cache_size=-16384")
            for statement in SCHEMA:
                db.execute(statement)
            _refuse_read_only(db, self.path)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _check_file(self) -> None:
        """Raise `StateFileReplaced` if the path no longer names the file open, after
        opening a new one there (each account's next save must then be whole)."""
        if _identity(self.path) == self._identity:
            return
        # Opened first: if it cannot be (its directory gone), this save fails, the open
        # connection stays usable for loads and deletes, and the next save tries again.
        db = self._open()
        self._db.close()
        self._db, self._identity, self._rewritten = db, _identity(self.path), set()
        raise StateFileReplaced(
            f"{self.path}: the file was deleted or replaced while the exporter ran; the "
            "file now at the path is used (made anew if none was there), and each "
            "account's next save writes its whole state"
        )

    def load(self, vendor: str, account: str) -> dict[str, Any] | None:
        return self._writer.submit(self._read, vendor, account).result()

    async def load_async(self, vendor: str, account: str) -> dict[str, Any] | None:
        """`load` in the writer thread: the query and the JSON decoding of a large
        dedupe state stay off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._read, vendor, account)

    async def load_saved_async(
        self, vendor: str, account: str
    ) -> tuple[dict[str, Any] | None, bool]:
        """`load_async`, and whether the state's keyed tables came from `account_keys`:
        the collector that restores it may then save its changes alone from the start,
        where a state from an older, whole row must first be written whole."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._read_saved, vendor, account)

    def _read(self, vendor: str, account: str) -> dict[str, Any] | None:
        return self._read_saved(vendor, account)[0]

    def _read_saved(self, vendor: str, account: str) -> tuple[dict[str, Any] | None, bool]:
        row = self._db.execute(
            "SELECT state FROM account_state WHERE vendor = ? AND account = ?",
            (vendor, account),
        ).fetchone()
        if row is None:
            return None, False
        state = json.loads(row[0])
        if not isinstance(state, dict):
            # Said, not skipped silently: the account starts afresh (its lookback again).
            raise ValueError("saved state is not a JSON object")
        tables = state.pop(KEYED, None)
        if tables is None:
            return state, False  # whole in its row
        if not (isinstance(tables, list) and all(isinstance(t, str) for t in tables)):
            raise ValueError(f"state {KEYED} is not a list of table names")
        for table in tables:
            entries = [
                entry
                for (entry,) in self._db.execute(
                    "SELECT entry FROM account_keys WHERE vendor = ? AND account = ? AND tbl = ?",
                    (vendor, account, table),
                )
            ]
            state[table] = json.loads("[" + ",".join(entries) + "]")
        return state, True

    def save(
        self, vendor: str, account: str, state: dict[str, Any] | SavedState, now: float
    ) -> None:
        """Write one account's state and wait for it (at shutdown, say)."""
        self._writer.submit(self._write, vendor, account, state, now).result()

    async def save_async(
        self, vendor: str, account: str, state: dict[str, Any] | SavedState, now: float
    ) -> None:
        """`save` in the writer thread (JSON encoding and SQL included). Raises
        `StateGap` for changes that cannot be applied, as `save` does."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._write, vendor, account, state, now)

    def _write(
        self, vendor: str, account: str, state: dict[str, Any] | SavedState, now: float
    ) -> None:
        saved = state if isinstance(state, SavedState) else SavedState(state)
        account_key = (vendor, account)
        try:
            self._check_file()
            if not saved.whole and account_key in self._gaps:
                raise StateGap(f"{vendor}/{account}: the previous write failed")
            rewritten = self._rewritten
            if not saved.whole and rewritten is not None and account_key not in rewritten:
                raise StateGap(f"{vendor}/{account}: the state file was made anew")
            self._transaction(vendor, account, saved, now)
        except BaseException:
            # Whatever the failure (encoding, disk, a kill of the thread's work), the
            # changes it held are not in the store: only a whole state may follow.
            self._gaps.add(account_key)
            raise
        self._gaps.discard(account_key)
        if saved.whole and self._rewritten is not None:
            self._rewritten.add(account_key)

    def _transaction(self, vendor: str, account: str, saved: SavedState, now: float) -> None:
        blob = saved.blob
        if saved.tables:
            blob = {**blob, KEYED: sorted(saved.tables)}
        text = json.dumps(blob, separators=(",", ":"))
        # Encoded before the transaction begins: it holds the database for SQL alone.
        tables = [
            (table, changes, _rows(vendor, account, table, changes))
            for table, changes in saved.tables.items()
        ]
        db = self._db
        db.execute("BEGIN")
        try:
            db.execute(
                "INSERT INTO account_state (vendor, account, saved_at, state) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (vendor, account) DO UPDATE SET "
                "saved_at = excluded.saved_at, state = excluded.state",
                (vendor, account, now, text),
            )
            if saved.whole:  # also drops the keys of tables the state no longer has
                db.execute(
                    "DELETE FROM account_keys WHERE vendor = ? AND account = ?", (vendor, account)
                )
            for table, changes, rows in tables:
                if changes.deletes:
                    db.executemany(
                        "DELETE FROM account_keys "
                        "WHERE vendor = ? AND account = ? AND tbl = ? AND key = ?",
                        sorted((vendor, account, table, _json(key)) for key in changes.deletes),
                    )
                db.executemany(
                    "INSERT OR REPLACE INTO account_keys (vendor, account, tbl, key, entry) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            db.execute("COMMIT")
        except BaseException:
            _roll_back(db)
            raise

    def delete(self, vendor: str, account: str) -> None:
        self.delete_soon(vendor, account).result()

    def delete_soon(self, vendor: str, account: str) -> Future[None]:
        """Queue the delete in the writer thread without waiting (on the event loop):
        a later save or load of the same account still sees it, the writer keeps order."""
        return self._writer.submit(self._delete, vendor, account)

    def _delete(self, vendor: str, account: str) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            for statement in (
                "DELETE FROM account_state WHERE vendor = ? AND account = ?",
                "DELETE FROM account_keys WHERE vendor = ? AND account = ?",
            ):
                db.execute(statement, (vendor, account))
            db.execute("COMMIT")
        except BaseException:
            _roll_back(db)
            raise
        self._gaps.discard((vendor, account))

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._db.close()
        self._lock.close()  # and with it the lock


def _rows(
    vendor: str, account: str, table: str, changes: KeyedChanges
) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    append = rows.append
    isfinite = math.isfinite
    for key, value in changes.upserts.items():
        text = str(key) if type(key) is int else _json(key)
        if type(value) is float and isfinite(value):  # a dedupe expiry: most rows
            entry = f"[{text},{value!r}]"
        else:
            rest = value if isinstance(value, (list, tuple)) else (value,)
            entry = "[" + text + "," + ",".join(map(_json, rest)) + "]"
        append((vendor, account, table, text, entry))
    # In key order: SQLite inserts into its B-tree page after page, not all over it.
    rows.sort(key=lambda row: row[3])
    return rows


def _json(value: Any) -> str:
    """JSON of one key or value; ids and expiries, the usual ones, without the encoder's
    overhead (a whole state is hundreds of thousands of them). The same text as
    `json.dumps` gives, so a key is found again by its text; a tuple becomes a list."""
    kind = type(value)
    if kind is int:  # not bool: `type` is exact
        return str(value)
    if kind is float and math.isfinite(value):
        return repr(value)
    if kind is bool:
        return "true" if value else "false"
    return _encode(value)


def _roll_back(db: sqlite3.Connection) -> None:
    """End a failed write's transaction, if the failure has not ended it already: after
    a COMMIT that failed (a full disk), a ROLLBACK raised "no transaction is active" in
    place of the real error."""
    if db.in_transaction:
        db.execute("ROLLBACK")
