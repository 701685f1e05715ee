"""`PayloadLogger`: accept events into the durable spool, deliver them in the background.

Accepting is a write into the spool's current segment (`spool.Spool.append`), made by whoever logs, on
their own thread, so no thread hand-off stands between an event and its answer:
- events posted through a request's `Receipt` (and `post`/`submit` on the logger's own loop) gather until
  the loop's next turn, when one `os.write` takes all of them (group write); a request's `written()`
  writes at once whatever is still gathering, its own events with the others', so its answer never
  waits for a turn of the loop;
- `post`/`submit`/`log` from any other thread write at once.
With `fsync=os` (the default) an event is accepted once written: it survives the kill of any process.
With `fsync=group`, `_Syncer` (a thread) fdatasyncs what was written, as soon as something was and again
as soon as that is done, so concurrent events share an fsync; callers waiting for the outcome (`submit`,
`alog`, `log`, `Receipt.written`) are settled once their events are synced.

Delivery (`delivery.Delivery`) runs as tasks on the loop given to `start(loop)`, or on a thread of its
own with its own loop (`start()`); it sends spooled events lane by lane, at least once, in order per
request id, and acknowledges what sinks took (`_acknowledge`), which lets the spool delete segments.

After a crash or SIGKILL, `start` finds every written event still in the spool and delivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
import zlib
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from payload_log.delivery import Delivery
from payload_log.events import EventTemplate, EventType, PayloadEvent
from payload_log.receipt import Receipt, settle_all
from payload_log.settings import FsyncPolicy, PayloadLoggerSettings
from payload_log.sinks import check_destination
from payload_log.spool import LaneKey, Spool, SpooledEvent, sync_directory

log = logging.getLogger(__name__)

# seconds between warnings about refused events, so a full spool cannot flood the logs
_REFUSAL_LOG_INTERVAL = 10.0
# segments begin anew at least every this many bytes, and at most every eighth of the spool's bound
_MIN_SEGMENT_BYTES = 4096


class LogOutcome(StrEnum):
    ACCEPTED = "accepted"
    SKIPPED = "skipped"
    REFUSED_FULL = "refused_full"
    REFUSED_STOPPED = "refused_stopped"
    REFUSED_NO_DESTINATION = "refused_no_destination"
    REFUSED_SPOOL_ERROR = "refused_spool_error"

    @property
    def accepted(self) -> bool:
        return self is LogOutcome.ACCEPTED


class LoggerObserver(Protocol):
    """Metrics hook (see `payload_log.metrics.PayloadLogMetrics`); called from any of the logger's threads."""

    def on_accepted(self, count: int) -> None: ...
    def on_refused(self, reason: LogOutcome, count: int) -> None: ...
    def on_delivered(self, count: int) -> None: ...
    def on_retried(self, count: int) -> None: ...
    def on_dead_lettered(self, count: int) -> None: ...
    def on_spool_usage(self, events: int, size_bytes: int) -> None: ...


class NullObserver:
    def on_accepted(self, count: int) -> None:
        pass

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


@dataclass(frozen=True, slots=True)
class LoggerStats:
    spooled_events: int
    spooled_bytes: int
    accepted: int
    refused: int
    delivered: int
    retried: int
    dead_lettered: int


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted = 0
        self.refused = 0
        self.delivered = 0
        self.retried = 0
        self.dead_lettered = 0


# the future resolves to the event's outcome; a receipt is settled per write; None for `post`
_Sink = Future[LogOutcome] | Receipt | None
_Pending = tuple[SpooledEvent, _Sink]


class PayloadLogger:
    def __init__(self, settings: PayloadLoggerSettings, observer: LoggerObserver | None = None) -> None:
        self.settings = settings
        self._observer: LoggerObserver = observer or NullObserver()
        self._counters = _Counters()
        self._running = False
        self._state_lock = threading.Lock()
        self._spool: Spool | None = None
        self._lock = threading.Lock()  # the spool's, once started: writes, `_unwritten`, sync waiters
        self._unwritten: list[_Pending] = []  # gathering for the next group write
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None  # start(loop): the loop delivery runs on
        self._loop_thread = 0
        self._delivery = Delivery(settings, self._dead_lettered, self._retried, self._acknowledge, self._tick)
        self._reported_usage = (0, 0)
        self._syncer: _Syncer | None = None
        self._last_refusal_log = 0.0

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Open the spool, recover what a previous process left in it and begin delivering: as tasks on
        `loop` (called on that loop's thread), or on a thread of its own without one."""
        with self._state_lock:
            if self._running:
                return
            settings = self.settings
            segment = max(_MIN_SEGMENT_BYTES, min(settings.segment_bytes, settings.max_spool_bytes // 8))
            spool = Spool(settings.spool_dir, settings.fsync, writer=True, segment_bytes=segment)
            events, size = self._reported_usage = spool.usage()
            self._observer.on_spool_usage(events, size)
            if events:
                log.info("payload spool holds %d undelivered events (%d bytes); delivering", events, size)
            self._spool, self._lock = spool, spool.lock
            if settings.fsync is FsyncPolicy.GROUP:
                self._syncer = _Syncer(spool, self._lock)
            self._running = True
            if loop is not None:
                self._loop, self._loop_thread = loop, threading.get_ident()
                self._delivery.start_on(loop, spool)
            else:
                self._delivery.start(spool)

    def stop(self, drain_seconds: float = 0.0) -> None:
        """Stop accepting (what was posted before is still written); wait up to `drain_seconds` for what
        was accepted to be delivered; stop delivering. Undelivered events stay spooled for the next
        `start`. With `start(loop)`: call it from another thread (`asyncio.to_thread`), or await `astop`."""
        if self._loop is not None:
            loop = self._loop
            try:
                asyncio.run_coroutine_threadsafe(self.astop(drain_seconds), loop).result()
            except RuntimeError:  # the loop is closed: what was written stays spooled
                self._close()
            return
        if not self._stopping():
            return
        deadline = time.monotonic() + drain_seconds
        while self._undelivered() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._delivery.stop()
        self._close()

    async def astop(self, drain_seconds: float = 0.0) -> None:
        """`stop` for `start(loop)`, on the loop."""
        if not self._stopping():
            return
        deadline = time.monotonic() + drain_seconds
        while self._undelivered() and time.monotonic() < deadline:  # noqa: ASYNC110 (counters, no event)
            await asyncio.sleep(0.05)
        await self._delivery.astop()
        self._close()

    def _stopping(self) -> bool:
        with self._state_lock:
            if not self._running:
                return False
            self._running = False
        self._flush()  # posted before the stop: written, not left waiting
        return True

    def _close(self) -> None:
        self._flush()
        with self._lock:
            spool, self._spool = self._spool, None
        if spool is None:
            return
        if self._syncer is not None:
            self._syncer.stop()
            self._syncer = None
        spool.close()

    def _undelivered(self) -> int:
        spool = self._spool
        return 0 if spool is None else spool.usage()[0]

    # -- accepting -------------------------------------------------------------------------------------

    def submit(self, event: PayloadEvent, *, skip_logging: bool = False) -> Future[LogOutcome]:
        """Log `event`; the future resolves once it is in the spool (ACCEPTED) or refused."""
        future: Future[LogOutcome] = Future()
        if skip_logging:
            future.set_result(LogOutcome.SKIPPED)
            return future
        refused = self._enqueue(event, future)
        if refused is not None:
            future.set_result(refused)
        return future

    def post(self, event: PayloadEvent) -> None:
        """Log `event` for callers that never wait for its outcome (node events): as `submit`, without a
        future to make and resolve. A refusal is counted and logged all the same."""
        self._enqueue(event, None)

    def receipt(self) -> Receipt:
        """A fresh receipt for one request's events, bound to the running event loop (see `receipt`)."""
        return Receipt(self, asyncio.get_running_loop())

    def log(self, event: PayloadEvent, *, skip_logging: bool = False) -> LogOutcome:
        """Blocking: returns once the event is spooled (or refused). For threads; async code uses `alog`."""
        return self.submit(event, skip_logging=skip_logging).result()

    async def alog(self, event: PayloadEvent, *, skip_logging: bool = False) -> LogOutcome:
        return await asyncio.wrap_future(self.submit(event, skip_logging=skip_logging))

    def stats(self) -> LoggerStats:
        events, size = (0, 0) if self._spool is None else self._spool.usage()
        c = self._counters
        with c.lock:
            return LoggerStats(events, size, c.accepted, c.refused, c.delivered, c.retried, c.dead_lettered)

    def _enqueue(self, event: PayloadEvent, sink: _Sink) -> LogOutcome | None:
        """Gather the event for the next group write (or write it now), or count and return why not."""
        if not self._running:
            self._refuse(LogOutcome.REFUSED_STOPPED, 1)
            return LogOutcome.REFUSED_STOPPED
        return self._gather(self._admit(event.destination, event.request_id, event.head(), event.body), sink)

    def _enqueue_templated(
        self, template: EventTemplate, kind: EventType, request_id: str, body: bytes, sink: _Sink
    ) -> LogOutcome | None:
        """`_enqueue` for an event rendered from its node's template (`Receipt.post_templated`)."""
        if not self._running:
            self._refuse(LogOutcome.REFUSED_STOPPED, 1)
            return LogOutcome.REFUSED_STOPPED
        head = template.head(kind, request_id)
        return self._gather(self._admit(template.destination, request_id, head, body), sink)

    @property
    def writes_through(self) -> bool:
        """With `fsync=os` an event is in the spool once written, so `write_templated` needs no receipt."""
        return self.settings.fsync is FsyncPolicy.OS

    def write_templated(
        self, template: EventTemplate, request_id: str, events: list[tuple[EventType, bytes]]
    ) -> None:
        """Write one request's events now, on this thread, with whatever else is gathering, in one
        `os.write`; on return they are in the spool (or refused, and counted). For `writes_through`
        loggers (`fsync=os`): the cheapest way for an answer to wait for its events, with no receipt."""
        if not self._running:
            self._refuse(LogOutcome.REFUSED_STOPPED, len(events))
            return
        records: list[_Pending] = []
        for kind, body in events:
            record = self._admit(template.destination, request_id, template.head(kind, request_id), body)
            if record is None:
                self._refuse(LogOutcome.REFUSED_NO_DESTINATION, 1)
            else:
                records.append((record, None))
        with self._lock:
            batch, self._unwritten = self._unwritten + records, []
            settled = self._write(batch) if batch else []
        if settled:
            _settle(settled)

    def _admit(
        self, destination: str | None, request_id: str, head: bytes, body: bytes
    ) -> SpooledEvent | None:
        destination = destination or self.settings.default_endpoint
        if not destination or not _servable(destination):
            return None
        lane = zlib.crc32(request_id.encode()) % self.settings.lanes_per_destination
        return SpooledEvent(destination, lane, request_id, head, body)

    def _gather(self, record: SpooledEvent | None, sink: _Sink) -> LogOutcome | None:
        if record is None:
            self._refuse(LogOutcome.REFUSED_NO_DESTINATION, 1)
            return LogOutcome.REFUSED_NO_DESTINATION
        if isinstance(sink, Receipt):
            loop: asyncio.AbstractEventLoop | None = sink.loop
        elif self._loop is not None and threading.get_ident() == self._loop_thread:
            loop = self._loop
        else:
            loop = None
        with self._lock:
            self._unwritten.append((record, sink))
            schedule = loop is not None and not self._flush_scheduled
            if schedule:
                self._flush_scheduled = True
        if loop is None:
            self._flush()
        elif schedule:
            loop.call_soon(self._scheduled_flush)
        return None

    def _scheduled_flush(self) -> None:
        """The loop's next turn after a first gathered event (a request's `written()` may have written
        everything already; at most one of these is pending at a time)."""
        with self._lock:
            self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        """Write what is gathering, in one `os.write`; settle its callers (`fsync=group`: once synced)."""
        with self._lock:
            batch, self._unwritten = self._unwritten, []
            settled = self._write(batch) if batch else []
        if settled:
            _settle(settled)

    def _write(self, batch: list[_Pending]) -> list[tuple[_Sink, LogOutcome]]:
        """Under the lock: spool `batch`, refusing what does not fit, and hand it to delivery; the outcomes
        to settle now (`fsync=group`: the refusals; the syncer settles the rest)."""
        spool = self._spool
        if spool is None:  # stopped meanwhile: nothing is written any more
            self._refuse(LogOutcome.REFUSED_STOPPED, len(batch))
            return [(sink, LogOutcome.REFUSED_STOPPED) for _, sink in batch if sink is not None]
        room = spool.room(self.settings.max_spool_bytes)
        records: list[SpooledEvent] = []
        accepted: list[_Sink] = []
        outcomes: list[tuple[_Sink, LogOutcome]] = []
        for record, sink in batch:
            if record.size > room:
                outcomes.append((sink, LogOutcome.REFUSED_FULL))
                continue
            room -= record.size
            records.append(record)
            accepted.append(sink)
        if len(records) < len(batch):
            self._refuse(LogOutcome.REFUSED_FULL, len(batch) - len(records))
        if not records:
            return outcomes
        try:
            spool.append(records)
        except OSError:  # a disk error refuses the batch: never an accepted-but-lost event
            log.exception("payload spool write failed; refusing %d events", len(records))
            self._refuse(LogOutcome.REFUSED_SPOOL_ERROR, len(records))
            return outcomes + [(sink, LogOutcome.REFUSED_SPOOL_ERROR) for sink in accepted]
        self._delivery.handoff(records)  # under the lock: delivery sees events in sequence order
        with self._counters.lock:
            self._counters.accepted += len(records)
        self._observer.on_accepted(len(records))  # the spool's usage: on `_tick`
        if self._syncer is not None:
            self._syncer.wait_for_sync([sink for sink in accepted if sink is not None])
            return outcomes
        here = threading.get_ident()
        for sink in accepted:
            if isinstance(sink, Receipt) and sink.thread == here:
                sink.settle(1, 0)
            elif sink is not None:
                outcomes.append((sink, LogOutcome.ACCEPTED))
        return outcomes

    # -- from delivery ---------------------------------------------------------------------------------

    def _acknowledge(self, delivered: list[SpooledEvent], cursors: dict[LaneKey, int]) -> None:
        """Sinks took these events; `cursors` says how far each lane is delivered."""
        spool = self._spool
        if spool is None:
            return
        spool.done(delivered, cursors)
        with self._counters.lock:
            self._counters.delivered += len(delivered)
        self._observer.on_delivered(len(delivered))

    def _dead_lettered(self, event: SpooledEvent) -> None:
        spool = self._spool
        if spool is None:
            return
        spool.done([event])
        with self._counters.lock:
            self._counters.dead_lettered += 1
        self._observer.on_dead_lettered(1)

    def _tick(self) -> None:
        """From delivery, every `delivery.ACK_INTERVAL_S` and when it stops: the spool's usage, to the
        observer when it changed (not on every write: two gauges per write were a tenth of its cost)."""
        spool = self._spool
        if spool is None:
            return
        usage = spool.usage()
        if usage != self._reported_usage:
            self._reported_usage = usage
            self._observer.on_spool_usage(*usage)

    def _retried(self) -> None:
        with self._counters.lock:
            self._counters.retried += 1
        self._observer.on_retried(1)

    def _refuse(self, outcome: LogOutcome, count: int) -> None:
        with self._counters.lock:
            self._counters.refused += count
            total = self._counters.refused
        self._observer.on_refused(outcome, count)
        now = time.monotonic()
        if now - self._last_refusal_log >= _REFUSAL_LOG_INTERVAL:
            self._last_refusal_log = now
            log.warning("payload logger refused %d event(s): %s (total refused %d)", count, outcome, total)


class _Syncer:
    """`fsync=group`: a thread that fdatasyncs the spool as soon as something was written since its last
    sync, then settles the callers waiting for those events; writes made during a sync wait for the next,
    so under concurrency many events share one fsync."""

    def __init__(self, spool: Spool, lock: threading.Lock) -> None:
        self._spool = spool
        self._lock = lock
        self._written = 0  # write generations: one per `wait_for_sync` call
        self._waiting: list[tuple[int, list[Future[LogOutcome] | Receipt]]] = []
        self._wake = threading.Condition(lock)
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name="payload-spool-sync", daemon=True)
        self._thread.start()

    def wait_for_sync(self, sinks: list[Future[LogOutcome] | Receipt]) -> None:
        """Under the lock, after a write: settle `sinks` once it is synced."""
        self._written += 1
        self._waiting.append((self._written, sinks))
        self._wake.notify()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify()
        self._thread.join()

    def _main(self) -> None:
        synced = 0
        while True:
            with self._lock:
                while self._written == synced and not self._stopping:
                    self._wake.wait()
                if self._written == synced:
                    return
                target = self._written
                fds, new_file = self._spool.sync_targets()
            outcome = LogOutcome.ACCEPTED
            try:
                for fd in fds:
                    try:
                        os.fdatasync(fd)
                    finally:
                        os.close(fd)
                if new_file:
                    sync_directory(self._spool.directory)
            except OSError:
                log.exception("payload spool fsync failed; its events may not survive a power cut")
                outcome = LogOutcome.REFUSED_SPOOL_ERROR
            with self._lock:
                done = [sinks for generation, sinks in self._waiting if generation <= target]
                self._waiting = [(g, s) for g, s in self._waiting if g > target]
            synced = target
            _settle([(sink, outcome) for sinks in done for sink in sinks])


@functools.lru_cache(maxsize=256)
def _servable(destination: str) -> bool:
    """A sink serves it (`check_destination`, a URL parse: once per destination, not per event)."""
    try:
        check_destination(destination)
    except ValueError:
        return False
    return True


def _settle(outcomes: list[tuple[_Sink, LogOutcome]]) -> None:
    """Resolve futures; settle receipts (at once on their own loop's thread, else with one callback per
    loop for the whole batch)."""
    here = threading.get_ident()
    remote: dict[asyncio.AbstractEventLoop, list[tuple[Receipt, int, int]]] = {}
    for sink, outcome in outcomes:
        if isinstance(sink, Receipt):
            refused = 0 if outcome is LogOutcome.ACCEPTED else 1
            if sink.thread == here:
                sink.settle(1, refused)
            else:
                remote.setdefault(sink.loop, []).append((sink, 1, refused))
        elif sink is not None:
            sink.set_result(outcome)
    for loop, settled in remote.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits for these any more
            loop.call_soon_threadsafe(settle_all, settled)
