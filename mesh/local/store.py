"""The local state store: applied SeldonDeployments in SQLite, so a restarted `up` serves them again.

The store keeps each manifest as the user applied it (defaulted JSON) with the folder it came from, which is
where relative `modelUri`s and Python class folders are resolved. It knows nothing of processes or Envoy.
It also keeps the Secrets applied beside them (decoded keys, for `envSecretRefName`): the database is the
owner's alone (0600, in the 0700 state dir), and nothing reads them back but the planner.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from mesh.spec import SecretDocument, SeldonDeployment, parse_deployment

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    manifest TEXT NOT NULL,
    base_dir TEXT NOT NULL,
    generation INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE IF NOT EXISTS secrets (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
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
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)  # Secrets are in it, whatever the umask of whoever created it
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

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

    def put_secret(self, secret: SecretDocument) -> bool:
        """Keep a Secret's keys; returns whether anything changed."""
        namespace, name = secret.key
        data = json.dumps(dict(secret.data), sort_keys=True)
        row = self._db.execute(
            "SELECT data FROM secrets WHERE namespace=? AND name=?", (namespace, name)
        ).fetchone()
        if row is not None and row[0] == data:
            return False
        self._db.execute("INSERT OR REPLACE INTO secrets VALUES (?, ?, ?)", (namespace, name, data))
        return True

    def secrets(self) -> dict[tuple[str, str], dict[str, str]]:
        """(namespace, name) -> the Secret's keys and values."""
        rows = self._db.execute("SELECT namespace, name, data FROM secrets").fetchall()
        return {(ns, name): dict(json.loads(data)) for ns, name, data in rows}

    def delete(self, namespace: str, name: str) -> bool:
        cursor = self._db.execute("DELETE FROM deployments WHERE namespace=? AND name=?", (namespace, name))
        return cursor.rowcount > 0

    def list(self) -> list[StoredDeployment]:
        rows = self._db.execute(
            "SELECT manifest, base_dir, generation FROM deployments ORDER BY namespace, name"
        ).fetchall()
        return [StoredDeployment(parse_deployment(json.loads(m)), Path(b), int(g)) for m, b, g in rows]
