"""The durable spool: an SQLite database in WAL mode where an event counts as accepted once committed.

Why SQLite and not append-only segment files: segments append faster (`python -m bench observability`
on the 2-core CI machine with a quiet disk: per-event fsync 2-3.6k events/s for SQLite WAL vs 2-5k for
segments; 10 events per fsync 13-26k vs 30-42k; 100 per fsync 34-113k vs 166-250k; under heavy
neighbour I/O everything drops about tenfold), but both clear 2,000 small events/s with group commit,
where the logger's own Python work, not the disk, is the limit on a quiet machine (about 3.3k events/s
accepted end to end). SQLite gives crash-safe deletion of delivered
events, per-lane ordered reads and recovery after SIGKILL for free; segment files would need their own
ack offsets, compaction and torn-write detection. In CPU, at the ~100 events per commit group commit
now gathers at 2,000 events/s, an insert cost ~6-7 us and its delete ~3-4 us per event (`process_time`,
one thread, 250-byte bodies), against ~3-5 us for a segment append with a CRC per record; the writer,
delivery and (then separate) acknowledging threads cost ~35 us per event together (per-thread CPU, paced
micro-benchmark), so segments would save about a sixth of that: not worth a rewrite of the guarantees.

The writer connection commits with `synchronous=FULL` (fsync of the WAL per commit) under the GROUP
policy, deletes of delivered events included; the delivery connection (lane reads, dead letters) uses
`synchronous=NORMAL`: a dead letter lost to a power cut only means a redelivery, which at-least-once
allows.

Each instance is used from one thread at a time: `logger` opens one for its writer, which also deletes
what delivery acknowledged, and the delivery loop one for reading lanes and moving dead letters.

A batch is inserted, and deleted, by a few multi-row statements rather than `executemany`: the sqlite3
module releases the GIL around every step, one per row with `executemany`, and in extproc each release
hands the GIL to the event loop and waits to get it back. With a thread contending for the GIL as the
event loop does, that cost the writing thread 39-40 us of CPU per event against 10-12 us for the same
rows in one statement (9 against 7 without contention); `_chunks` splits a batch into power-of-two
statement sizes, so the module's statement cache holds a handful of texts instead of one per batch size.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from payload_log.settings import FsyncPolicy

SPOOL_FILE = "spool.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    lane INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    headers BLOB NOT NULL,
    body BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_lane ON events (destination, lane, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    request_id TEXT NOT NULL,
    headers BLOB NOT NULL,
    body BLOB NOT NULL,
    reason TEXT NOT NULL
);
"""


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__, and the writer
# makes two of these per event (about a tenth of its Python time in py-spy); nothing mutates them.
@dataclass(slots=True, eq=False)
class NewRecord:
    destination: str
    lane: int
    request_id: str
    headers_json: bytes
    body: bytes
    headers: dict[str, str]

    @classmethod
    def of(
        cls, destination: str, lane: int, request_id: str, headers: dict[str, str], body: bytes
    ) -> NewRecord:
        return cls(destination, lane, request_id, orjson.dumps(headers), body, headers)

    def spooled(self, seq: int) -> SpooledEvent:
        """The event as delivery reads it back, for handing it over without reading the spool."""
        return SpooledEvent(
            seq, self.destination, self.lane, self.request_id, self.headers, self.body, self.size
        )

    @property
    def size(self) -> int:
        """What the event costs against the spool bound: payload plus serialized headers, in bytes."""
        return len(self.body) + len(self.headers_json)


@dataclass(slots=True, eq=False)
class SpooledEvent:
    seq: int
    destination: str
    lane: int
    request_id: str
    headers: dict[str, str]
    body: bytes
    size: int


LaneKey = tuple[str, int]


class Spool:
    def __init__(self, directory: Path, fsync: FsyncPolicy = FsyncPolicy.GROUP, *, writer: bool) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(directory / SPOOL_FILE, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        durable = writer and fsync is FsyncPolicy.GROUP
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def leave_checkpoints(self) -> None:
        """This connection no longer checkpoints the WAL after its commits (SQLite's auto-checkpoint,
        which with synchronous=NORMAL fsyncs the WAL and the database): `checkpoint`, from another
        connection on another thread, does it, so a writer on an event loop never waits for a disk."""
        self._db.execute("PRAGMA wal_autocheckpoint=0")

    def checkpoint(self) -> None:
        """Copy committed WAL pages into the database without blocking writers (PASSIVE)."""
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def append(self, records: list[NewRecord], delete: Sequence[int] = ()) -> int:
        """Commit `records` in one transaction, which also forgets the delivered events `delete` names: on
        return they are on disk per the fsync policy. Returns the sequence number of the first record (0
        for none); the others follow it one by one (one writer connection per spool, AUTOINCREMENT: each
        new row takes the highest number ever used plus one)."""
        values: list[object] = []
        for r in records:
            values += (r.destination, r.lane, r.request_id, r.headers_json, r.body, r.size)
        last = 0
        with self._transaction():
            for start, count in _chunks(len(delete)):
                self._db.execute(_delete(count), delete[start : start + count])
            for start, count in _chunks(len(records)):
                self._db.execute(_insert(count), values[start * 6 : (start + count) * 6])
            if records:
                last = int(self._db.execute("SELECT last_insert_rowid()").fetchone()[0])
        return last - len(records) + 1 if records else 0

    def head(self, lane: LaneKey, limit: int, after: int = 0) -> list[SpooledEvent]:
        """The oldest `limit` events of `lane` with a sequence number above `after`."""
        cursor = self._db.execute(
            "SELECT seq, destination, lane, request_id, headers, body, size FROM events "
            "WHERE destination = ? AND lane = ? AND seq > ? ORDER BY seq LIMIT ?",
            (lane[0], lane[1], after, limit),
        )
        return [
            SpooledEvent(seq, dest, ln, rid, orjson.loads(headers), bytes(body), size)
            for seq, dest, ln, rid, headers, body, size in cursor
        ]

    def dead_letter(self, event: SpooledEvent, reason: str) -> None:
        """Move an event a sink rejected for good out of its lane; it stays on disk for an operator."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO dead_letters (seq, destination, request_id, headers, body, reason) "
                "VALUES (?,?,?,?,?,?)",
                (
                    event.seq,
                    event.destination,
                    event.request_id,
                    orjson.dumps(event.headers),
                    event.body,
                    reason,
                ),
            )
            self._db.execute("DELETE FROM events WHERE seq = ?", (event.seq,))

    def lanes(self) -> list[LaneKey]:
        return [(d, ln) for d, ln in self._db.execute("SELECT DISTINCT destination, lane FROM events")]

    def usage(self) -> tuple[int, int]:
        """(events, bytes) spooled and not yet delivered."""
        count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()
        return int(count), int(total)

    def dead_letter_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


# rows per statement at most: 6 values a row within SQLite's default limit of 32,766 bound values (3.32+)
_MAX_ROWS = 4096


def _chunks(n: int) -> list[tuple[int, int]]:
    """(start, count) statements covering n rows: `_MAX_ROWS` at a time, then the binary digits of the rest
    (100 rows are statements of 64, 32 and 4), so at most 13 distinct statement texts ever exist."""
    out: list[tuple[int, int]] = []
    start = 0
    while n - start >= _MAX_ROWS:
        out.append((start, _MAX_ROWS))
        start += _MAX_ROWS
    size = _MAX_ROWS
    while start < n:
        size >>= 1
        if n - start >= size:
            out.append((start, size))
            start += size
    return out


@functools.cache
def _insert(rows: int) -> str:
    return "INSERT INTO events (destination, lane, request_id, headers, body, size) VALUES " + ",".join(
        ["(?,?,?,?,?,?)"] * rows
    )


@functools.cache
def _delete(rows: int) -> str:
    return f"DELETE FROM events WHERE seq IN ({','.join('?' * rows)})"


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
