"""telemetry.otlp: the hand-written OTLP encoder gives the SDK encoder's message (for SDK spans and for
light spans, shape after shape), and the exporter and span batcher built on it deliver spans to a real
OTLP/gRPC receiver: a full batch at once, the rest at shutdown, a full queue dropping and counting."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetry.otlp import FastOTLPSpanExporter, SpanBatcher, encode_request
from telemetry.spans import LightSpan
from telemetry.tracing import W3C, Tracing, TracingSettings, attributes, inject_w3c
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


class _Collected:
    def __init__(self) -> None:
        self.spans: list[LightSpan] = []

    def add(self, span: LightSpan) -> None:
        self.spans.append(span)


def _light_spans() -> list[LightSpan]:
    """Spans of a few shapes, each shape twice (the second encoding comes from the shape cache)."""
    tracing = Tracing(TracingSettings(service_name="svc"))
    collected = _Collected()
    tracing._origin.batch = collected
    remote = tracing.extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    with_state = tracing.extract(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "a=1"}
    )
    for _ in range(2):
        for parent, code in ((remote, "200"), (remote, "500"), (with_state, "200"), (None, "200")):
            with tracing.span("runtime predict", parent, attributes("d", "p", "n")) as span:
                span.set_attribute("seldon.code", code)
                with tracing.span("node n predict", None, attributes("d", "p", "n"), client=True):
                    pass
        for value in (True, 1, 1.0, "1", ["a"]):  # equal keys (True == 1 == 1.0) must not share bytes
            with tracing.span("typed", None, {"v": value}):
                pass
        try:
            with tracing.span("failing", None, {}):
                raise ValueError("boom")
        except ValueError:
            pass
    return collected.spans


def test_light_spans_encode_as_the_sdk_encodes_their_readable_copies() -> None:
    spans = _light_spans()
    assert len(spans) == 2 * 14
    readable = [span.readable() for span in spans]
    assert ExportTraceServiceRequest.FromString(encode_request(spans)) == encode_spans(readable)
    assert encode_request(spans) == encode_request(readable)


def test_inject_writes_what_the_sdk_propagator_writes() -> None:
    tracing = Tracing(TracingSettings())
    contexts = [
        tracing.extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
        tracing.extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}),
        tracing.extract(
            {
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "tracestate": "k=v,a=b",
            }
        ),
        tracing.extract({}),  # no span: nothing written
    ]
    for context in contexts:
        ours: dict[str, str] = {}
        sdks: dict[str, str] = {}
        inject_w3c(ours, context)
        W3C.inject(sdks, context=context)
        assert ours == sdks
        with tracing.span("child", context, {}):
            ours, sdks = {}, {}
            inject_w3c(ours)
            W3C.inject(sdks)
            assert ours == sdks and "traceparent" in ours
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_tracing_exports_light_and_sdk_spans_through_the_batcher_and_flushes_at_shutdown() -> None:
    receiver = OtlpReceiver().start()
    try:
        tracing = Tracing(TracingSettings(otlp_endpoint=receiver.endpoint, sampling_ratio=0.5))
        assert isinstance(tracing._origin.batch, SpanBatcher)
        sampled = tracing.extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
        with tracing.span("light", sampled, attributes("d", "p")) as light:
            assert isinstance(light, LightSpan)
        # a new trace at ratio 0.5: the SDK's sampler decides and its spans reach the batch by on_end
        kept = 0
        for i in range(20):
            with tracing.span(f"sdk {i}", None, {}) as span:
                assert not isinstance(span, LightSpan)
                kept += span.get_span_context().trace_flags.sampled
        assert not receiver.spans()  # nothing sent before a batch is full or the 5 s are up
        tracing.shutdown()
        names = {span.name for span in receiver.spans()}
        assert "light" in names and len(names) == 1 + kept
    finally:
        receiver.stop()


def test_a_full_batch_goes_at_once_and_a_full_queue_drops_and_counts() -> None:
    receiver = OtlpReceiver().start()
    try:
        tracing = Tracing(TracingSettings())
        batcher = SpanBatcher(
            FastOTLPSpanExporter(endpoint=receiver.endpoint, insecure=True), max_batch=4, delay_s=600
        )
        tracing._origin.batch = batcher
        for i in range(4):
            with tracing.span(f"span {i}", None, {}):
                pass
        assert len(receiver.wait_for(lambda spans: len(spans) == 4, timeout_s=20)) == 4
        blocked = threading.Lock()
        blocked.acquire()  # holds the sender: spans wait in the queue
        stuck = SpanBatcher(
            FastOTLPSpanExporter(endpoint=receiver.endpoint, insecure=True), max_batch=100, max_queue=3
        )
        stuck._sending = blocked
        tracing._origin.batch = stuck
        for i in range(5):
            with tracing.span(f"queued {i}", None, {}):
                pass
        assert stuck.dropped == 2
        blocked.release()
        stuck.shutdown()
        batcher.shutdown()
        assert sorted(s.name for s in receiver.spans() if s.name.startswith("queued")) == [
            "queued 0", "queued 1", "queued 2"
        ]  # fmt: skip
    finally:
        receiver.stop()


def test_spans_for_a_collector_that_is_down_are_logged_as_lost_at_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    tracing = Tracing(TracingSettings(otlp_endpoint=endpoint))
    with tracing.span("lost", None, {}):
        pass
    with caplog.at_level(logging.ERROR, logger="telemetry.otlp"):
        tracing.shutdown()
        tracing.shutdown()  # the provider's second call at exit: nothing more
    (record,) = [r for r in caplog.records if r.name == "telemetry.otlp"]
    assert "Failed to export spans to" in record.getMessage() and "UNAVAILABLE" in record.getMessage()
