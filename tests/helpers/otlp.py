"""A test OTLP/gRPC trace receiver on `opentelemetry-proto`: a real `TraceService/Export` server on a
loopback port that keeps every span it is sent, for tests that follow a request across processes
(Envoy, ext_proc, runtimes all export here as they would to Jaeger or a collector).

The handler keeps each request's bytes as they arrive and answers; they are parsed when `spans()` is
read. The benchmarks run this receiver on the same two cores as the mesh they measure, where a Python
parse of every span (~10 us each, thousands a second) took CPU from the mesh that a collector on its own
machine would not; the tests see the same spans either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_ANSWER = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    service: str
    attributes: dict[str, Any]


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return (
        getattr(value, kind) if kind in ("string_value", "int_value", "double_value", "bool_value") else None
    )


def decode(raw: bytes) -> list[ReceivedSpan]:
    """The spans of one serialized `ExportTraceServiceRequest`."""
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(raw)
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=span.kind,
                        service=str(resource.get("service.name", "")),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                )
    return spans


class OtlpReceiver:
    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._raw: list[bytes] = []  # requests not parsed yet
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        # bytes in, bytes out: no (de)serializer, so a request costs the handler one list append
        handler = grpc.unary_unary_rpc_method_handler(self._export)
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(EXPORT.rsplit("/", 2)[1], {"Export": handler}),)
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def _export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self._raw.append(request)
        return _ANSWER

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            raw, self._raw = self._raw, []
            for request in raw:
                self._spans.extend(decode(request))
            return list(self._spans)

    def wait_for(
        self, condition: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 20.0
    ) -> list[ReceivedSpan]:
        """Wait until `condition(spans)` holds; the spans then."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans()
            if condition(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s; spans so far: {spans}")
            time.sleep(0.02)
