"""The delivery side of the payload logger: a thread running its own asyncio loop, one task per busy lane.

A lane is (destination, crc32(request id) mod lanes); it is delivered strictly in spool order, so events of
one request id reach a sink in the order they were logged, while other lanes proceed in parallel. A failed
send is retried with exponential backoff and full jitter, forever (at-least-once); an event the sink
rejects for good (4xx) is moved to the spool's dead-letter table. An event leaves the spool only after its
sink took it, so a crash at any point means a redelivery, never a loss.

Delivered events are deleted in batches (every `ACK_INTERVAL_S` or `ACK_BATCH` events) on a worker thread:
one delete per event would contend with the writer's fsyncs for SQLite's write lock and stall this loop.
Until then each lane remembers the last sequence number it delivered, so nothing is sent twice; after a
crash the undeleted few are sent again, which at-least-once allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable

from extproc.logging.settings import PayloadLoggerSettings
from extproc.logging.sinks import PermanentSinkError, RetryableSinkError, SinkFactory
from extproc.logging.spool import LaneKey, Spool, SpooledEvent

log = logging.getLogger(__name__)

ACK_INTERVAL_S = 0.05
ACK_BATCH = 512

# called from the delivery thread: (event, delivered) when an event leaves the spool; () per retry
Finished = Callable[[SpooledEvent, bool], None]
Retried = Callable[[], None]


class Delivery:
    def __init__(self, settings: PayloadLoggerSettings, finished: Finished, retried: Retried) -> None:
        self._settings = settings
        self._finished = finished
        self._retried = retried
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._lanes: dict[LaneKey, asyncio.Task[None]] = {}
        self._dirty: set[LaneKey] = set()
        self._cursors: dict[LaneKey, int] = {}
        self._delivered: list[SpooledEvent] = []
        # The acknowledgement running on a worker thread: cancelling the task that awaits it does not
        # stop the thread, so the next flush waits for it (one transaction at a time per connection).
        self._forgetting: asyncio.Future[None] | None = None
        self._ack_wanted: asyncio.Event | None = None

    def start(self) -> None:
        """Start delivering, beginning with whatever the spool already holds."""
        self._ready.clear()
        self._thread = threading.Thread(target=self._main, name="payload-delivery", daemon=True)
        self._thread.start()
        self._ready.wait()

    def wake(self, lanes: set[LaneKey]) -> None:
        """Thread-safe: these lanes have new events on disk."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._wake, lanes)

    def stop(self) -> None:
        """Stop; a send in flight is abandoned and its event, still spooled, goes again next start."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        self._ack_wanted = asyncio.Event()
        self._cursors.clear()
        spool = Spool(self._settings.spool_dir, self._settings.fsync, writer=False)
        acks = Spool(self._settings.spool_dir, self._settings.fsync, writer=False)
        sinks = SinkFactory(
            self._settings.http_timeout_seconds, max_connections=self._settings.lanes_per_destination * 4
        )
        self._spool, self._sinks = spool, sinks
        self._loop = asyncio.get_running_loop()
        self._wake(set(spool.lanes()))
        acker = asyncio.create_task(self._acknowledge(acks))
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            self._loop = None
            tasks = list(self._lanes.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            acker.cancel()
            await asyncio.gather(acker, return_exceptions=True)
            await self._flush_acks(acks)
            await sinks.aclose()
            spool.close()
            acks.close()

    async def _acknowledge(self, acks: Spool) -> None:
        assert self._ack_wanted is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ack_wanted.wait(), ACK_INTERVAL_S)
            self._ack_wanted.clear()
            await self._flush_acks(acks)

    async def _flush_acks(self, acks: Spool) -> None:
        if self._forgetting is not None and not self._forgetting.done():
            await asyncio.wait([self._forgetting])
        done, self._delivered = self._delivered, []  # swapped on the loop thread, which alone appends
        if done:
            self._forgetting = asyncio.ensure_future(asyncio.to_thread(self._forget, acks, done))
            await asyncio.shield(self._forgetting)

    def _forget(self, acks: Spool, done: list[SpooledEvent]) -> None:
        acks.delete([event.seq for event in done])
        for event in done:
            self._finished(event, True)

    def _wake(self, lanes: set[LaneKey]) -> None:
        for lane in lanes:
            if lane in self._lanes:
                self._dirty.add(lane)
            else:
                self._lanes[lane] = asyncio.create_task(self._run_lane(lane))

    async def _run_lane(self, lane: LaneKey) -> None:
        try:
            while True:
                self._dirty.discard(lane)
                events = self._spool.head(lane, self._settings.read_batch_events, self._cursors.get(lane, 0))
                if not events and lane not in self._dirty:
                    return  # no await between this check and leaving `_lanes`: a wake-up cannot be lost
                for event in events:
                    await self._deliver(event)
                    self._cursors[lane] = event.seq
        finally:
            self._lanes.pop(lane, None)

    async def _deliver(self, event: SpooledEvent) -> None:
        attempt = 0
        while True:
            try:
                await self._sinks.sink_for(event.destination).send(event)
            except RetryableSinkError as exc:
                ceiling = self._settings.backoff_initial_seconds * 2 ** min(attempt, 30)
                delay = random.uniform(0, min(self._settings.backoff_max_seconds, ceiling))
                attempt += 1
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("payload log delivery failed (attempt %d), retrying: %s", attempt, exc)
                self._retried()
                await asyncio.sleep(delay)
                continue
            except PermanentSinkError as exc:
                log.error("payload log event %s dead-lettered: %s", event.headers.get("Ce-Id"), exc)
                self._spool.dead_letter(event, str(exc))
                self._finished(event, False)
                return
            self._delivered.append(event)
            if len(self._delivered) >= ACK_BATCH and self._ack_wanted is not None:
                self._ack_wanted.set()
            # a sink that never suspends (the file sink) must still let other lanes, the acker and a
            # stop() run between events
            await asyncio.sleep(0)
            return
