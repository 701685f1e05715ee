"""Traces cross processes with correct parent links, and every accepted propagation format continues a
client's trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, get_current_span

from extproc.tracing import Tracing, TracingSettings, attributes, settings_from_env
from telemetry.tracing import W3C, carrier, extract_w3c
from tests.helpers.otlp import OtlpReceiver

ROOT = Path(__file__).resolve().parents[2]
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    otlp = OtlpReceiver().start()
    yield otlp
    otlp.stop()


def test_a_request_through_extproc_and_a_runtime_process_is_one_trace(receiver: OtlpReceiver) -> None:
    tracing = Tracing(TracingSettings(otlp_endpoint=receiver.endpoint, batch=False))
    incoming = {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
    outgoing: dict[str, str] = {}
    try:
        server_attrs, node_attrs = attributes("iris", "default"), attributes("iris", "default", "classifier")
        with (
            tracing.span("extproc predictions", tracing.extract(incoming), server_attrs),
            tracing.span("node classifier", None, node_attrs, client=True),
        ):
            tracing.inject(outgoing)
            subprocess.run(
                [sys.executable, "-m", "tests.observability.traced_runtime", receiver.endpoint,
                 json.dumps(outgoing)],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, timeout=60,
            )  # fmt: skip
    finally:
        tracing.shutdown()

    spans = {s.name: s for s in receiver.wait_for(lambda got: len(got) == 3)}
    server, node, runtime = spans["extproc predictions"], spans["node classifier"], spans["runtime predict"]
    assert {server.trace_id, node.trace_id, runtime.trace_id} == {CLIENT_TRACE}
    assert server.parent_span_id == CLIENT_SPAN
    assert node.parent_span_id == server.span_id
    assert runtime.parent_span_id == node.span_id
    assert (server.service, runtime.service) == ("seldon-mesh-extproc", "classifier-runtime")
    assert server.kind == 2 and node.kind == 3  # OTLP SPAN_KIND_SERVER, SPAN_KIND_CLIENT
    assert runtime.attributes == {
        "seldon.deployment": "iris",
        "seldon.predictor": "default",
        "seldon.node": "classifier",
    }
    assert server.attributes == {"seldon.deployment": "iris", "seldon.predictor": "default"}


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        {"uber-trace-id": f"{CLIENT_TRACE}:{CLIENT_SPAN}:0:1"},
        {"b3": f"{CLIENT_TRACE}-{CLIENT_SPAN}-1"},
        {"X-B3-TraceId": CLIENT_TRACE, "X-B3-SpanId": CLIENT_SPAN, "X-B3-Sampled": "1"},
    ],
    ids=["w3c", "jaeger", "b3-single", "b3-multi"],
)
def test_w3c_jaeger_and_b3_headers_continue_the_clients_trace(headers: dict[str, str]) -> None:
    exporter = InMemorySpanExporter()
    # ratio 0: only the client's sampled flag can get this span exported
    tracing = Tracing(TracingSettings(sampling_ratio=0.0, batch=False), exporter=exporter)
    with tracing.span("extproc predictions", tracing.extract(headers), attributes("iris", "default")):
        outgoing: dict[str, str] = {}
        tracing.inject(outgoing)
    tracing.shutdown()
    (span,) = exporter.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == CLIENT_TRACE
    assert span.parent is not None and f"{span.parent.span_id:016x}" == CLIENT_SPAN
    assert span.kind is SpanKind.SERVER
    assert outgoing["traceparent"] == f"00-{CLIENT_TRACE}-{span.context.span_id:016x}-01"


def test_sampling_ratio_applies_to_traces_started_here() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(TracingSettings(sampling_ratio=0.0, batch=False), exporter=exporter)
    with tracing.span("unsampled", tracing.extract({}), {}):
        pass
    tracing.shutdown()
    assert exporter.get_finished_spans() == ()
    exporter = InMemorySpanExporter()
    tracing = Tracing(TracingSettings(sampling_ratio=1.0, batch=False), exporter=exporter)
    with tracing.span("sampled", tracing.extract({}), {}):
        pass
    tracing.shutdown()
    assert len(exporter.get_finished_spans()) == 1


def test_settings_from_the_standard_environment() -> None:
    settings = settings_from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "SELDON_MESH_TRACE_SAMPLING_RATIO": "0.25"}
    )
    assert (settings.otlp_endpoint, settings.sampling_ratio) == ("http://jaeger:4317", 0.25)
    assert settings_from_env({}).otlp_endpoint is None


@pytest.mark.parametrize(
    "carrier",
    [
        {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"},
        {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "tracestate": "vendor=x,other=y"},
        {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "tracestate": ""},
        {"traceparent": f"01-{CLIENT_TRACE}-{CLIENT_SPAN}-01-future"},
        {"traceparent": f" 00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        {"traceparent": f"00-{'0' * 32}-{CLIENT_SPAN}-01"},
        {"traceparent": f"00-{CLIENT_TRACE}-{'0' * 16}-01"},
        {"traceparent": f"00-{CLIENT_TRACE.upper()}-{CLIENT_SPAN}-01"},
        {"traceparent": f"ff-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        {"traceparent": "garbage"},
        {},
    ],
)
def test_the_w3c_fast_path_gives_what_the_sdk_gives(carrier: dict[str, str]) -> None:
    ours = get_current_span(extract_w3c(carrier)).get_span_context()
    sdk = get_current_span(W3C.extract(carrier)).get_span_context()
    assert ours == sdk
    assert ours.trace_state == sdk.trace_state
    assert ours.is_remote == sdk.is_remote


def test_the_carrier_keeps_only_the_trace_headers_of_raw_asgi_headers() -> None:
    raw = [
        (b"host", b"runtime:9000"),
        (b"traceparent", f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01".encode()),
        (b"tracestate", b"vendor=x"),
        (b"content-type", b"application/json"),
        (b"uber-trace-id", f"{CLIENT_TRACE}:{CLIENT_SPAN}:0:1".encode()),
        (b"uberctx-user", b"alice"),
        (b"x-b3-traceid", CLIENT_TRACE.encode()),
        (b"x-b3-spanid", CLIENT_SPAN.encode()),
        (b"x-b3-sampled", b"1"),
        (b"b3", f"{CLIENT_TRACE}-{CLIENT_SPAN}-1".encode()),
    ]
    kept = carrier(raw)
    assert set(kept) == {k.decode() for k, _ in raw} - {"host", "content-type"}
    assert kept["uberctx-user"] == "alice"
