"""`PayloadLogger`: accept events into the durable spool, deliver them in the background.

Two ways to run, chosen by `start`:
- on an event loop (`start(loop)`, what extproc and the runtimes do, with `fsync=os`): no thread of its
  own. Events posted during a turn of the loop (through a request's `Receipt`, or `post`/`submit`) are
  committed in one transaction a turn later (or `loop_commit_seconds` after the first), which also
  deletes what delivery acknowledged; then the receipts are settled, so the answers waiting for them
  go, and the committed events are handed to delivery, whose lanes run as tasks on the same loop;
- threads (`start()`, and always with `fsync=group`, so no loop waits for an fsync): the writer takes
  queued events in batches (what arrives within `group_commit_seconds`, or sooner once
  `group_commit_events` callers wait for theirs, every request with events on the way waits, or
  `max_batch_events` are queued), refuses those that do not fit, commits the rest in one transaction and
  only then resolves the futures and receipts of callers that wait (`submit`, `alog`, `log`, `Receipt`;
  `post` has none) and hands the committed events to `delivery.Delivery`, a thread with its own loop.
Either way delivery sends spooled events lane by lane, at least once, in order per request id, and
reports what sinks took for the next transaction to delete.

After a crash or SIGKILL, `start` finds every committed event still in the spool and delivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
import zlib
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from payload_log.delivery import Delivery
from payload_log.events import PayloadEvent
from payload_log.receipt import Receipt, settle_all
from payload_log.settings import FsyncPolicy, PayloadLoggerSettings
from payload_log.sinks import check_destination
from payload_log.spool import NewRecord, Spool, SpooledEvent

log = logging.getLogger(__name__)

# seconds between warnings about refused events, so a full spool cannot flood the logs
_REFUSAL_LOG_INTERVAL = 10.0
# on-loop: seconds delivered events wait to be deleted with the next events' commit before a commit of
# their own (a spool with nothing new to write still forgets what was delivered)
_ACK_COMMIT_DELAY = 0.25
# on-loop: seconds between WAL checkpoints, made on a thread (see `_checkpoint_periodically`)
_CHECKPOINT_INTERVAL = 1.0


class LogOutcome(StrEnum):
    ACCEPTED = "accepted"
    SKIPPED = "skipped"
    REFUSED_FULL = "refused_full"
    REFUSED_STOPPED = "refused_stopped"
    REFUSED_NO_DESTINATION = "refused_no_destination"
    REFUSED_SPOOL_ERROR = "refused_spool_error"
    REFUSED_BACKLOG = "refused_backlog"

    @property
    def accepted(self) -> bool:
        return self is LogOutcome.ACCEPTED


class LoggerObserver(Protocol):
    """Metrics hook (see `extproc.metrics.PayloadLogMetrics`); called from the logger's threads."""

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
        self.events = 0
        self.bytes = 0
        self.accepted = 0
        self.refused = 0
        self.delivered = 0
        self.retried = 0
        self.dead_lettered = 0
        self.pending = 0  # submitted, not yet written or refused by the writer
        self.waited = 0  # of those, events whose caller waits for the outcome (submit, alog, log)
        self.open = 0  # receipts with events not yet committed (requests whose events are on the way)
        self.waiting = 0  # of those, receipts awaited: answers held until their events are in
        self.first_wait = 0.0  # monotonic time the oldest of those began to wait


# the future resolves to the event's outcome; a receipt is settled per batch; None for `post`
_Sink = Future[LogOutcome] | Receipt | None
_Pending = tuple[PayloadEvent, _Sink]
# what the writer's queue carries: an event to spool, delivered events to delete (a list), None to stop
_Item = _Pending | list[SpooledEvent] | None


class PayloadLogger:
    def __init__(self, settings: PayloadLoggerSettings, observer: LoggerObserver | None = None) -> None:
        self.settings = settings
        self._observer: LoggerObserver = observer or NullObserver()
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._counters = _Counters()
        self._running = False
        self._state_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._delivery = Delivery(settings, self._finished, self._retried, self._acknowledge)
        self._last_refusal_log = 0.0
        self._window_over = threading.Event()  # set by callers once `_batch_ready`, and by `stop`
        # on-loop mode (`start(loop)`): the loop that writes and delivers, and what it has to write
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._spool: Spool | None = None
        self._on_loop: list[_Pending] = []
        self._acks: list[SpooledEvent] = []
        self._flush_scheduled = False
        self._ack_timer: asyncio.TimerHandle | None = None
        self._checkpoints: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Open the spool, recover what a previous process left in it and begin delivering.

        With `loop` (called on that loop's thread) and `fsync=os`, the logger works on the loop, with no
        thread of its own (with `fsync=group` it keeps its threads, so the loop never waits for an
        fsync): events posted during one turn of the loop are committed together at its next turn (group
        commit by loop iteration), and delivery runs as tasks on it. Measured with a logged runtime under
        wrk: a thread hand-off per batch (queue, wake-up, GIL, `call_soon_threadsafe` back) cost more
        than the commit itself (275 against 190 us of CPU per request, 74 unlogged). A commit with
        `fsync=os` is a WAL append to the page cache, tens of microseconds of the loop."""
        with self._state_lock:
            if self._running:
                return
            spool = Spool(self.settings.spool_dir, self.settings.fsync, writer=True)
            events, size = spool.usage()
            with self._counters.lock:
                self._counters.events, self._counters.bytes = events, size
            self._observer.on_spool_usage(events, size)
            if events:
                log.info("payload spool holds %d undelivered events (%d bytes); delivering", events, size)
            self._running = True
            if loop is not None and self.settings.fsync is FsyncPolicy.OS:
                self._loop, self._loop_thread, self._spool = loop, threading.get_ident(), spool
                spool.leave_checkpoints()
                self._checkpoints = loop.create_task(self._checkpoint_periodically())
                self._delivery.start_on(loop)
                return
            self._delivery.start()
            self._writer = threading.Thread(
                target=self._writer_main, args=(spool,), name="payload-spool-writer", daemon=True
            )
            self._writer.start()

    def stop(self, drain_seconds: float = 0.0) -> None:
        """Stop accepting; wait up to `drain_seconds` for what was accepted to be delivered; stop
        delivering, then writing (events queued before the stop are still spooled, and the last
        acknowledged deliveries deleted). Undelivered events stay spooled for the next `start`.
        On-loop (`start(loop)`): call it from another thread (`asyncio.to_thread`), or await `astop`."""
        if self._loop is not None:
            loop = self._loop
            try:
                asyncio.run_coroutine_threadsafe(self.astop(drain_seconds), loop).result()
            except RuntimeError:  # the loop is closed: what was committed stays spooled
                self._close_on_loop()
            return
        with self._state_lock:
            if not self._running:
                return
            self._running = False
        self._window_over.set()  # a writer gathering a batch writes it now
        deadline = time.monotonic() + drain_seconds
        while self._undelivered() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._delivery.stop()  # its last acknowledgements join the writer's queue, before the None
        self._queue.put(None)
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        late, _ = self._drain_queue()  # submitted while stopping, after the writer left: refuse, never hang
        with self._counters.lock:
            self._counters.pending -= len(late)
            self._counters.waited -= sum(isinstance(sink, Future) for _, sink in late)
        _resolve(late, LogOutcome.REFUSED_STOPPED)
        if late:
            self._refuse(LogOutcome.REFUSED_STOPPED, len(late))

    async def astop(self, drain_seconds: float = 0.0) -> None:
        """`stop` for the on-loop mode, on the loop."""
        with self._state_lock:
            if not self._running:
                return
            self._running = False
        deadline = time.monotonic() + drain_seconds
        while self._undelivered() and time.monotonic() < deadline:  # noqa: ASYNC110 (counters, no event)
            await asyncio.sleep(0.05)
        await self._delivery.astop()  # its last acknowledgements join `_acks`
        self._close_on_loop()

    async def _checkpoint_periodically(self) -> None:
        """On-loop: checkpoint the WAL every `_CHECKPOINT_INTERVAL` seconds from a thread, on a
        connection of its own (SQLite's auto-checkpoint would fsync on the loop, stalling every answer
        waiting on it: a logged runtime under load answered in 13 ms instead of 5)."""
        checkpointer = await asyncio.to_thread(
            Spool, self.settings.spool_dir, self.settings.fsync, writer=False
        )
        try:
            while True:
                await asyncio.sleep(_CHECKPOINT_INTERVAL)
                try:
                    await asyncio.to_thread(checkpointer.checkpoint)
                except Exception:  # a busy or failing disk: the WAL grows until the next one succeeds
                    log.warning("payload spool checkpoint failed", exc_info=True)
        finally:
            checkpointer.close()

    def _close_on_loop(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            self._checkpoints = None
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        spool, self._spool = self._spool, None
        if spool is None:
            return
        batch, self._on_loop = self._on_loop, []
        acks, self._acks = self._acks, []
        with contextlib.suppress(Exception):
            self._write(spool, batch, acks)
        spool.close()

    def _acknowledge(self, delivered: list[SpooledEvent]) -> None:
        """From delivery: events a sink took, to delete in the next transaction."""
        if self._loop is None:
            self._queue.put(delivered)
            return
        self._acks += delivered  # on the loop, where delivery runs
        # deleted with the next events' commit; a commit of their own only if none comes soon
        if self._ack_timer is None and self._loop is not None:
            self._ack_timer = self._loop.call_later(_ACK_COMMIT_DELAY, self._flush_acks)

    def _flush_acks(self) -> None:
        self._ack_timer = None
        if self._acks:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            delay = self.settings.loop_commit_seconds
            if delay > 0:
                self._loop.call_later(delay, self._flush)
            else:
                self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """On the loop, a turn after the first event or acknowledgement of a batch: commit them all."""
        self._flush_scheduled = False
        batch, self._on_loop = self._on_loop, []
        acks, self._acks = self._acks, []
        spool = self._spool
        if spool is None:  # stopped: `_close_on_loop` wrote what there was
            with self._counters.lock:
                self._counters.pending -= len(batch)
                self._counters.waited -= sum(isinstance(sink, Future) for _, sink in batch)
            _resolve(batch, LogOutcome.REFUSED_STOPPED)
            return
        self._write(spool, batch, acks)

    def _put_on_loop(self, item: _Pending) -> None:
        self._on_loop.append(item)
        self._schedule_flush()

    def _undelivered(self) -> int:
        """Events spooled or on their way to the spool."""
        c = self._counters
        with c.lock:
            return c.events + c.pending

    # -- accepting -------------------------------------------------------------------------------------

    def submit(self, event: PayloadEvent, *, skip_logging: bool = False) -> Future[LogOutcome]:
        """Queue `event`; the future resolves once it is on disk (ACCEPTED) or refused."""
        future: Future[LogOutcome] = Future()
        if skip_logging:
            future.set_result(LogOutcome.SKIPPED)
            return future
        refused = self._enqueue(event, future)
        if refused is not None:
            future.set_result(refused)
        return future

    def post(self, event: PayloadEvent) -> None:
        """Queue `event` for callers that never wait for its outcome (node events): as `submit`, without
        a future to make and resolve (a `concurrent.futures.Future` and its condition cost ~5 us of the
        event loop's and the writer's time per event). A refusal is counted and logged all the same."""
        self._enqueue(event, None)

    def receipt(self) -> Receipt:
        """A fresh receipt for one request's events, bound to the running event loop (see `receipt`)."""
        return Receipt(self, asyncio.get_running_loop())

    def _receipts_open(self, count: int) -> None:
        with self._counters.lock:
            self._counters.open += count

    def _receipt_waits(self) -> None:
        c = self._counters
        with c.lock:
            c.waiting += 1
            if c.waiting == 1:
                c.first_wait = time.monotonic()
        # the writer re-reads its deadline (the first waiter shortens it) or writes at once
        self._window_over.set()

    def _receipt_closed(self, waited: bool) -> None:
        c = self._counters
        with c.lock:
            c.open -= 1
            c.waiting -= waited

    def _enqueue(self, event: PayloadEvent, future: _Sink) -> LogOutcome | None:
        """Queue the event, or count and return why it is refused."""
        if not self._running:
            self._refuse(LogOutcome.REFUSED_STOPPED, 1)
            return LogOutcome.REFUSED_STOPPED
        c = self._counters
        with c.lock:
            backlog = c.pending >= self.settings.max_pending_events
            if not backlog:
                c.pending += 1
                c.waited += isinstance(future, Future)
        if backlog:
            self._refuse(LogOutcome.REFUSED_BACKLOG, 1)
            return LogOutcome.REFUSED_BACKLOG
        if self._loop is not None:
            if threading.get_ident() == self._loop_thread:
                self._on_loop.append((event, future))
                self._schedule_flush()
            else:
                self._loop.call_soon_threadsafe(self._put_on_loop, (event, future))
            return None
        self._queue.put((event, future))
        if self._batch_ready():
            self._window_over.set()
        return None

    def _batch_ready(self) -> bool:
        """Enough is queued to end the group-commit window early (see `_gather`), or the logger stops:
        `group_commit_events` callers wait, or every request with events on the way waits for them (none
        will add to the batch soon), or the queue holds `max_batch_events`."""
        c = self._counters
        if c.waited >= self.settings.group_commit_events or c.pending >= self.settings.max_batch_events:
            return True
        if c.waiting and (c.waiting >= c.open or c.waiting >= self.settings.group_commit_events):
            return True
        return not self._running

    def log(self, event: PayloadEvent, *, skip_logging: bool = False) -> LogOutcome:
        """Blocking: returns once the event is spooled (or refused). For threads; async code uses `alog`."""
        return self.submit(event, skip_logging=skip_logging).result()

    async def alog(self, event: PayloadEvent, *, skip_logging: bool = False) -> LogOutcome:
        return await asyncio.wrap_future(self.submit(event, skip_logging=skip_logging))

    def stats(self) -> LoggerStats:
        c = self._counters
        with c.lock:
            return LoggerStats(
                c.events, c.bytes, c.accepted, c.refused, c.delivered, c.retried, c.dead_lettered
            )

    def _writer_main(self, spool: Spool) -> None:
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                batch: list[_Pending] = []
                delivered: list[SpooledEvent] = []
                if first is None:
                    stopping = True
                elif isinstance(first, list):
                    delivered += first
                else:
                    batch.append(first)
                # group commit: what arrives within the window goes in one transaction (one fsync); the
                # writer sleeps through the window rather than waking for each event
                if not stopping and self.settings.group_commit_seconds > 0:
                    self._gather(self.settings.group_commit_seconds)
                while len(batch) < self.settings.max_batch_events and not stopping:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                    elif isinstance(item, list):
                        delivered += item
                    else:
                        batch.append(item)
                if stopping:  # events queued before stop() are still written, not left waiting
                    late, acknowledged = self._drain_queue()
                    batch += late
                    delivered += acknowledged
                self._write(spool, batch, delivered)
        finally:
            spool.close()

    def _gather(self, window: float) -> None:
        """Sleep through the group-commit window, or less once `group_commit_events` events whose callers
        wait (`submit`, `alog`) are queued: a batch that size shares its fsync well already, and those
        callers need not wait longer. Posted events (nobody waits) fill the window up to
        `max_batch_events`, so its commit, delivery wake-up and POSTs are shared by more events. One
        wake-up per window: the caller that makes the batch ready (or `stop`) sets `_window_over`
        (polling every 5 ms woke this thread, and made it take the GIL, ten times per batch)."""
        deadline = time.monotonic() + window
        while not self._batch_ready():
            self._window_over.clear()
            if self._batch_ready():  # a caller that filled the batch before the clear has set it already
                return
            c = self._counters
            with c.lock:
                held = c.first_wait + self.settings.commit_delay_seconds if c.waiting else deadline
            remaining = min(deadline, held) - time.monotonic()
            if remaining <= 0:
                return
            self._window_over.wait(remaining)

    def _drain_queue(self) -> tuple[list[_Pending], list[SpooledEvent]]:
        """(events, delivered events) left in the queue."""
        items: list[_Pending] = []
        delivered: list[SpooledEvent] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items, delivered
            if isinstance(item, list):
                delivered += item
            elif item is not None:
                items.append(item)

    def _write(self, spool: Spool, batch: list[_Pending], delivered: list[SpooledEvent]) -> None:
        """Spool `batch` (refusing what does not fit) and delete `delivered`, in one transaction; then
        settle the batch's futures and receipts."""
        if not batch and not delivered:
            return
        with self._counters.lock:
            self._counters.pending -= len(batch)
            self._counters.waited -= sum(isinstance(sink, Future) for _, sink in batch)
        records: list[NewRecord] = []
        accepted: list[_Sink] = []  # the sink of each record
        refused: list[tuple[_Sink, LogOutcome]] = []
        refusals: dict[LogOutcome, int] = {}
        c = self._counters
        with c.lock:
            room = self.settings.max_spool_bytes - c.bytes
        added = 0
        for event, sink in batch:
            outcome, record = self._admit(event)
            size = 0 if record is None else record.size
            if record is not None and size > room:
                outcome, record = LogOutcome.REFUSED_FULL, None
            if record is None:
                refusals[outcome] = refusals.get(outcome, 0) + 1
                if sink is not None:
                    refused.append((sink, outcome))
                continue
            room -= size
            added += size
            records.append(record)
            accepted.append(sink)
        for outcome, count in refusals.items():
            self._refuse(outcome, count)
        try:
            first = spool.append(records, delete=[event.seq for event in delivered])
        except Exception:  # a disk error refuses the batch: never an accepted-but-lost event
            log.exception(
                "payload spool write failed; refusing %d events (%d delivered ones stay spooled and go "
                "again after a restart)",
                len(records),
                len(delivered),
            )
            self._refuse(LogOutcome.REFUSED_SPOOL_ERROR, len(records))
            _settle(
                refused + [(sink, LogOutcome.REFUSED_SPOOL_ERROR) for sink in accepted if sink], self._loop
            )
            return
        if delivered:
            self._finished(delivered, True)  # once per batch: the metrics observer's locks, not per event
        if records:
            with c.lock:
                c.events += len(records)
                c.bytes += added
                c.accepted += len(records)
                events, size = c.events, c.bytes
            self._observer.on_accepted(len(records))
            self._observer.on_spool_usage(events, size)
            self._delivery.handoff([record.spooled(seq) for seq, record in enumerate(records, first)])
        _settle(refused + [(sink, LogOutcome.ACCEPTED) for sink in accepted if sink is not None], self._loop)

    def _admit(self, event: PayloadEvent) -> tuple[LogOutcome, NewRecord | None]:
        destination = event.destination or self.settings.default_endpoint
        if not destination:
            return LogOutcome.REFUSED_NO_DESTINATION, None
        if not _servable(destination):
            return LogOutcome.REFUSED_NO_DESTINATION, None
        lane = zlib.crc32(event.request_id.encode()) % self.settings.lanes_per_destination
        record = NewRecord.of(destination, lane, event.request_id, event.headers(), event.body)
        return LogOutcome.ACCEPTED, record

    def _refuse(self, outcome: LogOutcome, count: int) -> None:
        with self._counters.lock:
            self._counters.refused += count
        self._observer.on_refused(outcome, count)
        now = time.monotonic()
        if now - self._last_refusal_log >= _REFUSAL_LOG_INTERVAL:
            self._last_refusal_log = now
            log.warning(
                "payload logger refused %d event(s): %s (total refused %d)",
                count,
                outcome,
                self.stats().refused,
            )

    def _finished(self, done: list[SpooledEvent], delivered: bool) -> None:
        count, freed = len(done), sum(event.size for event in done)
        c = self._counters
        with c.lock:
            c.events -= count
            c.bytes -= freed
            if delivered:
                c.delivered += count
            else:
                c.dead_lettered += count
            events, size = c.events, c.bytes
        if delivered:
            self._observer.on_delivered(count)
        else:
            self._observer.on_dead_lettered(count)
        self._observer.on_spool_usage(events, size)

    def _retried(self) -> None:
        with self._counters.lock:
            self._counters.retried += 1
        self._observer.on_retried(1)


@functools.lru_cache(maxsize=256)
def _servable(destination: str) -> bool:
    """A sink serves it (`check_destination`, a URL parse: once per destination, not per event)."""
    try:
        check_destination(destination)
    except ValueError:
        return False
    return True


def _resolve(items: list[_Pending], outcome: LogOutcome) -> None:
    _settle([(sink, outcome) for _, sink in items if sink is not None])


def _settle(outcomes: list[tuple[_Sink, LogOutcome]], here: asyncio.AbstractEventLoop | None = None) -> None:
    """Resolve futures; settle receipts with one callback per event loop for the whole batch (at once for
    `here`, the on-loop logger's loop, which is running this)."""
    by_receipt: dict[Receipt, list[int]] = {}
    for sink, outcome in outcomes:
        if isinstance(sink, Receipt):
            counts = by_receipt.setdefault(sink, [0, 0])
            counts[0] += 1
            counts[1] += not outcome.accepted
        elif sink is not None:
            sink.set_result(outcome)
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Receipt, int, int]]] = {}
    for receipt, (count, refused) in by_receipt.items():
        by_loop.setdefault(receipt.loop, []).append((receipt, count, refused))
    for loop, settled in by_loop.items():
        if loop is here:
            settle_all(settled)
            continue
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits for these any more
            loop.call_soon_threadsafe(settle_all, settled)
