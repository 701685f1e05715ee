"""The local state store: applied SeldonDeployments in SQLite, so a restarted `up` serves them again.

The store keeps each manifest as the user applied it (defaulted JSON) with the folder it came from, which is
where relative `modelUri`s and Python class folders are resolved. It knows nothing of processes or Envoy.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from mesh.spec import SeldonDeployment, parse_deployment

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    manifest TEXT NOT NULL,
    base_dir TEXT NOT NULL,
    generation INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, name)
)
"""


@dataclass(frozen=True)
class StoredDeployment:
    deployment: SeldonDeployment
    base_dir: Path
    generation: int


class StateStore:
    """SQLite-backed map of (namespace, name) to the applied deployment. Single-writer (the supervisor)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def put(self, deployment: SeldonDeployment, base_dir: Path) -> tuple[StoredDeployment, bool]:
        """Store a deployment; returns it and whether anything changed (re-applying the same is no change)."""
        namespace, name = deployment.key
        manifest = json.dumps(deployment.to_manifest(), sort_keys=True)
        row = self._db.execute(
            "SELECT manifest, base_dir, generation FROM deployments WHERE namespace=? AND name=?",
            (namespace, name),
        ).fetchone()
        if row is not None and row[0] == manifest and row[1] == str(base_dir):
            return StoredDeployment(deployment, base_dir, int(row[2])), False
        generation = 1 if row is None else int(row[2]) + 1
        self._db.execute(
            "INSERT OR REPLACE INTO deployments VALUES (?, ?, ?, ?, ?, ?)",
            (namespace, name, manifest, str(base_dir), generation, time.time()),
        )
        return StoredDeployment(deployment, base_dir, generation), True

    def delete(self, namespace: str, name: str) -> bool:
        cursor = self._db.execute("DELETE FROM deployments WHERE namespace=? AND name=?", (namespace, name))
        return cursor.rowcount > 0

    def list(self) -> list[StoredDeployment]:
        rows = self._db.execute(
            "SELECT manifest, base_dir, generation FROM deployments ORDER BY namespace, name"
        ).fetchall()
        return [StoredDeployment(parse_deployment(json.loads(m)), Path(b), int(g)) for m, b, g in rows]
