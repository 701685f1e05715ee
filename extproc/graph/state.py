"""Durable state of learning routers (bandits): a small SQLite table keyed by predictor and node.

Injected into the executor as a `StateStore`, so the executor stays free of I/O in tests (`MemoryState`).
Writes are synchronous and tiny (one row per feedback) and SQLite's WAL keeps them sub-millisecond.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

import orjson


class StateStore(Protocol):
    def load(self, key: str) -> dict[str, Any] | None: ...

    def save(self, key: str, state: dict[str, Any]) -> None: ...


class MemoryState:
    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}

    def load(self, key: str) -> dict[str, Any] | None:
        return self._rows.get(key)

    def save(self, key: str, state: dict[str, Any]) -> None:
        self._rows[key] = dict(state)


class SqliteState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS router_state (key TEXT PRIMARY KEY, state BLOB NOT NULL)"
        )
        self._lock = threading.Lock()

    def load(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM router_state WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        loaded: dict[str, Any] = orjson.loads(row[0])
        return loaded

    def save(self, key: str, state: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO router_state (key, state) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET state = excluded.state",
                (key, orjson.dumps(state)),
            )

    def close(self) -> None:
        self._db.close()
