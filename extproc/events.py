"""The hook where extproc hands payloads to a payload logger.

`extproc/logging` (CloudEvents with a durable spool) implements `NodeEvents`. Two callers:
- the graph executor, for nodes whose spec has a `logger`, before the node call (`request`) and after it
  (`response`), with the decoded `Payload`;
- the observability-mode streams of single-model predictors (`extproc.server.exchanges`), with the bytes
  the client sent and the runtime answered (`request_bytes`, `response_bytes`), as Seldon logs them.
Neither may wait on it: implementations check the node's `logger` mode, enqueue and return.
"""

from __future__ import annotations

from typing import Protocol

from extproc.codecs import Payload
from extproc.config import NodeConfig, PredictorConfig


class NodeEvents(Protocol):
    def request(self, predictor: PredictorConfig, node: NodeConfig, puid: str, payload: Payload) -> None: ...

    def response(self, predictor: PredictorConfig, node: NodeConfig, puid: str, payload: Payload) -> None: ...

    def request_bytes(
        self, predictor: PredictorConfig, node: NodeConfig, puid: str, body: bytes, protocol: str
    ) -> None:
        """`body`: JSON as the client sent it (gRPC messages are turned into their JSON form first)."""

    def response_bytes(
        self, predictor: PredictorConfig, node: NodeConfig, puid: str, body: bytes, protocol: str
    ) -> None: ...


class NoEvents:
    def request(self, predictor: PredictorConfig, node: NodeConfig, puid: str, payload: Payload) -> None:
        return None

    def response(self, predictor: PredictorConfig, node: NodeConfig, puid: str, payload: Payload) -> None:
        return None

    def request_bytes(
        self, predictor: PredictorConfig, node: NodeConfig, puid: str, body: bytes, protocol: str
    ) -> None:
        return None

    def response_bytes(
        self, predictor: PredictorConfig, node: NodeConfig, puid: str, body: bytes, protocol: str
    ) -> None:
        return None
