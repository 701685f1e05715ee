"""The payload logger's Prometheus counters: a `LoggerObserver` that extproc and the model runtimes both
pass to `PayloadLogger`, so a graph's and a single model's payload logs are watched with the same series
(`seldon_mesh_payload_log_*`). The caller owns the registry (and its multiprocess mode, if any)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from payload_log.logger import LogOutcome


class PayloadLogMetrics:
    """The payload logger's observer: pass it as `PayloadLogger(settings, observer=...)`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        prefix = "seldon_mesh_payload_log_"
        self.accepted = Counter(prefix + "accepted", "Events written to the spool", registry=registry)
        self.refused = Counter(
            prefix + "refused", "Events refused (spool full, logger stopped, no destination)", ["reason"],
            registry=registry,
        )  # fmt: skip
        self.delivered = Counter(prefix + "delivered", "Events a sink took", registry=registry)
        self.retried = Counter(prefix + "retried", "Failed delivery attempts that will be retried",
                               registry=registry)  # fmt: skip
        self.dead_lettered = Counter(
            prefix + "dead_lettered", "Events a sink rejected for good, kept in the dead-letter table",
            registry=registry,
        )  # fmt: skip
        self.spool_events = Gauge(prefix + "spool_events", "Events spooled, not yet delivered",
                                  registry=registry, multiprocess_mode="livesum")  # fmt: skip
        self.spool_bytes = Gauge(prefix + "spool_bytes", "Bytes spooled, not yet delivered",
                                 registry=registry, multiprocess_mode="livesum")  # fmt: skip
        for reason in LogOutcome:
            if reason.value.startswith("refused"):  # present at 0 from the start, so rate() and alerts work
                self.refused.labels(reason.value)

    def on_accepted(self, count: int) -> None:
        self.accepted.inc(count)

    def on_refused(self, reason: LogOutcome, count: int) -> None:
        self.refused.labels(reason.value).inc(count)

    def on_delivered(self, count: int) -> None:
        self.delivered.inc(count)

    def on_retried(self, count: int) -> None:
        self.retried.inc(count)

    def on_dead_lettered(self, count: int) -> None:
        self.dead_lettered.inc(count)

    def on_spool_usage(self, events: int, size_bytes: int) -> None:
        self.spool_events.set(events)
        self.spool_bytes.set(size_bytes)
