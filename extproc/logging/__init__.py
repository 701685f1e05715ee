"""Payload logging: CloudEvents 1.0 events, spooled durably on disk, delivered at least once.

Pure of Envoy and of the executor: the graph executor reaches it through `SpoolingNodeEvents` (its
`NodeEvents` hook), anything else builds `PayloadEvent`s and calls `PayloadLogger.alog`/`submit`; nothing
here imports them. Neighbours: `extproc.metrics.PayloadLogMetrics` observes the logger; the entrypoint
builds the settings (`settings_from_env` reads `REQUEST_LOGGER_DEFAULT_ENDPOINT`).
"""

from extproc.logging.events import (
    SKIP_LOGGING_HEADER,
    EventType,
    PayloadEvent,
    WireProtocol,
    decode_body,
    skip_logging_requested,
)
from extproc.logging.logger import LoggerObserver, LoggerStats, LogOutcome, NullObserver, PayloadLogger
from extproc.logging.node_events import SpoolingNodeEvents
from extproc.logging.settings import (
    DEFAULT_ENDPOINT_ENV,
    FsyncPolicy,
    FullPolicy,
    PayloadLoggerSettings,
    settings_from_env,
)
from extproc.logging.sinks import structured_event

__all__ = [
    "DEFAULT_ENDPOINT_ENV",
    "SKIP_LOGGING_HEADER",
    "EventType",
    "FsyncPolicy",
    "FullPolicy",
    "LogOutcome",
    "LoggerObserver",
    "LoggerStats",
    "NullObserver",
    "PayloadEvent",
    "PayloadLogger",
    "PayloadLoggerSettings",
    "SpoolingNodeEvents",
    "WireProtocol",
    "decode_body",
    "settings_from_env",
    "skip_logging_requested",
    "structured_event",
]
