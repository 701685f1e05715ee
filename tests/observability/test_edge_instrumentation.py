"""extproc's edges, over real gRPC: every request they answer is counted in Seldon's server histogram with
its code, and traced as a server span continuing Envoy's context from the ext_proc stream's metadata
(else the client's headers), with the node calls as its children; a malformed trace header is ignored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from google.protobuf import json_format
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from extproc.config import DeploymentConfig, GraphConfig
from extproc.graph import GraphExecutor
from extproc.metrics import ExecutorMetrics, InstrumentedNodeClient
from extproc.server import ExtprocSettings, Frontend, create_server
from extproc.server.observe import RequestObserver
from extproc.tracing import TracedNodeClient, Tracing, TracingSettings
from generated.seldon import prediction_pb2 as v1_pb
from generated.seldon import prediction_pb2_grpc as v1_grpc
from tests.extproc.fakes import FakeNodes, node, predictor, scale
from tests.observability.scrape import samples

PATH = "/seldon/default/dep/api/v1.0/predictions"
ENVOY_TRACE = "0af7651916cd43dd8448eb211c80319c"
ENVOY_SPAN = "b7ad6b7169203331"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@dataclass
class Edge:
    registry: CollectorRegistry
    exporter: InMemorySpanExporter
    tracing: Tracing

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def server_count(self, **labels: str) -> float:
        found = samples(self.registry).get("seldon_api_executor_server_requests_seconds_count", [])
        return sum(v for got, v in found if labels.items() <= got.items())


@pytest.fixture
def edge() -> Iterator[Edge]:
    exporter = InMemorySpanExporter()
    tracing = Tracing(TracingSettings.model_validate({"batch": False}), exporter=exporter)
    yield Edge(CollectorRegistry(), exporter, tracing)
    tracing.shutdown()


async def _serve(edge: Edge) -> tuple[grpc.aio.Server, int]:
    graph = predictor(node("pre", "TRANSFORMER", node("model")))
    config = GraphConfig("g", {("default", "dep"): DeploymentConfig("default", "dep", (graph,))})
    metrics = ExecutorMetrics(edge.registry)
    nodes = FakeNodes(behaviours={"pre": scale(10), "model": scale(2)})
    client = TracedNodeClient(InstrumentedNodeClient(nodes, metrics), edge.tracing)
    frontend = Frontend(lambda: config, GraphExecutor(client), None, RequestObserver(metrics, edge.tracing))
    server, port = await create_server(ExtprocSettings(), frontend)
    await server.start()
    return server, port


def _ext_proc(edge: Edge, headers: dict[str, str], metadata: dict[str, str], body: bytes) -> int:
    async def run() -> int:
        server, port = await _serve(edge)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                pairs = {":path": PATH, ":method": "POST", **headers}
                header_map = base_pb2.HeaderMap(
                    headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
                )

                async def feed() -> AsyncIterator[ep.ProcessingRequest]:
                    yield ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=header_map))
                    yield ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True))

                stub = ep_grpc.ExternalProcessorStub(channel)
                call = stub.Process(feed(), metadata=(("x-seldon-predictor", "main"), *metadata.items()))
                responses = [r async for r in call]
                return int(responses[-1].immediate_response.status.code)
        finally:
            await server.stop(0)

    return asyncio.run(run())


def _traceparent(trace: str, span: str) -> str:
    return f"00-{trace}-{span}-01"


def test_ext_proc_requests_are_counted_and_continue_envoys_trace(edge: Edge) -> None:
    body = json.dumps({"data": {"ndarray": [[1.0]]}}).encode()
    status = _ext_proc(
        edge,
        {"traceparent": _traceparent(CLIENT_TRACE, CLIENT_SPAN)},
        {"traceparent": _traceparent(ENVOY_TRACE, ENVOY_SPAN)},
        body,
    )
    assert status == 200
    assert edge.server_count(deployment_name="dep", predictor_name="main", service="predictions",
                             method="POST", code="200") == 1  # fmt: skip
    (server,) = [s for s in edge.spans() if s.name == "extproc " + PATH]
    assert server.context is not None and server.parent is not None
    assert format(server.context.trace_id, "032x") == ENVOY_TRACE  # Envoy's metadata wins over headers
    assert format(server.parent.span_id, "016x") == ENVOY_SPAN
    nodes = [s for s in edge.spans() if s.name.startswith("node ")]
    assert sorted(s.name for s in nodes) == ["node model predict", "node pre transform_input"]
    assert all(s.parent is not None and s.parent.span_id == server.context.span_id for s in nodes)


def test_bad_input_is_counted_with_its_code_and_a_garbage_traceparent_is_ignored(edge: Edge) -> None:
    status = _ext_proc(edge, {"traceparent": "00-not-a-trace"}, {}, b"{not json")
    assert status == 400
    assert edge.server_count(predictor_name="main", code="400") == 1
    (server,) = [s for s in edge.spans() if s.name == "extproc " + PATH]
    assert server.parent is None  # a new trace, not a crash


def test_grpc_graph_requests_are_counted_with_grpc_codes(edge: Edge) -> None:
    async def run() -> tuple[grpc.StatusCode, grpc.StatusCode]:
        server, port = await _serve(edge)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = v1_grpc.SeldonStub(channel)
                metadata = (("seldon", "dep"), ("namespace", "default"),
                            ("traceparent", _traceparent(CLIENT_TRACE, CLIENT_SPAN)))  # fmt: skip
                ok = json_format.ParseDict({"data": {"ndarray": [[1.0]]}}, v1_pb.SeldonMessage())
                answer = await stub.Predict(ok, metadata=metadata)
                assert answer.data.ndarray[0][0] == 20.0
                bad = v1_pb.SeldonMessage()  # no data: the nodes fail on it
                try:
                    await stub.Predict(bad, metadata=metadata)
                except grpc.aio.AioRpcError as error:
                    return grpc.StatusCode.OK, error.code()
                return grpc.StatusCode.OK, grpc.StatusCode.OK
        finally:
            await server.stop(0)

    _, failed = asyncio.run(run())
    assert edge.server_count(predictor_name="main", method="grpc", code="OK") == 1
    assert failed != grpc.StatusCode.OK
    assert edge.server_count(predictor_name="main", method="grpc", code=failed.name) == 1
    servers = [s for s in edge.spans() if s.name == "extproc /seldon.protos.Seldon/Predict"]
    assert len(servers) == 2
    assert all(s.context is not None and format(s.context.trace_id, "032x") == CLIENT_TRACE for s in servers)
