"""Payload logging: CloudEvents 1.0 events, spooled durably on disk, delivered at least once.

Shared by extproc (graphs) and the model runtimes (single models, logged in process); it imports neither,
nor Envoy. The graph executor reaches it through `SpoolingNodeEvents` (its `NodeEvents` hook); anything
else builds `PayloadEvent`s and calls `PayloadLogger.alog`/`submit`. `metrics.PayloadLogMetrics` observes
the logger; the entrypoints build the settings (`settings_from_env` reads `REQUEST_LOGGER_DEFAULT_ENDPOINT`).
"""

from payload_log.events import (
    SKIP_LOGGING_HEADER,
    EventTemplate,
    EventType,
    PayloadEvent,
    WireProtocol,
    decode_body,
    skip_logging_requested,
)
from payload_log.logger import LoggerObserver, LoggerStats, LogOutcome, NullObserver, PayloadLogger
from payload_log.node_events import SpoolingNodeEvents
from payload_log.settings import (
    DEFAULT_ENDPOINT_ENV,
    FsyncPolicy,
    FullPolicy,
    PayloadLoggerSettings,
    settings_from_env,
)
from payload_log.sinks import structured_event

__all__ = [
    "DEFAULT_ENDPOINT_ENV",
    "SKIP_LOGGING_HEADER",
    "EventTemplate",
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
