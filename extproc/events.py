"""The hook where extproc hands payloads to a payload logger.

`payload_log` (CloudEvents with a durable spool) implements `NodeEvents`. Two callers:
- the graph executor opens one `RequestEvents` per prediction or feedback (`open`), logs a node that has a
  `logger` around its whole piece of the graph, as Seldon's executor does (`request`: the input the node
  receives, before its input transform; `response`: its output after its children, aggregation and output
  transform; `feedback`: the feedback a node is sent), and awaits `written()` before the answer leaves,
  so no client gets an answer whose events a crash could still lose;
- the observability-mode streams of single-model predictors (`extproc.server.exchanges`, an option since
  runtimes log their single models themselves), with the bytes the client sent and the runtime answered
  (`request_bytes`, `response_bytes`); Envoy waits for no answer there, so nothing waits for those.
Implementations check the node's `logger` mode, enqueue and return; only `written` waits.
"""

from __future__ import annotations

from typing import Protocol

from extproc.codecs import Payload
from extproc.config import NodeConfig, PredictorConfig


class RequestEvents(Protocol):
    """The events of one request, for the nodes on its path."""

    def request(self, node: NodeConfig, payload: Payload) -> None: ...

    def response(self, node: NodeConfig, payload: Payload) -> None: ...

    def feedback(self, node: NodeConfig, body: bytes) -> None: ...

    async def written(self) -> None:
        """Every event logged so far is in the spool (or was refused, and counted)."""


class NodeEvents(Protocol):
    def open(self, predictor: PredictorConfig, puid: str) -> RequestEvents: ...

    def request_bytes(
        self, predictor: PredictorConfig, node: NodeConfig, puid: str, body: bytes, protocol: str
    ) -> None:
        """`body`: JSON as the client sent it (gRPC messages are turned into their JSON form first)."""

    def response_bytes(
        self, predictor: PredictorConfig, node: NodeConfig, puid: str, body: bytes, protocol: str
    ) -> None: ...


class _NoRequestEvents:
    def request(self, node: NodeConfig, payload: Payload) -> None:
        return None

    def response(self, node: NodeConfig, payload: Payload) -> None:
        return None

    def feedback(self, node: NodeConfig, body: bytes) -> None:
        return None

    async def written(self) -> None:
        return None


NO_REQUEST_EVENTS: RequestEvents = _NoRequestEvents()


class NoEvents:
    def open(self, predictor: PredictorConfig, puid: str) -> RequestEvents:
        return NO_REQUEST_EVENTS

    def request_bytes(
        self, predictor: PredictorConfig, node: NodeConfig, puid: str, body: bytes, protocol: str
    ) -> None:
        return None

    def response_bytes(
        self, predictor: PredictorConfig, node: NodeConfig, puid: str, body: bytes, protocol: str
    ) -> None:
        return None
