"""The gateway's observability wiring from `translate`: the observability-mode ext_proc filter that logs
single-model predictors with a `logger`, and Envoy's tracer with per-route span tags. A real Envoy takes
the whole config, and a logged route keeps answering when extproc is not there."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import httpx
import pytest
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2, processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from google.protobuf import any_pb2

from tests.helpers import xds
from tests.helpers.ports import free_port
from tests.xds_controller import builders as b
from tests.xds_controller.harness import ControlPlane, Gateway, HttpUpstream, wait_until
from xds_controller.builder import SnapshotBuilder
from xds_controller.translate import (
    PAYLOAD_LOG_STREAM_ANNOTATION,
    ComponentEndpoints,
    ComponentKey,
    GatewaySettings,
    Resources,
    Upstream,
    translate,
)
from xds_controller.translate.extproc import (
    EXTPROC_CLUSTER,
    EXTPROC_FILTER,
    OBSERVE_FILTER,
    OBSERVE_KEY,
    PREDICTOR_KEY,
)
from xds_controller.translate.tracing import (
    COLLECTOR_CLUSTER,
    DEPLOYMENT_TAG,
    PREDICTOR_TAG,
    TRACER_NAME,
    GatewayTracingSettings,
)

EXTPROC = GatewaySettings(listen_port=8123, extproc=Upstream("127.0.0.1", 7100))
TRACED = dataclasses.replace(EXTPROC, tracing=GatewayTracingSettings("127.0.0.1", 4317, 50.0))
LOGGER = {"mode": "all", "url": "http://sink"}
STREAM = {PAYLOAD_LOG_STREAM_ANNOTATION: "true"}  # the observe stream logs single models, not the runtime
_MODE = processing_mode_pb2.ProcessingMode


def logged(name: str = "iris") -> b.Deployment:
    return b.deployment(name, b.Predictor("default", b.Unit("model", logger=LOGGER), traffic=100), **STREAM)


def logged_canary(name: str = "split") -> b.Deployment:
    return b.deployment(
        name,
        b.Predictor("main", b.Unit("model"), traffic=75),
        b.Predictor("canary", b.Unit("model", logger=LOGGER), traffic=25),
        **STREAM,
    )


def chain(name: str = "graph") -> b.Deployment:
    graph = b.Unit("pre", (b.Unit("model", logger=LOGGER),))
    return b.deployment(name, b.Predictor("default", graph, traffic=100))


def _routes(resources: Resources) -> dict[str, route_components_pb2.Route]:
    (config,) = resources.routes
    assert isinstance(config, route_pb2.RouteConfiguration)
    return {route.name: route for route in config.virtual_hosts[0].routes}


def _per_route(packed: any_pb2.Any) -> tuple[bool, ext_proc_pb2.ExtProcPerRoute]:
    """(whether the entry turns the disabled filter on, the ExtProcPerRoute inside)."""
    inner = packed
    enabling = packed.Is(route_components_pb2.FilterConfig.DESCRIPTOR)
    if enabling:
        wrapper = route_components_pb2.FilterConfig()
        packed.Unpack(wrapper)
        assert not wrapper.disabled
        inner = wrapper.config
    config = ext_proc_pb2.ExtProcPerRoute()
    assert inner.Unpack(config)
    return enabling, config


def _metadata(config: ext_proc_pb2.ExtProcPerRoute) -> dict[str, str]:
    return {h.key: h.value for h in config.overrides.grpc_initial_metadata}


def test_observe_filter_follows_the_graph_filter_disabled_async_and_failing_open() -> None:
    filters = list(xds.hcm(translate([], {}, EXTPROC)).http_filters)
    assert [f.name for f in filters] == [EXTPROC_FILTER, OBSERVE_FILTER, "envoy.filters.http.router"]
    observe = filters[1]
    assert observe.disabled
    config = ext_proc_pb2.ExternalProcessor()
    observe.typed_config.Unpack(config)
    assert config.observability_mode and config.failure_mode_allow
    assert config.grpc_service.envoy_grpc.cluster_name == EXTPROC_CLUSTER
    mode = config.processing_mode
    assert (mode.request_header_mode, mode.response_header_mode) == (_MODE.SEND, _MODE.SEND)
    # observability mode sends bodies only when STREAMED (BUFFERED would send none)
    assert (mode.request_body_mode, mode.response_body_mode) == (_MODE.STREAMED, _MODE.STREAMED)
    assert (mode.request_trailer_mode, mode.response_trailer_mode) == (_MODE.SKIP, _MODE.SKIP)
    assert config.deferred_close_timeout.seconds > 0
    # without extproc there is nothing to log to
    assert [f.name for f in xds.hcm(translate([], {}, GatewaySettings())).http_filters] == [
        "envoy.filters.http.router"
    ]


def test_a_logged_single_model_enables_observe_on_both_transports_naming_its_predictor() -> None:
    routes = _routes(translate([logged()], {}, EXTPROC))
    for name in ("default.iris.http", "default.iris.grpc"):
        route = routes[name]
        assert route.route.cluster == f"default.iris.default.model.{name.rsplit('.', 1)[1]}"
        enabling, config = _per_route(route.typed_per_filter_config[OBSERVE_FILTER])
        assert enabling
        assert _metadata(config) == {PREDICTOR_KEY: "default", OBSERVE_KEY: "1"}
        assert EXTPROC_FILTER not in route.typed_per_filter_config


def test_a_logged_single_model_is_logged_by_its_runtime_unless_its_deployment_asks_for_the_stream() -> None:
    in_runtime = b.deployment("iris", b.Predictor("default", b.Unit("model", logger=LOGGER), traffic=100))
    for route in _routes(translate([in_runtime], {}, EXTPROC)).values():
        assert OBSERVE_FILTER not in route.typed_per_filter_config, route.name
        assert EXTPROC_FILTER not in route.typed_per_filter_config, route.name


def test_routes_without_a_logger_and_graph_routes_never_touch_observe() -> None:
    routes = _routes(translate([b.single("plain"), chain()], {}, EXTPROC))
    for route in routes.values():
        assert OBSERVE_FILTER not in route.typed_per_filter_config, route.name
    # a logger without extproc: nothing to log to, nothing enabled
    for route in _routes(translate([logged()], {}, GatewaySettings())).values():
        assert OBSERVE_FILTER not in route.typed_per_filter_config


def test_a_split_logs_only_the_weighted_cluster_with_a_logger_and_pinned_routes_follow() -> None:
    routes = _routes(translate([logged_canary()], {}, EXTPROC))
    split = routes["default.split.http"]
    enabling, config = _per_route(split.typed_per_filter_config[OBSERVE_FILTER])
    assert enabling and not config.disabled and _metadata(config) == {}
    by_cluster = {c.name: c for c in split.route.weighted_clusters.clusters}
    _, canary = _per_route(
        by_cluster["default.split.canary.model.http"].typed_per_filter_config[OBSERVE_FILTER]
    )
    assert _metadata(canary) == {PREDICTOR_KEY: "canary", OBSERVE_KEY: "1"}
    _, main = _per_route(by_cluster["default.split.main.model.http"].typed_per_filter_config[OBSERVE_FILTER])
    assert main.disabled
    assert OBSERVE_FILTER in routes["default.split.pin.canary.grpc"].typed_per_filter_config
    assert OBSERVE_FILTER not in routes["default.split.pin.main.grpc"].typed_per_filter_config


def test_tracing_sets_envoys_tracer_its_collector_and_route_tags() -> None:
    resources = translate([b.single("iris"), logged_canary()], {}, TRACED)
    tracing = xds.hcm(resources).tracing
    assert tracing.provider.name == TRACER_NAME
    assert tracing.random_sampling.value == 50.0
    clusters = xds.clusters(resources)
    assert COLLECTOR_CLUSTER in clusters
    routes = _routes(resources)

    def tags(route: str) -> dict[str, str]:
        return {t.tag: t.literal.value for t in routes[route].tracing.custom_tags}

    assert tags("default.iris.http") == {DEPLOYMENT_TAG: "iris", PREDICTOR_TAG: "default"}
    assert tags("default.split.pin.canary.grpc") == {DEPLOYMENT_TAG: "split", PREDICTOR_TAG: "canary"}
    assert tags("default.split.http") == {DEPLOYMENT_TAG: "split"}  # the predictor is drawn per request
    assert not routes["not-found"].HasField("tracing")
    untraced = translate([b.single("iris")], {}, EXTPROC)
    assert not xds.hcm(untraced).HasField("tracing")
    assert COLLECTOR_CLUSTER not in xds.clusters(untraced)


def test_the_incremental_builder_renders_the_same_observability_config() -> None:
    deployments = [logged(), logged_canary(), chain(), b.single("plain")]
    built = SnapshotBuilder(TRACED).build(deployments, {})
    expected = translate(deployments, {}, TRACED).to_snapshot()
    for url in expected.versions:
        assert set(built.get(url)) == set(expected.get(url)), url
        for name in expected.get(url):
            assert built.unpack(url, name) == expected.unpack(url, name), (url, name)


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    control = ControlPlane().start()
    yield control
    control.stop()


@pytest.mark.slow
@pytest.mark.parametrize("scoped", [False, True], ids=["one-route-config", "scoped"])
def test_envoy_accepts_it_and_a_logged_route_answers_while_extproc_is_down(
    plane: ControlPlane, tmp_path: Path, scoped: bool
) -> None:
    upstream = HttpUpstream("logged").start()
    gateway = Gateway(plane, tmp_path / "envoy", scoped=scoped)
    # extproc and the collector at ports nobody listens on: logging and tracing must not fail requests
    gateway.settings = dataclasses.replace(
        gateway.settings,
        extproc=Upstream("127.0.0.1", free_port()),
        tracing=GatewayTracingSettings("127.0.0.1", free_port()),
    )
    endpoints = {
        ComponentKey("default", "iris", "default", "model"): ComponentEndpoints(
            http=(Upstream("127.0.0.1", upstream.port),)
        ),
        **{
            ComponentKey("default", "split", p, "model"): ComponentEndpoints(
                http=(Upstream("127.0.0.1", upstream.port),)
            )
            for p in ("main", "canary")
        },
    }
    paths = {name: f"/seldon/default/{name}/api/v1.0/predictions" for name in ("plain", "iris", "split")}
    endpoints[ComponentKey("default", "plain", "default", "model")] = endpoints[
        ComponentKey("default", "iris", "default", "model")
    ]

    def observed() -> int:
        _, stats = gateway.envoy.admin_get("/stats?filter=ext_proc.observe.streams_started")
        return sum(int(line.rsplit(":", 1)[1]) for line in stats.splitlines() if line.strip())

    def post(name: str) -> None:
        response = httpx.post(gateway.url + paths[name], json={"data": {"ndarray": [[1]]}}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["upstream"] == "logged"

    try:
        gateway.apply(gateway.resources([logged(), logged_canary(), chain(), b.single("plain")], endpoints))
        for _ in range(3):
            post("plain")
        assert observed() == 0  # a route without a logger never opens an observe stream
        # a request naming no deployment finds no route: a 404, not a graph call to the absent extproc
        missing = httpx.post(gateway.url + "/seldon/default/nope/api/v1.0/predictions", json={}, timeout=10)
        assert missing.status_code == 404 and missing.json()["status"]["reason"] == "NOT_FOUND"
        assert observed() == 0
        for _ in range(3):
            post("iris")
        assert observed() == 3  # each logged request tried to reach extproc, then went on without it
        for _ in range(4):
            post("split")  # the canary's share logs, the main one's does not; all answer
    finally:
        gateway.stop()
        upstream.stop()


class RecordingProcessor(ep_grpc.ExternalProcessorServicer):
    """An ext_proc server that only listens, as extproc does on the observe filter's streams."""

    def __init__(self) -> None:
        self.streams: list[tuple[dict[str, str], list[ep_pb2.ProcessingRequest]]] = []
        self._lock = threading.Lock()

    def Process(
        self, request_iterator: Iterator[ep_pb2.ProcessingRequest], context: grpc.ServicerContext
    ) -> Iterator[ep_pb2.ProcessingResponse]:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        received: list[ep_pb2.ProcessingRequest] = []
        with self._lock:
            self.streams.append((metadata, received))
        for request in request_iterator:
            received.append(request)
        return iter(())

    def bodies(self, index: int, phase: str) -> bytes:
        """The body of one phase (`request_body` / `response_body`), its chunks joined."""
        return b"".join(
            getattr(r, phase).body for r in self.streams[index][1] if r.WhichOneof("request") == phase
        )


@pytest.mark.slow
def test_extproc_receives_headers_bodies_and_the_predictor_of_a_logged_request(
    plane: ControlPlane, tmp_path: Path
) -> None:
    processor = RecordingProcessor()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ep_grpc.add_ExternalProcessorServicer_to_server(processor, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    upstream = HttpUpstream("logged").start()
    gateway = Gateway(plane, tmp_path / "envoy", scoped=True)
    gateway.settings = dataclasses.replace(gateway.settings, extproc=Upstream("127.0.0.1", port))
    key = ComponentKey("default", "iris", "default", "model")
    try:
        gateway.apply(
            gateway.resources(
                [logged()], {key: ComponentEndpoints(http=(Upstream("127.0.0.1", upstream.port),))}
            )
        )
        sent = b'{"data": {"ndarray": [[1, 2]]}}'
        response = httpx.post(
            gateway.url + "/seldon/default/iris/api/v1.0/predictions",
            content=sent,
            headers={"content-type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 200

        def complete() -> bool:
            return bool(processor.streams) and any(
                r.WhichOneof("request") == "response_body" and r.response_body.end_of_stream
                for r in processor.streams[0][1]
            )

        wait_until(complete, 30, "the observed response body")
    finally:
        gateway.stop()
        upstream.stop()
        server.stop(grace=None)
    metadata, requests = processor.streams[0]
    assert metadata[PREDICTOR_KEY] == "default" and metadata[OBSERVE_KEY] == "1"
    phases = [r.WhichOneof("request") for r in requests]
    assert phases[0] == "request_headers" and "response_headers" in phases
    assert all(r.observability_mode for r in requests)
    assert processor.bodies(0, "request_body") == sent
    assert processor.bodies(0, "response_body") == response.content
