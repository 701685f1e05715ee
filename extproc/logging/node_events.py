"""The `extproc.events.NodeEvents` hook, implemented by the payload logger.

For a node whose spec has `logger: {mode, url}`, the executor calls `request(...)` before the node call
and `response(...)` after it; the observability-mode streams of single-model predictors call
`request_bytes(...)` and `response_bytes(...)` with the bodies as they crossed the gateway. Each becomes a
CloudEvent queued with `PayloadLogger.post`, never waiting (the writer thread spools it; a refusal is
counted and logged by the logger).

Typed structurally (`_Predictor`, `_Node`, `_Payload`), so this package still imports nothing of the
executor. A request carrying `Seldon-Skip-Logging` (see `skip_logging_requested`) should get the
executor's `NoEvents` instead of this object.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from extproc.logging.events import EventType, PayloadEvent
from extproc.logging.logger import PayloadLogger

_LOGS_REQUEST = frozenset({"all", "request"})
_LOGS_RESPONSE = frozenset({"all", "response"})


class _Predictor(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def deployment(self) -> str: ...
    @property
    def name(self) -> str: ...


class _Node(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def logger_mode(self) -> str | None: ...
    @property
    def logger_url(self) -> str | None: ...


class _Payload(Protocol):
    @property
    def protocol(self) -> str: ...
    @property
    def body(self) -> Any: ...


class SpoolingNodeEvents:
    def __init__(self, logger: PayloadLogger, source: str) -> None:
        """`source` is `Ce-Source`: this executor's URL, as Seldon's executor sends its own."""
        self._logger = logger
        self._source = source

    def request(self, predictor: _Predictor, node: _Node, puid: str, payload: _Payload) -> None:
        if (node.logger_mode or "").lower() in _LOGS_REQUEST:
            body = orjson.dumps(payload.body, option=orjson.OPT_SERIALIZE_NUMPY)
            self._logger.post(self._event(EventType.REQUEST, predictor, node, puid, body, payload.protocol))

    def response(self, predictor: _Predictor, node: _Node, puid: str, payload: _Payload) -> None:
        if (node.logger_mode or "").lower() in _LOGS_RESPONSE:
            body = orjson.dumps(payload.body, option=orjson.OPT_SERIALIZE_NUMPY)
            self._logger.post(self._event(EventType.RESPONSE, predictor, node, puid, body, payload.protocol))

    def request_bytes(
        self, predictor: _Predictor, node: _Node, puid: str, body: bytes, protocol: str
    ) -> None:
        if (node.logger_mode or "").lower() in _LOGS_REQUEST:
            self._logger.post(self._event(EventType.REQUEST, predictor, node, puid, body, protocol))

    def response_bytes(
        self, predictor: _Predictor, node: _Node, puid: str, body: bytes, protocol: str
    ) -> None:
        if (node.logger_mode or "").lower() in _LOGS_RESPONSE:
            self._logger.post(self._event(EventType.RESPONSE, predictor, node, puid, body, protocol))

    def _event(
        self, kind: EventType, predictor: _Predictor, node: _Node, puid: str, body: bytes, protocol: str
    ) -> PayloadEvent:
        return PayloadEvent(
            type=kind,
            body=body,
            content_type="application/json",
            request_id=puid,
            model_id=node.name,
            deployment=predictor.deployment,
            namespace=predictor.namespace,
            predictor=predictor.name,
            protocol=protocol,
            source=self._source,
            destination=node.logger_url or None,
        )
