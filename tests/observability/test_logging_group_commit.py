"""Group commit: events posted without waiting (node events) fill the commit window and share one
transaction; callers that wait for the outcome end the window early, so they are never held by it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from payload_log import LogOutcome, PayloadLogger
from payload_log.spool import NewRecord, Spool
from tests.observability.conftest import fast_settings
from tests.observability.events import pair
from tests.observability.sink import RecordingSink, wait_for


def test_posted_events_share_a_commit_and_waiting_callers_end_the_window_early(
    tmp_path: Path, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []
    append = Spool.append

    def counted(self: Spool, records: list[NewRecord], delete: Sequence[int] = ()) -> int:
        if records:  # not the transactions that only delete delivered events
            commits.append(len(records))
        return append(self, records, delete)

    monkeypatch.setattr(Spool, "append", counted)
    # a window far longer than the test: only a full batch or waiting callers can end it
    settings = fast_settings(
        tmp_path, sink.url, group_commit_seconds=600, group_commit_events=4, max_batch_events=10
    )
    logger = PayloadLogger(settings)
    logger.start()
    try:
        for i in range(5):
            for event in pair(f"posted-{i}"):
                logger.post(event)
        wait_for(lambda: logger.stats().accepted == 10, 60, "the posted events committed")
        assert commits == [10]  # one transaction, ended by max_batch_events, not one per 4
        waiting = [logger.submit(event) for i in range(2) for event in pair(f"waited-{i}")]
        assert [f.result(timeout=60) for f in waiting] == [LogOutcome.ACCEPTED] * 4
        assert commits == [10, 4]
        wait_for(lambda: len(sink.snapshot()) == 14, 60, "every event delivered")
        # stopping in the middle of a window (or before it opens) writes what was posted at once, and
        # delivers it
        for event in pair("last"):
            logger.post(event)
        stopping = threading.Thread(target=logger.stop, kwargs={"drain_seconds": 60})
        stopping.start()
        stopping.join(60)
        assert not stopping.is_alive(), "stop waited for the 600 s window"
        assert commits == [10, 4, 2] and len(sink.snapshot()) == 16
    finally:
        logger.stop()
