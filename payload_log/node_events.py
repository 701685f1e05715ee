"""The `extproc.events.NodeEvents` hook, implemented by the payload logger.

The graph executor `open`s one `_RequestEvents` per prediction (or feedback) of a predictor that has a
logged node, logs through it the nodes whose `logger` mode asks for it, and awaits `written()` before the
answer leaves: the events go through one `Receipt`, written with other requests' events (one write per
turn of the loop, or at once by `written()`). The observability-mode streams of single-model predictors
call `request_bytes(...)` and `response_bytes(...)` with the bodies as they crossed the gateway, posted
without waiting (Envoy does not wait for that stream either).

Typed structurally (`_Predictor`, `_Node`, `_Payload`), so this package still imports nothing of the
executor. A request carrying `Seldon-Skip-Logging` (see `skip_logging_requested`) is not opened at all.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from payload_log.events import EventTemplate, EventType, PayloadEvent
from payload_log.logger import PayloadLogger
from payload_log.receipt import Receipt

LOGS_REQUEST = frozenset({"all", "request"})
LOGS_RESPONSE = frozenset({"all", "response"})
_MAX_TEMPLATES = 4096


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
        self._templates: dict[tuple[str, str, str, str, str | None, str], EventTemplate] = {}

    def template(self, predictor: _Predictor, node: _Node, protocol: str) -> EventTemplate:
        """What the node's events share (`EventTemplate`), rendered once per node and protocol."""
        name, url = node.name, node.logger_url
        key = (predictor.namespace, predictor.deployment, predictor.name, name, url, protocol)
        found = self._templates.get(key)
        if found is None:
            if len(self._templates) >= _MAX_TEMPLATES:  # graphs come and go: never grow without bound
                self._templates.clear()
            found = self._templates[key] = EventTemplate(
                model_id=node.name,
                deployment=predictor.deployment,
                namespace=predictor.namespace,
                predictor=predictor.name,
                protocol=protocol,
                source=self._source,
                destination=node.logger_url or None,
            )
        return found

    def open(self, predictor: _Predictor, puid: str) -> _RequestEvents:
        return _RequestEvents(self, predictor, puid)

    def request_bytes(
        self, predictor: _Predictor, node: _Node, puid: str, body: bytes, protocol: str
    ) -> None:
        if (node.logger_mode or "").lower() in LOGS_REQUEST:
            self._logger.post(self.event(EventType.REQUEST, predictor, node, puid, body, protocol))

    def response_bytes(
        self, predictor: _Predictor, node: _Node, puid: str, body: bytes, protocol: str
    ) -> None:
        if (node.logger_mode or "").lower() in LOGS_RESPONSE:
            self._logger.post(self.event(EventType.RESPONSE, predictor, node, puid, body, protocol))

    def event(
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


class _RequestEvents:
    """One request's events (the executor has checked each node's logger mode); one receipt for all."""

    __slots__ = ("_owner", "_predictor", "_puid", "_receipt")

    def __init__(self, owner: SpoolingNodeEvents, predictor: _Predictor, puid: str) -> None:
        self._owner = owner
        self._predictor = predictor
        self._puid = puid
        self._receipt: Receipt | None = None

    def request(self, node: _Node, payload: _Payload) -> None:
        body = orjson.dumps(payload.body, option=orjson.OPT_SERIALIZE_NUMPY)
        self._post(EventType.REQUEST, node, body, payload.protocol)

    def response(self, node: _Node, payload: _Payload) -> None:
        body = orjson.dumps(payload.body, option=orjson.OPT_SERIALIZE_NUMPY)
        self._post(EventType.RESPONSE, node, body, payload.protocol)

    def feedback(self, node: _Node, body: bytes) -> None:
        self._post(EventType.FEEDBACK, node, body, "seldon")

    async def written(self) -> None:
        if self._receipt is not None:
            await self._receipt.written()

    def _post(self, kind: EventType, node: _Node, body: bytes, protocol: str) -> None:
        owner = self._owner
        receipt = self._receipt
        if receipt is None:
            receipt = self._receipt = owner._logger.receipt()
        receipt.post_templated(owner.template(self._predictor, node, protocol), kind, self._puid, body)
