"""`Receipt`: one request's events on their way to the spool, so its answer can wait until they are in.

An audit log must not answer a request whose events a crash could still lose. The request's handler posts
its events through its receipt (`post`, no waiting), and awaits `written()` just before its answer leaves.
Posted events gather until the loop's next turn, when the logger writes everything gathered with one
`os.write` (`PayloadLogger._flush`); `written()` writes at once whatever of them is still gathering (with
the other requests' events), so with `fsync=os` it returns without waiting at all. With `fsync=group` it
waits until the logger's syncer has fdatasynced them, settled with one `call_soon_threadsafe` per event
loop for all the requests of a sync. A refused event (spool full, logger stopped, ...) settles it too,
counted in `refused` and in the logger's metrics.

Loop-bound: a receipt is made, posted to and awaited on one event loop's thread; nothing else touches it
but the callback the syncer schedules on that loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from payload_log.events import EventTemplate, EventType, PayloadEvent

if TYPE_CHECKING:
    from payload_log.logger import PayloadLogger


class Receipt:
    __slots__ = ("_logger", "_outstanding", "_waiter", "loop", "refused", "thread")

    def __init__(self, logger: PayloadLogger, loop: asyncio.AbstractEventLoop) -> None:
        self._logger = logger
        self.loop = loop
        self.thread = threading.get_ident()
        self._outstanding = 0  # posted, not yet settled
        self._waiter: asyncio.Future[None] | None = None
        self.refused = 0  # events of this request the logger refused (spool full, stopped, ...)

    def post(self, event: PayloadEvent) -> None:
        self._outstanding += 1
        if self._logger._enqueue(event, self) is not None:
            self._outstanding -= 1
            self.refused += 1

    def post_templated(self, template: EventTemplate, kind: EventType, request_id: str, body: bytes) -> None:
        """`post` of an event rendered from its node's `template`: no `PayloadEvent` built."""
        self._outstanding += 1
        if self._logger._enqueue_templated(template, kind, request_id, body, self) is not None:
            self._outstanding -= 1
            self.refused += 1

    @property
    def pending(self) -> int:
        """Events posted and not yet in the spool (or refused)."""
        return self._outstanding

    async def written(self) -> None:
        """Return once every event posted so far is in the spool or was refused."""
        if self._outstanding == 0:
            return
        self._logger._flush()  # write what is gathering now, rather than at the loop's next turn
        if self._outstanding == 0:
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = self.loop.create_future()
        await waiter

    def settle(self, count: int, refused: int) -> None:
        """On the receipt's thread: `count` of its events are in the spool or were refused (`refused`)."""
        self._outstanding -= count
        self.refused += refused
        if self._outstanding > 0:
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def settle_all(settled: list[tuple[Receipt, int, int]]) -> None:
    """Scheduled on a receipt's loop: (receipt, events settled, of which refused)."""
    for receipt, count, refused in settled:
        receipt.settle(count, refused)
