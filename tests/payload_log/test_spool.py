"""The segment spool on its own: what a restart finds (written events, not what the cursors say was
delivered, nothing of a record torn by a kill in the middle of a write), segments deleted once delivered,
and sequence numbers that never go back."""

from __future__ import annotations

import os
from pathlib import Path

from payload_log import FsyncPolicy
from payload_log.spool import SEGMENT_SUFFIX, Position, Spool, SpooledEvent

SINK = "http://sink/"


def _records(n: int, prefix: str = "r", lane: int = 0) -> list[SpooledEvent]:
    return [
        SpooledEvent(SINK, lane, f"{prefix}-{i}", b"Ce-Id: %d\r\n" % i, b'{"i":%d}' % i) for i in range(n)
    ]


def _append(spool: Spool, records: list[SpooledEvent]) -> list[SpooledEvent]:
    with spool.lock:
        spool.append(records)
    return records


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))


def test_a_restart_finds_every_written_event_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, writer=True)
    written = _append(spool, _records(3)) + _append(spool, _records(2, "s", lane=1))
    spool.close()  # as a kill leaves it: nothing delivered

    again = Spool(tmp_path, writer=True)
    assert again.usage() == (5, sum(e.size for e in written))
    assert again.backlog() == {(SINK, 0), (SINK, 1)}
    lane0, _ = again.read((SINK, 0), 0, 100, Position())
    assert [(e.request_id, e.body, e.head) for e in lane0] == [
        (f"r-{i}", b'{"i":%d}' % i, b"Ce-Id: %d\r\n" % i) for i in range(3)
    ]
    assert [e.seq for e in lane0] == [e.seq for e in written[:3]]
    assert _append(again, _records(1))[0].seq > written[-1].seq  # numbering goes on after the restart
    again.close()


def test_a_write_torn_by_a_kill_is_ignored_and_writing_goes_on_in_a_new_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path, writer=True)
    _append(spool, _records(2))
    _append(spool, _records(2, "torn"))
    spool.close()
    (segment,) = _segments(tmp_path)
    os.truncate(segment, segment.stat().st_size - 5)  # the last write lost its end

    again = Spool(tmp_path, writer=True)
    assert again.usage()[0] == 2
    new = _append(again, _records(1, "after"))
    assert len(_segments(tmp_path)) == 2  # never appended after a torn record
    found, _ = again.read((SINK, 0), 0, 100, Position())
    assert [e.request_id for e in found] == ["r-0", "r-1", "after-0"]
    assert found[-1].seq == new[0].seq
    again.close()


def test_delivered_events_are_not_found_again_and_their_segments_go(tmp_path: Path) -> None:
    spool = Spool(tmp_path, writer=True, segment_bytes=4096)
    big = [SpooledEvent(SINK, 0, f"r-{i}", b"Ce-Id: x\r\n", b"x" * 1500) for i in range(8)]
    written: list[SpooledEvent] = []
    for record in big:
        written += _append(spool, [record])
    assert len(_segments(tmp_path)) > 1
    # the first five delivered, in order: the lane's cursor stands at the fifth
    spool.done(written[:5], {(SINK, 0): written[4].seq})
    first_segments = {e.segment for e in written[:5]} - {e.segment for e in written[5:]}
    assert all(not (tmp_path / f"{s:020d}{SEGMENT_SUFFIX}").exists() for s in first_segments)
    spool.close()

    again = Spool(tmp_path, writer=True)
    assert again.usage()[0] == 3
    found, _ = again.read((SINK, 0), again.cursors[(SINK, 0)], 100, Position())
    assert [e.request_id for e in found] == ["r-5", "r-6", "r-7"]
    again.done(found, {(SINK, 0): found[-1].seq})
    assert again.usage() == (0, 0) and _segments(tmp_path) == []
    again.close()

    # every segment gone: numbering still continues past what the cursors cover
    last = Spool(tmp_path, writer=True)
    assert _append(last, _records(1))[0].seq > written[-1].seq
    assert last.usage()[0] == 1
    last.close()


def test_a_reader_sees_the_writers_spool_without_changing_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path, FsyncPolicy.GROUP, writer=True)
    _append(spool, _records(2))
    reader = Spool(tmp_path, writer=False)
    assert reader.usage()[0] == 2 and reader.dead_letter_count() == 0
    reader.close()
    spool.close()
    assert len(_segments(tmp_path)) == 1
