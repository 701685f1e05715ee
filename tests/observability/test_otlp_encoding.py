"""telemetry.otlp: the hand-written OTLP encoder gives the SDK encoder's message, and the exporter built
on it delivers spans to a real OTLP/gRPC receiver."""

from __future__ import annotations

import time

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetry.otlp import FastOTLPSpanExporter, encode_request
from telemetry.tracing import Tracing, TracingSettings, attributes
from tests.helpers.otlp import OtlpReceiver


def _spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "replica": 3}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    other = TracerProvider(resource=Resource.create({"service.name": "other"}, schema_url="https://s/1"))
    other.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("lib-a", "1.2", schema_url="https://schema/1")
    remote = TraceContextTextMapPropagator().extract(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "a=1,b=2"}
    )
    server_attrs = attributes("d", "p")
    kind = SpanKind.SERVER
    with tracer.start_as_current_span("server", context=remote, kind=kind, attributes=server_attrs):
        with provider.get_tracer("lib-b").start_as_current_span("client", kind=SpanKind.CLIENT) as span:
            span.set_attributes({
                "s": "é" * 200, "t": True, "f": False, "i": 7, "neg": -5, "big": 2**62, "x": 1.5,
                "strs": ["a", "b"], "ints": [1, -2], "bools": [True], "floats": [0.5], "empty": "",
            })  # fmt: skip
            span.add_event("first", {"k": "v", "n": 1})
            span.add_event("bare")
            span.set_status(Status(StatusCode.ERROR, "it broke"))
        linked = tracer.start_span("linked", links=[Link(span.get_span_context(), {"why": "batch"})])
        linked.set_status(Status(StatusCode.OK))
        linked.end()
        try:
            with tracer.start_as_current_span("failing", kind=SpanKind.INTERNAL):
                raise ValueError("boom")
        except ValueError:
            pass
    with other.get_tracer("lib-c").start_as_current_span("", kind=SpanKind.PRODUCER):
        pass
    with tracer.start_as_current_span("consumer", kind=SpanKind.CONSUMER, attributes={"": "no key"}):
        pass
    return list(exporter.get_finished_spans())


def test_encoder_gives_the_sdk_encoders_message() -> None:
    spans = _spans()
    assert len(spans) == 6
    ours = ExportTraceServiceRequest.FromString(encode_request(spans))
    assert ours == encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(encode_request([])) == encode_spans([])
    # the cached key/value pairs give the same bytes the second time
    assert ExportTraceServiceRequest.FromString(encode_request(spans)) == ours


def test_exporter_delivers_to_an_otlp_receiver() -> None:
    receiver = OtlpReceiver().start()
    try:
        tracing = Tracing(
            TracingSettings(sampling_ratio=1.0, batch=False),
            exporter=FastOTLPSpanExporter(endpoint=receiver.endpoint, insecure=True),
        )
        node = attributes("iris", "default", "model")
        with (
            tracing.span("extproc predictions", None, attributes("iris", "default")),
            tracing.span("node model predict", None, node, client=True),
        ):
            pass
        tracing.shutdown()
        deadline = time.monotonic() + 10
        while len(receiver.spans()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        names = sorted(span.name for span in receiver.spans())
        assert names == ["extproc predictions", "node model predict"]
    finally:
        receiver.stop()
