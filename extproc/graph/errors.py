"""The executor's error: an HTTP status, Seldon's `reason` and an `info` that names the failing node.

The edges map it once: REST to Seldon's `{"status": {...}}` JSON or V2's `{"error": ...}`, gRPC to a
status code (`grpc_code`).
"""

from __future__ import annotations

import grpc

_GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class GraphError(Exception):
    def __init__(self, status: int, reason: str, info: str) -> None:
        super().__init__(info)
        self.status = status
        self.reason = reason
        self.info = info

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return _GRPC_CODES.get(self.status, grpc.StatusCode.INTERNAL)

    def seldon_json(self) -> dict[str, object]:
        return {
            "status": {"code": self.status, "info": self.info, "reason": self.reason, "status": "FAILURE"}
        }


class NodeError(GraphError):
    """A graph node failed: it answered an error, timed out, was unreachable or sent garbage."""

    def __init__(self, node: str, status: int, reason: str, detail: str) -> None:
        super().__init__(status, reason, f"node {node!r}: {detail}")
        self.node = node


def bad_request(info: str) -> GraphError:
    return GraphError(400, "BAD_REQUEST", info)
