"""A request's `Receipt`: `written()` returns once its events are written to the spool (or refused and
counted), writing at once what every request gathered; events posted in one turn of the loop share one
write. Spool slots: one per live process, taken over after a kill."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from payload_log import EventType, LogOutcome, PayloadEvent, PayloadLogger
from payload_log.slots import claim
from payload_log.spool import Spool
from tests.observability.conftest import fast_settings
from tests.observability.sink import RecordingSink


def _event(puid: str, kind: EventType = EventType.REQUEST) -> PayloadEvent:
    return PayloadEvent(
        type=kind,
        body=b'{"data":{"ndarray":[[1.0]]}}',
        content_type="application/json",
        request_id=puid,
        model_id="model",
        deployment="iris",
        namespace="default",
        predictor="main",
    )


class Batches:
    """A logger observer recording the size of each committed batch."""

    def __init__(self) -> None:
        self.accepted: list[int] = []

    def on_accepted(self, count: int) -> None:
        self.accepted.append(count)

    def on_refused(self, reason: LogOutcome, count: int) -> None:
        pass

    def on_delivered(self, count: int) -> None:
        pass

    def on_retried(self, count: int) -> None:
        pass

    def on_dead_lettered(self, count: int) -> None:
        pass

    def on_spool_usage(self, events: int, size_bytes: int) -> None:
        pass


def test_written_returns_once_the_events_are_in_the_spool(tmp_path: Path) -> None:
    logger = PayloadLogger(fast_settings(tmp_path, "http://127.0.0.1:9/never"))
    logger.start()

    async def one_request() -> tuple[int, int]:
        receipt = logger.receipt()
        receipt.post(_event("p-1"))
        receipt.post(_event("p-1", EventType.RESPONSE))
        await asyncio.wait_for(receipt.written(), 30)
        reader = Spool(tmp_path, writer=False)  # what a new process would find
        try:
            return reader.usage()[0], receipt.pending
        finally:
            reader.close()

    try:
        assert asyncio.run(one_request()) == (2, 0)
    finally:
        logger.stop()


def test_written_writes_at_once_what_every_request_gathered(tmp_path: Path) -> None:
    batches = Batches()
    logger = PayloadLogger(fast_settings(tmp_path, "http://127.0.0.1:9/never"), batches)
    logger.start()

    async def two_requests() -> tuple[int, int]:
        first, second = logger.receipt(), logger.receipt()
        first.post(_event("a"))
        second.post(_event("b"))
        await first.written()  # no turn of the loop in between: it writes both requests' events
        gathered = second.pending
        first.post(_event("a", EventType.RESPONSE))
        second.post(_event("b", EventType.RESPONSE))
        await asyncio.wait_for(asyncio.gather(first.written(), second.written()), 30)
        return gathered, first.pending + second.pending

    try:
        assert asyncio.run(two_requests()) == (0, 0)
    finally:
        logger.stop()
    assert batches.accepted == [2, 2]


def test_refused_events_settle_the_receipt_and_are_counted(tmp_path: Path) -> None:
    logger = PayloadLogger(fast_settings(tmp_path, None))  # no destination: every event is refused
    logger.start()

    async def one_request() -> int:
        receipt = logger.receipt()
        receipt.post(_event("p"))
        receipt.post(_event("p", EventType.RESPONSE))
        await asyncio.wait_for(receipt.written(), 30)
        return receipt.refused

    try:
        assert asyncio.run(one_request()) == 2
    finally:
        logger.stop()
    assert logger.stats().refused == 2 and logger.stats().accepted == 0


def test_a_full_spool_refuses_then_accepts_what_fits(tmp_path: Path) -> None:
    logger = PayloadLogger(fast_settings(tmp_path, "http://127.0.0.1:9/never", max_spool_bytes=600))
    logger.start()

    async def requests() -> list[int]:
        refused = []
        for i in range(6):
            receipt = logger.receipt()
            receipt.post(_event(f"p-{i}"))
            await asyncio.wait_for(receipt.written(), 30)
            refused.append(receipt.refused)
        return refused

    try:
        refused = asyncio.run(requests())
    finally:
        logger.stop()
    assert refused[0] == 0 and refused[-1] == 1  # the first fit; once full, each is refused
    assert logger.stats().accepted == refused.count(0) and logger.stats().refused == refused.count(1)


def test_a_stopped_logger_refuses_and_written_does_not_hang(tmp_path: Path) -> None:
    logger = PayloadLogger(fast_settings(tmp_path, "http://127.0.0.1:9/never"))
    logger.start()
    logger.stop()

    async def late() -> int:
        receipt = logger.receipt()
        receipt.post(_event("late"))
        await asyncio.wait_for(receipt.written(), 30)
        return receipt.refused

    assert asyncio.run(late()) == 1


_HOLDER = """
import sys, time
from pathlib import Path
from payload_log.slots import claim
print(claim(Path(sys.argv[1])).directory.name, flush=True)
time.sleep(600)
"""


def test_each_live_process_gets_its_own_slot_and_a_killed_ones_is_taken_over(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "slot-0"
        mine = claim(tmp_path)
        assert mine.directory.name == "slot-1"  # slot-0 is held by a live process
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        again = claim(tmp_path)
        assert again.directory.name == "slot-0"  # the kernel released the killed holder's lock
        again.release()
        mine.release()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_an_on_loop_logger_commits_a_turns_events_together_and_delivers_on_the_loop(
    tmp_path: Path, sink: RecordingSink
) -> None:
    batches = Batches()
    logger = PayloadLogger(fast_settings(tmp_path, sink.url), batches)

    async def serve() -> None:
        logger.start(asyncio.get_running_loop())  # no thread: writes and delivers on this loop
        receipts = [logger.receipt() for _ in range(3)]
        for i, receipt in enumerate(receipts):  # three requests reach their events in one turn
            receipt.post(_event(f"r-{i}"))
            receipt.post(_event(f"r-{i}", EventType.RESPONSE))
        await asyncio.wait_for(asyncio.gather(*(r.written() for r in receipts)), 30)
        deadline = asyncio.get_running_loop().time() + 30
        while len(sink.snapshot()) < 6 and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await logger.astop()

    asyncio.run(serve())
    assert batches.accepted == [6]
    assert sorted(e.headers["Ce-Requestid"] for e in sink.snapshot()) == sorted(
        [f"r-{i}" for i in range(3)] * 2
    )
    reader = Spool(tmp_path, writer=False)
    try:
        assert reader.usage()[0] == 0  # delivered ones were deleted before the spool closed
    finally:
        reader.close()
