"""`Receipt`: one request's events on their way to the spool, so its answer can wait until they are in.

An audit log must not answer a request whose events a crash could still lose. The request's handler posts
its events through its receipt (`post`, no waiting), and awaits `written()` just before its answer leaves:
it returns once every event posted is committed to the spool (or refused, counted in the logger's metrics).
The writer settles receipts once per committed batch, with one `call_soon_threadsafe` per event loop for
the whole batch, so a request costs one asyncio future, not a `concurrent.futures.Future` per event.

The logger's writer uses the receipts to time its group commit (`PayloadLogger._batch_ready`): a batch is
written as soon as every request with events on the way is waiting for them (nothing else is coming soon),
or `group_commit_events` requests wait, or `commit_delay_seconds` after the first of them began to wait.

Loop-bound: a receipt is made, posted to and awaited on one event loop's thread; nothing else touches it
but the callback the writer schedules on that loop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from payload_log.events import PayloadEvent

if TYPE_CHECKING:
    from payload_log.logger import PayloadLogger


class Receipt:
    __slots__ = ("_logger", "_outstanding", "_waiter", "loop", "refused")

    def __init__(self, logger: PayloadLogger, loop: asyncio.AbstractEventLoop) -> None:
        self._logger = logger
        self.loop = loop
        self._outstanding = 0  # posted, not yet settled by the writer
        self._waiter: asyncio.Future[None] | None = None
        self.refused = 0  # events of this request the logger refused (spool full, stopped, ...)

    def post(self, event: PayloadEvent) -> None:
        logger = self._logger
        opening = self._outstanding == 0
        if opening:
            logger._receipts_open(1)
        if logger._enqueue(event, self) is None:
            self._outstanding += 1
        else:
            self.refused += 1
            if opening:
                logger._receipts_open(-1)

    @property
    def pending(self) -> int:
        """Events posted and not yet committed (or refused)."""
        return self._outstanding

    async def written(self) -> None:
        """Return once every event posted so far is in the spool or was refused."""
        if self._outstanding == 0:
            return
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = self.loop.create_future()
            self._logger._receipt_waits()
        await asyncio.shield(waiter)

    def _settle(self, count: int, refused: int) -> None:
        """On the receipt's loop: the writer committed (or refused) `count` of its events."""
        self._outstanding -= count
        self.refused += refused
        if self._outstanding > 0:
            return
        waiter, self._waiter = self._waiter, None
        self._logger._receipt_closed(waiter is not None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def settle_all(settled: list[tuple[Receipt, int, int]]) -> None:
    """Scheduled by the writer on a loop: (receipt, events settled, of which refused) of one batch."""
    for receipt, count, refused in settled:
        receipt._settle(count, refused)
