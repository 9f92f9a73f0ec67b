"""Optional durable state (--storage.path): feed cursors, dedupe keys and counter values.

One SQLite row per account, written in one transaction after each successful cycle, so
a process killed at any moment restarts from the last complete cycle: what completed
while it was down is counted when it comes back, and nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS account_state (
    vendor TEXT NOT NULL,
    account TEXT NOT NULL,
    saved_at REAL NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (vendor, account)
)
"""


class StateStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # One writer thread: saves leave the event loop, stay in order, and never share
        # the connection between two threads at once.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-store")
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # WAL survives a killed process without fsync on every commit.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)

    def load(self, vendor: str, account: str) -> dict[str, Any] | None:
        return self._writer.submit(self._read, vendor, account).result()

    async def load_async(self, vendor: str, account: str) -> dict[str, Any] | None:
        """`load` in the writer thread: the query and the JSON decoding of a large
        dedupe state stay off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._read, vendor, account)

    def _read(self, vendor: str, account: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT state FROM account_state WHERE vendor = ? AND account = ?",
            (vendor, account),
        ).fetchone()
        if row is None:
            return None
        state = json.loads(row[0])
        return state if isinstance(state, dict) else None

    def save(self, vendor: str, account: str, state: dict[str, Any], now: float) -> None:
        """Write one account's state and wait for it (at shutdown, say)."""
        self._writer.submit(self._write, vendor, account, state, now).result()

    def _write(self, vendor: str, account: str, state: dict[str, Any], now: float) -> None:
        self._db.execute(
            "INSERT INTO account_state (vendor, account, saved_at, state) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (vendor, account) DO UPDATE SET saved_at = excluded.saved_at, "
            "state = excluded.state",
            (vendor, account, now, json.dumps(state, separators=(",", ":"))),
        )

    async def save_async(
        self, vendor: str, account: str, state: dict[str, Any], now: float
    ) -> None:
        """`save` in the writer thread (JSON encoding of a large dedupe state included)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._write, vendor, account, state, now)

    def delete(self, vendor: str, account: str) -> None:
        self.delete_soon(vendor, account).result()

    def delete_soon(self, vendor: str, account: str) -> Future[Any]:
        """Queue the delete in the writer thread without waiting (on the event loop):
        a later save or load of the same account still sees it, the writer keeps order."""
        return self._writer.submit(
            self._db.execute,
            "DELETE FROM account_state WHERE vendor = ? AND account = ?", (vendor, account),
        )

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._db.close()
