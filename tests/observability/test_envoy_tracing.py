"""Envoy's OpenTelemetry tracer, configured by `xds_controller.translate.tracing`, loads into a real Envoy
and exports the gateway's spans to an OTLP receiver, continuing the client's W3C trace."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, grpc_service_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2, processing_mode_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from google.protobuf import any_pb2, duration_pb2, json_format, struct_pb2
from google.protobuf.message import Message

from extproc.tracing import Tracing, TracingSettings, attributes
from mesh.local.envoy import EnvoyProcess, find_envoy_binary
from tests.helpers.mesh import wait_for
from tests.helpers.otlp import OtlpReceiver, ReceivedSpan
from tests.helpers.ports import free_port
from tests.observability.sink import RecordingSink
from xds_controller.translate.tracing import (
    COLLECTOR_CLUSTER,
    TRACER_NAME,
    gateway_tracing,
    route_tracing,
    settings_from_otlp_endpoint,
)

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _address(port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port))


def _static_cluster(name: str, port: int, http2: bool = False) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration_pb2.Duration(seconds=1),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(address=_address(port))
                        )
                    ]
                )
            ],
        ),
    )
    if http2:
        explicit = http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
            http2_protocol_options=protocol_pb2.Http2ProtocolOptions()
        )
        cluster.typed_extension_protocol_options[
            http_protocol_options_pb2.HttpProtocolOptions.DESCRIPTOR.full_name
        ].CopyFrom(_packed(http_protocol_options_pb2.HttpProtocolOptions(explicit_http_config=explicit)))
    return cluster


def _ext_proc_filter() -> hcm_pb2.HttpFilter:
    config = ext_proc_pb2.ExternalProcessor(
        grpc_service=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name="extproc")
        ),
        processing_mode=processing_mode_pb2.ProcessingMode(
            request_header_mode=processing_mode_pb2.ProcessingMode.SEND,
            response_header_mode=processing_mode_pb2.ProcessingMode.SKIP,
        ),
    )
    return hcm_pb2.HttpFilter(name="envoy.filters.http.ext_proc", typed_config=_packed(config))


def traced_bootstrap(
    listen_port: int, upstream_port: int, otlp_endpoint: str, extproc_port: int | None = None
) -> dict[str, Any]:
    """A static Envoy: one listener whose HCM traces with our tracer, one upstream, the collector, and
    optionally an ext_proc filter calling a processor on `extproc_port`."""
    tracing, collector = gateway_tracing(settings_from_otlp_endpoint(otlp_endpoint, sampling_ratio=1.0))
    route = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix="/"),
        route=route_components_pb2.RouteAction(cluster="upstream"),
        tracing=route_tracing("iris", "default"),
    )
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix="traced",
        route_config=route_pb2.RouteConfiguration(
            virtual_hosts=[route_components_pb2.VirtualHost(name="all", domains=["*"], routes=[route])]
        ),
        http_filters=[
            *([_ext_proc_filter()] if extproc_port is not None else []),
            hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=_packed(router_pb2.Router())),
        ],
        tracing=tracing,
    )
    listener = listener_pb2.Listener(
        name="traced",
        address=_address(listen_port),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.http_connection_manager", typed_config=_packed(hcm)
                    )
                ]
            )
        ],
    )
    clusters = [_static_cluster("upstream", upstream_port), collector]
    if extproc_port is not None:
        clusters.append(_static_cluster("extproc", extproc_port, http2=True))
    # flush every span at once instead of Envoy's 5 s / 5 spans, so the test waits on spans, not timers
    runtime = struct_pb2.Struct()
    runtime.update(
        {"tracing.opentelemetry.flush_interval_ms": 50, "tracing.opentelemetry.min_flush_spans": 1}
    )
    bootstrap = bootstrap_pb2.Bootstrap(
        admin=bootstrap_pb2.Admin(address=_address(0)),
        static_resources=bootstrap_pb2.Bootstrap.StaticResources(listeners=[listener], clusters=clusters),
        layered_runtime=bootstrap_pb2.LayeredRuntime(
            layers=[bootstrap_pb2.RuntimeLayer(name="static", static_layer=runtime)]
        ),
    )
    rendered: dict[str, Any] = json_format.MessageToDict(bootstrap, preserving_proto_field_name=True)
    return rendered


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    otlp = OtlpReceiver().start()
    yield otlp
    otlp.stop()


def test_tracer_config_passes_envoy_validation(tmp_path: Path) -> None:
    bootstrap = traced_bootstrap(free_port(), free_port(), "http://127.0.0.1:4317")
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["tracing"]["provider"]["name"] == TRACER_NAME
    assert hcm["tracing"]["provider"]["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] == (
        COLLECTOR_CLUSTER
    )
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(bootstrap))
    result = subprocess.run(
        [str(find_envoy_binary()), "--mode", "validate", "-c", str(path), "--log-level", "error"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_envoy_exports_gateway_spans_in_the_clients_trace(tmp_path: Path, receiver: OtlpReceiver) -> None:
    upstream = RecordingSink()
    upstream.start()
    listen_port = free_port()
    envoy = EnvoyProcess(
        traced_bootstrap(listen_port, upstream.port, receiver.endpoint), tmp_path, concurrency=1
    )
    envoy.start()
    try:
        envoy.wait_ready()
        response = httpx.post(
            f"http://127.0.0.1:{listen_port}/seldon/seldon/iris/api/v1.0/predictions",
            content=b'{"data": {"ndarray": [[1, 2]]}}',
            headers={
                "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
                "content-type": "application/json",
            },
            timeout=10,
        )
        assert response.status_code == 200
        receiver.wait_for(lambda got: any(s.trace_id == CLIENT_TRACE for s in got))
    finally:
        envoy.stop()
        upstream.stop()

    gateway = [s for s in receiver.spans() if s.trace_id == CLIENT_TRACE]
    assert {s.service for s in gateway} == {"seldon-mesh-gateway"}
    # one span: the gateway's server span (no upstream span of Envoy's own)
    (server,) = gateway
    assert server.parent_span_id == CLIENT_SPAN
    assert server.attributes["seldon.deployment"] == "iris"
    assert server.attributes["seldon.predictor"] == "default"
    # the upstream (a runtime) continues from the gateway's span
    (received,) = upstream.snapshot()
    traceparent = {k.lower(): v for k, v in received.headers.items()}["traceparent"]
    assert traceparent.split("-")[1:3] == [CLIENT_TRACE, server.span_id]


class TracingProcessor(ep_grpc.ExternalProcessorServicer):
    """A minimal ext_proc server doing what the real servicer's hook does: continue the trace from the
    stream's gRPC metadata (else the request headers) with an extproc span, then let the request pass."""

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing
        self.metadata: list[dict[str, str]] = []

    def Process(
        self, request_iterator: Iterator[ep_pb2.ProcessingRequest], context: grpc.ServicerContext
    ) -> Iterator[ep_pb2.ProcessingResponse]:
        metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        self.metadata.append(metadata)
        for request in request_iterator:
            if request.HasField("request_headers"):
                headers = {h.key: h.raw_value.decode() for h in request.request_headers.headers.headers}
                parent = self._tracing.extract_first(metadata, headers)
                with self._tracing.span("extproc predictions", parent, attributes("iris", "default")):
                    pass
                yield ep_pb2.ProcessingResponse(request_headers=ep_pb2.HeadersResponse())


def test_envoy_passes_its_trace_to_ext_proc_which_continues_it(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    tracing = Tracing(TracingSettings(otlp_endpoint=receiver.endpoint, batch=False))
    processor = TracingProcessor(tracing)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ep_grpc.add_ExternalProcessorServicer_to_server(processor, server)
    extproc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    upstream = RecordingSink()
    upstream.start()
    listen_port = free_port()
    bootstrap = traced_bootstrap(listen_port, upstream.port, receiver.endpoint, extproc_port)
    envoy = EnvoyProcess(bootstrap, tmp_path, concurrency=1)
    envoy.start()
    url = f"http://127.0.0.1:{listen_port}/seldon/seldon/iris/api/v1.0/predictions"

    def traced_post(trace_id: str) -> httpx.Response:
        headers = {"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01", "content-type": "application/json"}
        return httpx.post(url, content=b"{}", headers=headers, timeout=10)

    def extproc_traced(trace_id: str) -> bool:
        return any(s.trace_id == trace_id and s.service == "seldon-mesh-extproc" for s in receiver.spans())

    try:
        envoy.wait_ready()
        # /ready alone does not prove the request path goes through ext_proc yet (under load the first
        # request was seen to pass with Envoy's spans only): probe with other traces until one comes
        # back through the processor, then send the request under test.
        probes: list[str] = []

        def ext_proc_path_active() -> bool:
            if probes and extproc_traced(probes[-1]):
                return True
            probes.append(secrets.token_hex(16))
            return traced_post(probes[-1]).status_code == 200 and extproc_traced(probes[-1])

        wait_for(ext_proc_path_active, 30, f"a request through ext_proc (log:\n{envoy.log_tail()})", 0.2)
        seen = len(processor.metadata)
        response = traced_post(CLIENT_TRACE)
        assert response.status_code == 200, response.text

        def in_trace(got: list[ReceivedSpan]) -> list[ReceivedSpan]:
            return [s for s in got if s.trace_id == CLIENT_TRACE]

        def complete(got: list[ReceivedSpan]) -> bool:
            """The extproc span and its chain of Envoy parents up to the client's span."""
            by_id = {s.span_id: s for s in in_trace(got)}
            extproc_spans = [s for s in by_id.values() if s.service == "seldon-mesh-extproc"]
            if not extproc_spans:
                return False
            call = by_id.get(extproc_spans[0].parent_span_id)
            return call is not None and call.parent_span_id in by_id

        spans = in_trace(receiver.wait_for(complete))
    finally:
        envoy.stop()
        upstream.stop()
        server.stop(grace=None)
        tracing.shutdown()

    assert "traceparent" in processor.metadata[seen]
    (extproc,) = [s for s in spans if s.service == "seldon-mesh-extproc"]
    gateway = {s.span_id: s for s in spans if s.service == "seldon-mesh-gateway"}
    assert extproc.trace_id == CLIENT_TRACE
    # extproc's parent is Envoy's span for the ext_proc call, itself under Envoy's request span
    ext_proc_call = gateway[extproc.parent_span_id]
    assert gateway[ext_proc_call.parent_span_id].parent_span_id == CLIENT_SPAN
