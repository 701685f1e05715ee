"""Delivery loses nothing: a sink outage, a SIGKILL of the logging process, a full spool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from payload_log import LogOutcome, PayloadLogger
from payload_log.spool import Spool, SpooledEvent
from tests.observability.conftest import fast_settings
from tests.observability.events import pair
from tests.observability.sink import Received, RecordingSink, wait_for

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 2000
OUTAGE_SECONDS = 5.0  # the 30 s, shortened: retries are capped at 0.2 s, so the shape is the same


def _first_seen_order(received: list[Received]) -> dict[str, list[str]]:
    """Per request id, the event types in the order each was first received."""
    order: dict[str, list[str]] = defaultdict(list)
    for r in received:
        types = order[r.headers["Ce-Requestid"]]
        if r.headers["Ce-Type"] not in types:
            types.append(r.headers["Ce-Type"])
    return order


def test_sink_down_during_2000_events_receives_every_one_in_order_after_it_returns(tmp_path: Path) -> None:
    sink = RecordingSink()  # not started: the sink is down
    logger = PayloadLogger(fast_settings(tmp_path, sink.url))
    logger.start()
    outage_over = threading.Event()
    try:
        pairs = [pair(f"req-{n}") for n in range(EVENTS // 2)]
        events = [e for p in pairs for e in p]
        # concurrent callers, as the ext_proc servicer would be: each request's pair from one caller (a
        # map over single events could log a response before its request, from another thread)
        with ThreadPoolExecutor(8) as pool:
            outcomes = [o for both in pool.map(lambda p: [logger.log(e) for e in p], pairs) for o in both]
        assert outcomes == [LogOutcome.ACCEPTED] * EVENTS
        assert logger.stats().spooled_events == EVENTS
        wait_for(lambda: logger.stats().retried >= 16, 60, "every lane to have failed at least once")
        outage_over.wait(OUTAGE_SECONDS)  # the sink stays down for the outage
        assert logger.stats().delivered == 0
        sink.start()
        wanted = {e.id for e in events}
        wait_for(lambda: wanted <= sink.ids(), 60, "every event after the outage")
        wait_for(lambda: logger.stats().spooled_events == 0, 60, "an empty spool")
    finally:
        logger.stop()
        sink.stop()
    order = _first_seen_order(sink.snapshot())
    assert len(order) == EVENTS // 2
    assert all(
        types == ["io.seldon.serving.inference.request", "io.seldon.serving.inference.response"]
        for types in order.values()
    )
    stats = logger.stats()
    assert stats.delivered >= EVENTS
    assert stats.refused == 0


def test_sigkill_of_the_logging_process_loses_no_spooled_event(tmp_path: Path) -> None:
    sink = RecordingSink()  # down while the first process runs, so everything stays spooled
    spool = tmp_path / "spool"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.observability.logger_process", str(spool), sink.url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    accepted: list[str] = []
    try:
        assert process.stdout.readline().strip() == "started"
        while len(accepted) < 500:
            line = process.stdout.readline()
            assert line, "the logger process died early"
            accepted.append(line.strip())
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    accepted.extend(line.strip() for line in process.stdout.read().splitlines() if line.strip())
    process.stdout.close()

    sink.start()
    restarted = PayloadLogger(fast_settings(spool, sink.url))
    restarted.start()
    try:
        wait_for(lambda: set(accepted) <= sink.ids(), 60, "every accepted event after the restart")
    finally:
        restarted.stop()
        sink.stop()


def test_a_full_spool_refuses_and_counts_then_accepts_again_once_drained(tmp_path: Path) -> None:
    sink = RecordingSink()  # down: nothing leaves the spool
    request, _ = pair("probe")
    one_event = SpooledEvent(sink.url, 0, "probe", request.head(), request.body).size
    logger = PayloadLogger(fast_settings(tmp_path, sink.url, max_spool_bytes=one_event * 10 + 10))
    logger.start()
    try:
        outcomes = [logger.log(pair(f"r{n}")[0]) for n in range(25)]
        assert outcomes.count(LogOutcome.ACCEPTED) == 10
        assert outcomes.count(LogOutcome.REFUSED_FULL) == 15
        stats = logger.stats()
        assert (stats.accepted, stats.refused, stats.spooled_events) == (10, 15, 10)
        sink.start()
        wait_for(lambda: logger.stats().spooled_events == 0, 30, "the spool to drain")
        assert logger.log(pair("after")[0]) is LogOutcome.ACCEPTED
    finally:
        logger.stop()
        sink.stop()
    assert logger.log(pair("late")[0]) is LogOutcome.REFUSED_STOPPED


def test_a_failed_write_refuses_the_events_and_the_logger_goes_on(
    tmp_path: Path, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that refuses a write (full, failing): the events are refused and counted, never accepted and
    lost; once the disk takes writes again, so does the logger."""
    append = Spool.append
    failing = [True]

    def flaky_append(self: Spool, records: list[SpooledEvent]) -> None:
        if failing[0]:
            raise OSError(28, "No space left on device")
        append(self, records)

    monkeypatch.setattr(Spool, "append", flaky_append)
    logger = PayloadLogger(fast_settings(tmp_path, sink.url))
    logger.start()
    try:
        assert [logger.log(e) for e in pair("lost")] == [LogOutcome.REFUSED_SPOOL_ERROR] * 2
        failing[0] = False
        assert [logger.log(e) for e in pair("kept")] == [LogOutcome.ACCEPTED] * 2
        wait_for(lambda: len(sink.snapshot()) == 2, 30, "the accepted events delivered")
    finally:
        logger.stop()
    assert {r.headers["Ce-Requestid"] for r in sink.snapshot()} == {"kept"}
    assert (logger.stats().refused, logger.stats().accepted) == (2, 2)


def test_a_backlog_beyond_what_delivery_holds_in_memory_is_read_back_from_the_spool(tmp_path: Path) -> None:
    """Delivery keeps committed events in memory up to `max_memory_events`; past that (a sink down for a
    while) lanes read the spool back. Every event arrives, each request's pair in order."""
    sink = RecordingSink()  # down
    logger = PayloadLogger(fast_settings(tmp_path, sink.url, max_memory_events=20, lanes_per_destination=4))
    logger.start()
    try:
        events = [e for n in range(200) for e in pair(f"mem-{n}")]
        futures = [logger.submit(e) for e in events]
        assert [f.result(30) for f in futures] == [LogOutcome.ACCEPTED] * len(events)
        wait_for(lambda: logger.stats().retried >= 4, 10, "every lane to have failed at least once")
        sink.start()
        more = [e for n in range(200, 300) for e in pair(f"mem-{n}")]  # while lanes catch up
        assert all(logger.log(e) is LogOutcome.ACCEPTED for e in more)
        wanted = {e.id for e in events + more}
        wait_for(lambda: wanted <= sink.ids(), 60, "every event after the outage")
    finally:
        logger.stop()
        sink.stop()
    order = _first_seen_order(sink.snapshot())
    assert len(order) == 300
    assert all(types[0] == "io.seldon.serving.inference.request" for types in order.values())
