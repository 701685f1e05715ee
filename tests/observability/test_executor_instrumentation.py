"""Node calls made by the real graph executor are timed into Seldon's client histogram and traced as
client spans under the request's span, with deployment, predictor and node."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from extproc.codecs import Payload
from extproc.config import NodeConfig, Timeouts
from extproc.graph import GraphExecutor, NodeError
from extproc.metrics import ExecutorMetrics, InstrumentedNodeClient, PredictorLabels, predictor_scope
from extproc.tracing import TracedNodeClient, Tracing, TracingSettings, attributes, inject_current
from tests.extproc.fakes import FakeNodes, Json, node, predictor, scale
from tests.observability.scrape import value

GRAPH = node("first", "MODEL", node("second", image="example/second:2.0", transport="grpc"))
LABELS = PredictorLabels("dep", "main", "v1")


class HeaderRecorder(FakeNodes):
    """A node client that, like the real one, writes the current trace context on each request."""

    def __init__(self) -> None:
        super().__init__(behaviours={"first": scale(2.0)})
        self.sent: dict[str, dict[str, str]] = {}

    async def call(
        self, node: NodeConfig, method: str, payloads: Sequence[Payload], meta: Json, limits: Timeouts
    ) -> tuple[Payload, Json]:
        headers: dict[str, str] = {}
        inject_current(headers)
        self.sent[node.name] = headers
        return await super().call(node, method, payloads, meta, limits)


def _predict(executor: GraphExecutor) -> None:
    async def run() -> None:
        with predictor_scope(LABELS):
            await executor.predict(predictor(GRAPH), Payload.seldon({"data": {"ndarray": [[1.0]]}}), "p-1")

    asyncio.run(run())


def test_node_calls_are_timed_with_seldons_client_labels() -> None:
    registry = CollectorRegistry()
    metrics = ExecutorMetrics(registry)
    _predict(GraphExecutor(InstrumentedNodeClient(FakeNodes(), metrics)))
    first = value(registry, "seldon_api_executor_client_requests_seconds_count", model_name="first")
    assert first == 1
    labels = {"deployment_name": "dep", "predictor_name": "main", "predictor_version": "v1"}
    second = value(
        registry,
        "seldon_api_executor_client_requests_seconds_count",
        model_name="second",
        model_image="example/second",
        model_version="2.0",
        service="predictions",
        method="predict",
        code="OK",  # a gRPC node answers with gRPC codes
        **labels,
    )
    assert second == 1


def test_a_failing_node_is_counted_with_its_status() -> None:
    registry = CollectorRegistry()
    failing = FakeNodes(failing={"second": NodeError("second", 503, "UNAVAILABLE", "down")})
    with pytest.raises(NodeError):
        _predict(GraphExecutor(InstrumentedNodeClient(failing, ExecutorMetrics(registry))))
    count = "seldon_api_executor_client_requests_seconds_count"
    assert value(registry, count, model_name="second", code="UNAVAILABLE") == 1
    assert value(registry, count, model_name="first", code="200") == 1


def test_each_node_call_is_a_client_span_under_the_request_span_and_carries_its_context() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(TracingSettings(batch=False), exporter=exporter)
    nodes = HeaderRecorder()
    executor = GraphExecutor(
        TracedNodeClient(InstrumentedNodeClient(nodes, ExecutorMetrics(CollectorRegistry())), tracing)
    )

    async def run() -> None:
        with predictor_scope(LABELS), tracing.span("extproc predictions", None, attributes("dep", "main")):
            await executor.predict(predictor(GRAPH), Payload.seldon({"data": {"ndarray": [[1.0]]}}), "p-1")

    asyncio.run(run())
    tracing.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    server = spans["extproc predictions"]
    for name in ("first", "second"):
        span = spans[f"node {name} predict"]
        assert span.parent is not None and span.parent.span_id == server.context.span_id
        assert span.context.trace_id == server.context.trace_id
        assert dict(span.attributes or {}) == {
            "seldon.deployment": "dep",
            "seldon.predictor": "main",
            "seldon.node": name,
        }
        # the runtime receives this node span as its parent
        assert nodes.sent[name]["traceparent"].split("-")[2] == f"{span.context.span_id:016x}"


def test_a_failing_node_calls_span_records_the_error_and_the_request_span_is_current_again() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(TracingSettings(batch=False), exporter=exporter)
    failing = FakeNodes(failing={"second": NodeError("second", 503, "UNAVAILABLE", "down")})
    executor = GraphExecutor(TracedNodeClient(failing, tracing))

    async def run() -> None:
        with (
            predictor_scope(LABELS),
            tracing.span("extproc predictions", None, attributes("dep", "main")) as top,
        ):
            with pytest.raises(NodeError):
                await executor.predict(
                    predictor(GRAPH), Payload.seldon({"data": {"ndarray": [[1.0]]}}), "p-1"
                )
            assert trace.get_current_span() is top

    asyncio.run(run())
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert spans["node first predict"].status.status_code is StatusCode.UNSET
    failed = spans["node second predict"]
    assert failed.status.status_code is StatusCode.ERROR and "down" in (failed.status.description or "")
    assert [event.name for event in failed.events] == ["exception"]
