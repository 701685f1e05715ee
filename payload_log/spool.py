"""The durable spool: append-only segment files, where an event counts as accepted once written.

Why segments and not SQLite (the spool until now): a `write()` into a file survives the SIGKILL of any
process as soon as it returns (the kernel holds the page), which is what an answer waits for, and costs a
few microseconds for all the events of a batch; an SQLite commit of the same rows cost 20 us per event at
2 events per commit and 4 at 64 (`python -m bench observability`, bare commit rows), plus its Python
around it, on the loop that serves requests. Whether each write is also fsynced (survives a power cut) is
`FsyncPolicy`: `group` makes `Syncer` (`logger`) fdatasync on a thread of its own, shared by every write
since the last one.

Layout of a spool directory (one writer process, `slots`):
- `<first seq>.seg`: a magic line, then one frame per `append` (one `os.write`): `[length u32][crc32 u32]`
  and that many bytes of records, each `[seq u64][lane u16][destination len u16][request id len u16]`
  `[head len u32][body len u32]` + destination + request id + head + body, where `head` is the event's
  CloudEvents headers as HTTP/1.1 header lines (what a sink is sent) and `body` its payload. One crc per
  write, not per record: a write is whole once it returned, so only a write still in progress when the
  process died (nobody was told its events were accepted) or one not yet synced at a power cut can be
  torn. A new segment is begun once the current one holds `segment_bytes`, and after a restart.
- `cursors`: per lane, the sequence number up to which every event of the lane was delivered (delivery is
  in order per lane), rewritten in place with a crc by `save_cursors` on every acknowledgement flush. Lost
  or torn, it only means redelivery, which at-least-once allows.
- `dead_letters.jsonl`: events a sink rejected for good, one JSON object per line, for an operator.

A segment whose every event was delivered (or dead-lettered) is deleted, the current one too (the next
write begins a new one); so the bound `max_spool_bytes` is on the bytes of the records in the segments
still on disk. After a crash, `Spool(..., writer=True)` reads every segment back (a torn frame at the end
of one ends that segment), skips what the cursors say was delivered, and resumes numbering after the
highest sequence number seen.

Thread-safe: the logger writes from whichever thread logs (one lock), delivery reads and acknowledges from
its own loop.
"""

from __future__ import annotations

import base64
import contextlib
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from payload_log.settings import FsyncPolicy

MAGIC = b"seldon-mesh payload segment 1\n"
CURSORS_FILE = "cursors"
DEAD_LETTERS_FILE = "dead_letters.jsonl"
SEGMENT_SUFFIX = ".seg"

_FRAME = struct.Struct("<II")  # bytes of records that follow, crc32 of them
_RECORD = struct.Struct("<QHHHII")  # seq, lane, destination len, request id len, head len, body len

LaneKey = tuple[str, int]


class SpooledEvent:
    """An event on its way through the spool: made by the logger (numbered by `append`, which writes it),
    handed to delivery in memory, or read back from a segment."""

    __slots__ = ("_destination", "_request_id", "body", "destination", "head", "lane", "request_id",
                 "segment", "seq", "size")  # fmt: skip

    def __init__(
        self,
        destination: str,
        lane: int,
        request_id: str,
        head: bytes,
        body: bytes,
        seq: int = 0,
        segment: int = 0,
    ) -> None:
        self.destination, self.lane, self.request_id, self.head, self.body = (
            destination, lane, request_id, head, body
        )  # fmt: skip
        self.seq = seq
        self.segment = segment  # first seq of the segment holding it
        self._destination, self._request_id = destination.encode(), request_id.encode()
        # what the event costs against the spool bound: its record's bytes
        self.size = _RECORD.size + len(self._destination) + len(self._request_id) + len(head) + len(body)

    @property
    def headers(self) -> dict[str, str]:
        return parse_head(self.head)


def encode_head(headers: dict[str, str]) -> bytes:
    """Header lines as HTTP/1.1 writes them, each ended by CRLF."""
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()


def parse_head(head: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head.decode().split("\r\n"):
        if line:
            name, _, value = line.partition(": ")
            out[name] = value
    return out


@dataclass(slots=True)
class _Segment:
    first: int
    path: Path
    size: int  # bytes written, the magic line included
    records: int  # bytes of its records (what counts against the bound)
    remaining: int  # events not yet delivered or dead-lettered


@dataclass(frozen=True, slots=True)
class Position:
    """Where a lane reading segments back stands: a segment (its first seq) and an offset in it."""

    segment: int = 0
    offset: int = 0


class Spool:
    def __init__(
        self,
        directory: Path,
        fsync: FsyncPolicy = FsyncPolicy.OS,
        *,
        writer: bool,
        segment_bytes: int = 8 << 20,
    ) -> None:
        """`writer`: this process owns the spool and writes it (one per directory, `slots`); otherwise
        it only reads what is there (`usage`, `dead_letter_count`), as another process would find it."""
        self.directory = directory
        self._fsync = fsync is FsyncPolicy.GROUP
        self._writer = writer
        self._segment_bytes = segment_bytes
        self.lock = threading.Lock()
        self._segments: dict[int, _Segment] = {}  # by first seq, in order
        self._active: _Segment | None = None
        self._fd = -1  # the active segment's, append-only
        self._retired: list[int] = []  # fsync=group: descriptors of rolled-over segments, not yet synced
        self._new_file = False  # fsync=group: a segment was created since the last sync
        self._events = 0  # undelivered
        self._bytes = 0  # of undelivered records
        self._records = 0  # bytes of the records in live segments
        self._backlog: set[LaneKey] = set()  # lanes with undelivered events found at start
        if writer:
            directory.mkdir(parents=True, exist_ok=True)
        self.cursors = _read_cursors(directory / CURSORS_FILE)
        self._next = max(self.cursors.values(), default=0) + 1
        self._cursors_fd = -1
        self._cursors_saved: dict[LaneKey, int] = dict(self.cursors)
        self._recover()

    # -- recovery ----------------------------------------------------------------------------------------

    def _recover(self) -> None:
        paths = sorted(
            (int(p.name[: -len(SEGMENT_SUFFIX)]), p)
            for p in self.directory.glob(f"*{SEGMENT_SUFFIX}")
            if p.name[: -len(SEGMENT_SUFFIX)].isdigit()
        )
        for first, path in paths:
            segment = _Segment(first, path, 0, 0, 0)
            last = first - 1
            for event, end in _records(path, 0):
                segment.size = end
                segment.records += event.size
                last = max(last, event.seq)
                lane = (event.destination, event.lane)
                if event.seq > self.cursors.get(lane, 0):
                    segment.remaining += 1
                    self._events += 1
                    self._bytes += event.size
                    self._backlog.add(lane)
            self._next = max(self._next, last + 1, first)
            if segment.remaining == 0 and self._writer:
                path.unlink(missing_ok=True)  # delivered before the crash; nothing to keep
                continue
            self._segments[first] = segment
            self._records += segment.records

    def backlog(self) -> set[LaneKey]:
        """Lanes with undelivered events found at start (delivery reads them back from the segments)."""
        return set(self._backlog)

    # -- writing -----------------------------------------------------------------------------------------

    def append(self, records: list[SpooledEvent]) -> None:
        """Number `records` and write them with one `os.write` (the caller holds `lock`): on return they
        survive the kill of any process (and a power cut once synced, for `fsync=group`). OSError when the
        disk refuses: nothing was accepted then."""
        if self._active is None or self._active.size >= self._segment_bytes:
            self._begin_segment()
        segment = self._active
        assert segment is not None
        seq = self._next
        parts: list[bytes] = []
        pack, first = _RECORD.pack, segment.first
        for r in records:
            head, body, destination, request_id = r.head, r.body, r._destination, r._request_id
            parts += (
                pack(seq, r.lane, len(destination), len(request_id), len(head), len(body)),
                destination, request_id, head, body,
            )  # fmt: skip
            r.seq, r.segment = seq, first
            seq += 1
        payload = b"".join(parts)
        data = _FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        written = os.write(self._fd, data)
        if written != len(data):  # a full disk: the torn frame is ignored on recovery, so retire it
            self._retire_active()
            raise OSError(f"payload spool: short write ({written} of {len(data)} bytes)")
        self._next = seq
        segment.size += len(data)
        segment.records += len(payload)
        segment.remaining += len(records)
        self._records += len(payload)
        self._events += len(records)
        self._bytes += len(payload)

    def room(self, max_bytes: int) -> int:
        """Bytes of records that still fit under `max_bytes` (the caller holds `lock`)."""
        return max_bytes - self._records

    def sync_targets(self) -> tuple[list[int], bool]:
        """For `fsync=group`, what a sync must flush for everything written so far to survive a power cut:
        descriptors (the caller fdatasyncs and closes them: the retired segments' own, a duplicate of the
        active one's) and whether the directory gained a segment since the last sync. The caller holds
        `lock`."""
        fds, self._retired = self._retired, []
        if self._fd >= 0:
            fds.append(os.dup(self._fd))
        new_file, self._new_file = self._new_file, False
        return fds, new_file

    def _begin_segment(self) -> None:
        self._retire_active()
        first = self._next
        path = self.directory / f"{first:020d}{SEGMENT_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.write(fd, MAGIC)
        self._new_file = self._fsync  # its name must survive a power cut too: the next sync sees to it
        self._fd = fd
        self._active = self._segments[first] = _Segment(first, path, len(MAGIC), 0, 0)

    def _retire_active(self) -> None:
        """Stop appending to the active segment (under `fsync=group` the next sync flushes and closes it)."""
        if self._fd >= 0:
            if self._fsync:
                self._retired.append(self._fd)
            else:
                os.close(self._fd)
        self._fd = -1
        self._active = None

    # -- delivery ----------------------------------------------------------------------------------------

    def done(
        self, events: Iterable[SpooledEvent], cursors: dict[LaneKey, int] | None = None
    ) -> tuple[int, int]:
        """These events were delivered or dead-lettered (and `cursors`: how far each lane is delivered,
        see `save_cursors`): segments left with none undelivered are deleted. Returns the (events, bytes)
        still undelivered."""
        with self.lock:
            if cursors is not None:
                self._save_cursors(cursors)
            by_segment: dict[int, int] = {}
            for event in events:
                by_segment[event.segment] = by_segment.get(event.segment, 0) + 1
                self._events -= 1
                self._bytes -= event.size
            for first, count in by_segment.items():
                segment = self._segments.get(first)
                if segment is not None:
                    segment.remaining -= count
                    if segment.remaining <= 0:
                        self._delete(segment)
            return self._events, self._bytes

    def _delete(self, segment: _Segment) -> None:
        if segment is self._active:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd, self._active = -1, None
        del self._segments[segment.first]
        self._records -= segment.records
        with contextlib.suppress(OSError):
            segment.path.unlink()

    def _save_cursors(self, cursors: dict[LaneKey, int]) -> None:
        """Record how far each lane was delivered (when it moved since the last save): every event of a
        lane up to its cursor was delivered or dead-lettered. Written before the segments they free are
        deleted, so a crash between the two only means redelivery."""
        if cursors == self._cursors_saved or not self._writer:
            return
        self._cursors_saved = dict(cursors)
        body = orjson.dumps([[d, lane, seq] for (d, lane), seq in cursors.items()])
        data = struct.pack("<II", len(body), zlib.crc32(body)) + body
        if self._cursors_fd < 0:
            self._cursors_fd = os.open(
                self.directory / CURSORS_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        os.pwrite(self._cursors_fd, data, 0)

    def read(
        self, lane: LaneKey, after: int, limit: int, position: Position
    ) -> tuple[list[SpooledEvent], Position]:
        """The events of `lane` with a sequence number above `after`, read from the segments from
        `position` on, `limit` or a few more (whole frames), and where to read next; no events: the lane
        has nothing more on disk."""
        with self.lock:
            live = [(s.first, s.path, s.size) for s in self._segments.values() if s.first >= position.segment]
        found: list[SpooledEvent] = []
        for first, path, size in live:
            offset = position.offset if first == position.segment else 0
            full_at = -1  # the frame that reached `limit`: the rest of its events go too
            for event, end in _records(path, offset, size):
                if full_at >= 0 and end != full_at:
                    return found, Position(first, full_at)
                if event.seq > after and (event.destination, event.lane) == lane:
                    found.append(event)
                    if len(found) >= limit and full_at < 0:
                        full_at = end
            if full_at >= 0:
                return found, Position(first, full_at)
        return found, Position(live[-1][0], live[-1][2]) if live else position

    def dead_letter(self, event: SpooledEvent, reason: str) -> None:
        """Keep an event a sink rejected for good, for an operator; `done` then forgets it."""
        try:
            body: dict[str, str] = {"data": event.body.decode()}
        except UnicodeDecodeError:
            body = {"data_base64": base64.b64encode(event.body).decode("ascii")}
        line = {
            "seq": event.seq,
            "destination": event.destination,
            "request_id": event.request_id,
            "headers": event.headers,
            **body,
            "reason": reason,
        }
        with (self.directory / DEAD_LETTERS_FILE).open("ab") as out:
            out.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    # -- inspection --------------------------------------------------------------------------------------

    def usage(self) -> tuple[int, int]:
        """(events, bytes) spooled and not yet delivered."""
        with self.lock:
            return self._events, self._bytes

    def usage_locked(self) -> tuple[int, int]:
        """`usage`, for a caller holding `lock`."""
        return self._events, self._bytes

    def dead_letter_count(self) -> int:
        try:
            with (self.directory / DEAD_LETTERS_FILE).open("rb") as letters:
                return sum(1 for _ in letters)
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        """Close the files (under `fsync=group`, after a last sync: see `sync_targets`)."""
        with self.lock:
            self._retire_active()
            for fd in self._retired:
                os.close(fd)
            self._retired = []
            if self._cursors_fd >= 0:
                os.close(self._cursors_fd)
                self._cursors_fd = -1


def _records(path: Path, offset: int, end: int | None = None) -> Iterator[tuple[SpooledEvent, int]]:
    """The records of a segment's whole frames from `offset` (0: its start) up to `end` (None: the file's
    end), each with the offset after its frame; a torn or corrupt frame ends the segment."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:  # deleted meanwhile: everything in it was delivered
        return
    first = int(path.name[: -len(SEGMENT_SUFFIX)])
    with handle:
        if offset == 0:
            if handle.read(len(MAGIC)) != MAGIC:
                return
            offset = len(MAGIC)
        handle.seek(offset)
        while end is None or offset + _FRAME.size <= end:
            frame = handle.read(_FRAME.size)
            if len(frame) < _FRAME.size:
                return
            length, crc = _FRAME.unpack(frame)
            if end is not None and offset + _FRAME.size + length > end:
                return  # written after `end` was taken
            payload = handle.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return  # torn by a kill in the middle of the write, or by a power cut before its sync
            offset += _FRAME.size + length
            yield from ((event, offset) for event in _parse(payload, first))


def _parse(payload: bytes, segment: int) -> list[SpooledEvent]:
    events: list[SpooledEvent] = []
    at = 0
    while at < len(payload):
        seq, lane, dlen, rlen, hlen, blen = _RECORD.unpack_from(payload, at)
        p = at + _RECORD.size
        destination = payload[p : p + dlen].decode()
        p += dlen
        request_id = payload[p : p + rlen].decode()
        p += rlen
        head = payload[p : p + hlen]
        p += hlen
        events.append(SpooledEvent(destination, lane, request_id, head, payload[p : p + blen], seq, segment))
        at = p + blen
    return events


def _read_cursors(path: Path) -> dict[LaneKey, int]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    if len(data) < 8:
        return {}
    length, crc = struct.unpack_from("<II", data)
    body = data[8 : 8 + length]
    if len(body) != length or zlib.crc32(body) != crc:
        return {}  # torn: deliver again what they covered
    return {(d, lane): seq for d, lane, seq in orjson.loads(body)}


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
