"""`fsync=group`: an accepted event is fdatasynced before its caller hears so, and the events written
while a sync runs share the next one (group commit), whoever wrote them."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from payload_log import FsyncPolicy, LogOutcome, PayloadLogger
from tests.observability.conftest import fast_settings
from tests.observability.events import pair
from tests.observability.sink import RecordingSink, wait_for


class HeldSyncs:
    """`os.fdatasync`, counted, the first call held until `release`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self._released = threading.Event()
        real = os.fdatasync

        def fdatasync(fd: int) -> None:
            self.calls += 1
            self.entered.set()
            self._released.wait(60)
            real(fd)

        monkeypatch.setattr(os, "fdatasync", fdatasync)

    def release(self) -> None:
        self._released.set()


def test_callers_wait_for_their_sync_and_events_written_meanwhile_share_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs = HeldSyncs(monkeypatch)
    # down until the syncs are counted: a segment delivered whole is deleted, and leaves nothing to sync
    sink = RecordingSink()
    logger = PayloadLogger(fast_settings(tmp_path, sink.url, fsync=FsyncPolicy.GROUP))
    logger.start()
    try:
        first = logger.submit(pair("first")[0])
        assert syncs.entered.wait(30)  # the syncer is in its (held) sync of `first`
        meanwhile = [logger.submit(event) for n in range(3) for event in pair(f"later-{n}")]
        assert not first.done() and not any(f.done() for f in meanwhile)  # written, not yet synced
        syncs.release()
        assert first.result(30) is LogOutcome.ACCEPTED
        assert [f.result(30) for f in meanwhile] == [LogOutcome.ACCEPTED] * 6
        assert syncs.calls == 2  # one for `first`, one shared by the six written during it
        sink.start()
        wait_for(lambda: len(sink.snapshot()) == 7, 60, "every event delivered")
    finally:
        syncs.release()
        logger.stop()
        sink.stop()


def test_an_answer_waits_for_the_sync_of_its_events_on_the_loop(
    tmp_path: Path, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs = HeldSyncs(monkeypatch)
    logger = PayloadLogger(fast_settings(tmp_path, sink.url, fsync=FsyncPolicy.GROUP))

    async def serve() -> tuple[bool, int]:
        logger.start(asyncio.get_running_loop())
        receipt = logger.receipt()
        for event in pair("answer"):
            receipt.post(event)
        waiting = asyncio.ensure_future(receipt.written())
        entered = await asyncio.to_thread(syncs.entered.wait, 30)
        await asyncio.sleep(0.05)
        held = not waiting.done()  # the loop runs on; this answer waits for its sync
        syncs.release()
        await asyncio.wait_for(waiting, 30)
        await logger.astop(drain_seconds=30)
        return entered and held, receipt.refused

    try:
        assert asyncio.run(serve()) == (True, 0)
    finally:
        syncs.release()
    assert len(sink.snapshot()) == 2
