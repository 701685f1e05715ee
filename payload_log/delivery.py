"""The delivery side of the payload logger: one task per busy lane, on the logger's event loop
(`start_on`) or on a thread running its own asyncio loop (`start`).

A lane is (destination, crc32(request id) mod lanes); it is delivered strictly in spool order, so events of
one request id reach a sink in the order they were logged, while other lanes proceed in parallel. A lane
sends what it has in batches (`pipeline_events`, pipelined on one HTTP connection) holding each request
id at most once, so a retried event never lands after a later one of its request. A failed send is
retried with exponential backoff and full jitter, forever (at-least-once); an event the sink rejects for
good (4xx) goes to the spool's dead letters. An event leaves the spool only after its sink took it, so a
crash at any point means a redelivery, never a loss.

Written events come from the logger in memory (`handoff`), so a lane that keeps up never reads the
spool back; a lane reads the segments back (`behind`) after a start (what a previous process left), and
when more than `max_memory_events` wait in memory (a sink down): every handed-over event is written
first, so the spool holds everything memory does, and a lane drops from memory what it already sent.

Delivered events are acknowledged in batches (every `ACK_INTERVAL_S` or `ACK_BATCH` events) through
`acknowledge`, with each lane's cursor (the last sequence number up to which it delivered everything):
the spool keeps the cursors and deletes the segments left with nothing to deliver. After a crash the
events delivered since the last acknowledgement are sent again, which at-least-once allows.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
from collections.abc import Callable

from payload_log.settings import PayloadLoggerSettings
from payload_log.sinks import PermanentSinkError, RetryableSinkError, SinkError, SinkFactory
from payload_log.spool import LaneKey, Position, Spool, SpooledEvent

log = logging.getLogger(__name__)

ACK_INTERVAL_S = 0.05
ACK_BATCH = 512

# called from the delivery loop: (event) when a sink rejected it for good and it went to the dead letters;
# () per retry; (events, cursors) when a sink took events, which the spool may then forget
DeadLettered = Callable[[SpooledEvent], None]
Retried = Callable[[], None]
Acknowledge = Callable[[list[SpooledEvent], dict[LaneKey, int]], None]


class Delivery:
    def __init__(
        self,
        settings: PayloadLoggerSettings,
        dead_lettered: DeadLettered,
        retried: Retried,
        acknowledge: Acknowledge,
        tick: Callable[[], None],
    ) -> None:
        """`tick` is called after each acknowledgement flush (every `ACK_INTERVAL_S`), and last at stop."""
        self._settings = settings
        self._tick = tick
        self._dead_lettered = dead_lettered
        self._retried = retried
        self._acknowledge = acknowledge
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._lanes: dict[LaneKey, asyncio.Task[None]] = {}
        self._behind: set[LaneKey] = set()  # lanes that read the spool until it has nothing after the cursor
        self._memory: dict[LaneKey, collections.deque[SpooledEvent]] = {}
        self._held = 0  # events in `_memory`
        self._cursors: dict[LaneKey, int] = {}
        self._positions: dict[LaneKey, Position] = {}  # where a lane reading the segments back stands
        self._delivered: list[SpooledEvent] = []
        self._loop_thread = 0
        self._task: asyncio.Task[None] | None = None

    def start(self, spool: Spool) -> None:
        """Start delivering on a thread of its own, beginning with whatever the spool already holds."""
        self._ready.clear()
        self._thread = threading.Thread(
            target=self._main, args=(spool,), name="payload-delivery", daemon=True
        )
        self._thread.start()
        self._ready.wait()

    def start_on(self, loop: asyncio.AbstractEventLoop, spool: Spool) -> None:
        """Start delivering as tasks on `loop` (called on its thread), with no thread of its own."""
        self._open(loop, spool)
        self._task = loop.create_task(self._serve())

    async def astop(self) -> None:
        """`stop` for `start_on`, on the loop."""
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    def handoff(self, events: list[SpooledEvent]) -> None:
        """Thread-safe: these events are written to the spool; deliver them (called in spool order)."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._take(events)
        else:
            loop.call_soon_threadsafe(self._take, events)

    def stop(self) -> None:
        """Stop; a send in flight is abandoned and its event, still spooled, goes again next start."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _main(self, spool: Spool) -> None:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(self._run(spool))

    async def _run(self, spool: Spool) -> None:
        self._open(asyncio.get_running_loop(), spool)
        self._ready.set()
        await self._serve()

    def _open(self, loop: asyncio.AbstractEventLoop, spool: Spool) -> None:
        self._stop = asyncio.Event()
        self._cursors = dict(spool.cursors)
        self._positions.clear()
        self._memory.clear()
        self._held = 0
        self._spool = spool
        self._sinks = SinkFactory(
            self._settings.http_timeout_seconds, max_connections=self._settings.lanes_per_destination * 4
        )
        self._loop_thread = threading.get_ident()
        self._loop = loop
        self._behind = spool.backlog()
        for lane in self._behind:
            self._start_lane(lane)

    async def _serve(self) -> None:
        assert self._stop is not None
        sinks = self._sinks
        acker = asyncio.create_task(self._flush_periodically())
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
            self._flush_acks()
            self._tick()
            await sinks.aclose()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(ACK_INTERVAL_S)
            self._flush_acks()
            self._tick()

    def _flush_acks(self) -> None:
        done, self._delivered = self._delivered, []  # swapped on the loop thread, which alone appends
        if done:
            self._acknowledge(done, self._cursors)

    def _take(self, events: list[SpooledEvent]) -> None:
        for event in events:
            lane = (event.destination, event.lane)
            if lane in self._behind:
                pass  # the lane reads the spool, which has the event
            elif self._held >= self._settings.max_memory_events:
                self._behind.add(lane)
            else:
                self._memory.setdefault(lane, collections.deque()).append(event)
                self._held += 1
            self._start_lane(lane)

    def _start_lane(self, lane: LaneKey) -> None:
        if lane not in self._lanes:
            self._lanes[lane] = asyncio.create_task(self._run_lane(lane))

    async def _run_lane(self, lane: LaneKey) -> None:
        gathered = False  # waited `send_delay_seconds` for more events since the last send
        try:
            while True:
                cursor = self._cursors.get(lane, 0)
                if lane in self._behind:
                    at = self._positions.get(lane, Position())
                    events, self._positions[lane] = self._spool.read(
                        lane, cursor, self._settings.read_batch_events, at
                    )
                    if not events:  # caught up; no await since the read, so no handoff was missed
                        self._behind.discard(lane)
                        continue
                else:
                    queue = self._memory.get(lane)
                    if not queue:
                        self._memory.pop(lane, None)
                        return  # no await between this check and leaving `_lanes`: no handoff is lost
                    delay = self._settings.send_delay_seconds
                    if not gathered and delay > 0 and len(queue) < self._settings.pipeline_events:
                        gathered = True  # the events are spooled: let more join this write
                        await asyncio.sleep(delay)
                        continue
                    gathered = False
                    events = []
                    while queue and len(events) < self._settings.pipeline_events:
                        events.append(queue.popleft())
                    self._held -= len(events)
                fresh = [e for e in events if e.seq > cursor]  # memory repeats what the spool gave
                for batch in _batches(fresh, self._settings.pipeline_events):
                    await self._deliver(batch)
                if fresh:  # batches reorder requests within the chunk: the cursor moves past all of it
                    self._cursors[lane] = fresh[-1].seq
        finally:
            self._lanes.pop(lane, None)

    async def _deliver(self, batch: list[SpooledEvent]) -> None:
        """Deliver `batch` (one lane's, distinct request ids), retrying what failed until it went."""
        pending, attempt = batch, 0
        while pending:
            try:
                outcomes = await self._sinks.sink_for(pending[0].destination).send_batch(pending)
            except PermanentSinkError as exc:  # no sink serves the destination
                outcomes = [exc] * len(pending)
            if not any(outcomes):  # the sink took them all: the usual case, without a loop per event
                self._delivered += pending
                if len(self._delivered) >= ACK_BATCH:
                    self._flush_acks()
                return
            retry: list[SpooledEvent] = []
            failure: SinkError | None = None
            for event, outcome in zip(pending, outcomes, strict=True):
                if outcome is None:
                    self._delivered.append(event)
                elif isinstance(outcome, RetryableSinkError):
                    retry.append(event)
                    failure = outcome
                else:
                    log.error("payload log event %s dead-lettered: %s", event.headers.get("Ce-Id"), outcome)
                    self._spool.dead_letter(event, str(outcome))
                    self._dead_lettered(event)
            if len(self._delivered) >= ACK_BATCH:
                self._flush_acks()
            if retry:
                ceiling = self._settings.backoff_initial_seconds * 2 ** min(attempt, 30)
                delay = random.uniform(0, min(self._settings.backoff_max_seconds, ceiling))
                attempt += 1
                if attempt == 1 or attempt % 10 == 0:
                    log.warning(
                        "payload log delivery of %d event(s) failed (attempt %d), retrying: %s",
                        len(retry),
                        attempt,
                        failure,
                    )
                for _ in retry:
                    self._retried()
                await asyncio.sleep(delay)
            pending = retry


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (extproc runs on it too): its wake-ups, callbacks and socket I/O
    cost this thread less Python than the standard selector loop's; else the default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _batches(events: list[SpooledEvent], size: int) -> list[list[SpooledEvent]]:
    """Batches of at most `size` events with each request id at most once per batch: the n-th event of
    every request id in a chunk goes in the chunk's n-th batch, so a request's later event is sent only
    once its earlier one was taken (a retry cannot reorder them), while different requests share writes."""
    batches: list[list[SpooledEvent]] = []
    for start in range(0, len(events), size):
        chunk: list[list[SpooledEvent]] = []
        seen: dict[str, int] = {}
        for event in events[start : start + size]:
            nth = seen.get(event.request_id, 0)
            seen[event.request_id] = nth + 1
            if nth == len(chunk):
                chunk.append([])
            chunk[nth].append(event)
        batches.extend(chunk)
    return batches
