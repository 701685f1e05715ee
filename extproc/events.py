"""The hook where the executor hands per-node request/response payloads to a payload logger.

`extproc/logging` (CloudEvents with a durable spool) implements `NodeEvents`; the executor calls it only
for nodes whose spec has a `logger`, before the node call (`request`) and after it (`response`), and must
never wait on it: implementations enqueue and return.
"""

from __future__ import annotations

from typing import Protocol

from extproc.codecs import Payload
from extproc.config import NodeConfig, PredictorConfig


class NodeEvents(Protocol):
    def request(self, predictor: PredictorConfig, node: NodeConfig, puid: str, payload: Payload) -> None: ...

    def response(self, predictor: PredictorConfig, node: NodeConfig, puid: str, payload: Payload) -> None: ...


class NoEvents:
    def request(self, predictor: PredictorConfig, node: NodeConfig, puid: str, payload: Payload) -> None:
        return None

    def response(self, predictor: PredictorConfig, node: NodeConfig, puid: str, payload: Payload) -> None:
        return None
