from __future__ import annotations

import json
import re
from collections.abc import Iterable

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import json_format

from mesh.spec import parse_deployment
from model_runtime.server import _KEEP_ALIVE_S
from tests.xds_controller import builders as b
from xds_controller.bootstrap import XDS_CLUSTER, render_bootstrap
from xds_controller.translate import (
    ComponentEndpoints,
    ComponentKey,
    GatewaySettings,
    Resources,
    Upstream,
    translate,
)

GATEWAY = GatewaySettings(listen_port=8123, reflection=Upstream("127.0.0.1", 7000))


def _routes(resources: Resources) -> dict[str, route_components_pb2.Route]:
    (config,) = resources.routes
    assert isinstance(config, route_pb2.RouteConfiguration)
    return {route.name: route for route in config.virtual_hosts[0].routes}


def _headers(options: Iterable[base_pb2.HeaderValueOption]) -> dict[str, str]:
    return {o.header.key: o.header.value for o in options}


def test_single_model_rest_route_rewrites_the_seldon_prefix() -> None:
    routes = _routes(translate([b.single("iris", "prod")], {}, GATEWAY))
    rest = routes["prod.iris.http"]
    assert rest.match.prefix == "/seldon/prod/iris/"
    assert rest.route.prefix_rewrite == "/"
    assert rest.route.cluster == "prod.iris.default.model.http"
    assert _headers(rest.response_headers_to_add) == {"Seldon-Predictor": "default"}


def test_grpc_route_needs_grpc_the_seldon_headers_and_a_model_service() -> None:
    grpc = _routes(translate([b.single("iris", "prod")], {}, GATEWAY))["prod.iris.grpc"]
    assert grpc.match.HasField("grpc")
    assert {(h.name, h.string_match.exact) for h in grpc.match.headers} == {
        ("seldon", "iris"),
        ("namespace", "prod"),
    }
    served = (
        "/seldon.protos.Seldon/Predict",
        "/inference.GRPCInferenceService/ModelInfer",
        "/tensorflow.serving.PredictionService/Predict",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.health.v1.Health/Check",
    )
    for path in served:  # RE2 matches the whole path, like re.fullmatch
        assert re.fullmatch(grpc.match.safe_regex.regex, path), path
    assert not re.fullmatch(grpc.match.safe_regex.regex, "/other.Service/Method")
    assert grpc.route.cluster == "prod.iris.default.model.grpc"
    assert not grpc.route.prefix_rewrite


def test_route_order_ends_with_reflection_then_not_found() -> None:
    resources = translate([b.single("b"), b.single("a")], {}, GATEWAY)
    names = list(_routes(resources))
    assert names == [
        "repository.rest",
        "repository.grpc",
        "default.a.too-large",
        "default.a.grpc",
        "default.a.http",
        "default.b.too-large",
        "default.b.grpc",
        "default.b.http",
        "reflection",
        "not-found",
    ]
    not_found = _routes(resources)["not-found"]
    assert not_found.match.prefix == "/"
    assert not_found.direct_response.status == 404
    too_large = _routes(resources)["default.a.too-large"]  # a body longer than the limit: 413 unread
    assert too_large.match.prefix == "/seldon/default/a/"
    assert too_large.match.headers[0].range_match.start == 2**31
    assert too_large.direct_response.status == 413


def test_puid_request_and_response_headers() -> None:
    (config,) = translate([b.single()], {}, GATEWAY).routes
    assert _headers(config.request_headers_to_add) == {"seldon-puid": "%REQ(x-request-id)%"}
    assert _headers(config.response_headers_to_add) == {"Seldon-Puid": "%REQ(seldon-puid?x-request-id)%"}


def test_canary_splits_by_traffic_and_shadows_mirror() -> None:
    dep = b.deployment(
        "abtest",
        b.Predictor("main", b.Unit("m"), traffic=75),
        b.Predictor("canary", b.Unit("c"), traffic=25),
        b.Predictor("dark", b.Unit("d"), shadow=True),
    )
    rest = _routes(translate([dep], {}, GATEWAY))["default.abtest.http"]
    weighted = [
        (c.name, c.weight.value, _headers(c.response_headers_to_add))
        for c in rest.route.weighted_clusters.clusters
    ]
    assert weighted == [
        ("default.abtest.main.m.http", 75, {"Seldon-Predictor": "main"}),
        ("default.abtest.canary.c.http", 25, {"Seldon-Predictor": "canary"}),
    ]
    assert [m.cluster for m in rest.route.request_mirror_policies] == ["default.abtest.dark.d.http"]
    assert not rest.route.request_mirror_policies[0].HasField("runtime_fraction")


def test_multi_node_graph_gets_a_501_until_the_graph_executor_exists() -> None:
    dep = b.deployment("graph", b.Predictor("p", b.Unit("router", (b.Unit("a"), b.Unit("b"))), traffic=100))
    resources = translate([dep], {}, GATEWAY)
    rest = _routes(resources)["default.graph.http"]
    assert rest.direct_response.status == 501
    assert "3-node graph" in rest.direct_response.body.inline_string
    clusters = {c.name for c in resources.clusters}
    assert {"default.graph.p.router.http", "default.graph.p.a.grpc", "default.graph.p.b.http"} <= clusters


def test_every_component_gets_clusters_and_an_assignment_even_without_endpoints() -> None:
    key = ComponentKey("default", "iris", "default", "model")
    endpoints = {key: ComponentEndpoints(http=(Upstream("10.0.0.1", 9000), Upstream("10.0.0.2", 9000)))}
    resources = translate([b.single()], endpoints, GATEWAY)
    clusters = {c.name: c for c in resources.clusters}
    http, grpc = clusters["default.iris.default.model.http"], clusters["default.iris.default.model.grpc"]
    assert http.type == cluster_pb2.Cluster.EDS
    assert http.connect_timeout.seconds == 1
    options = http_protocol_options_pb2.HttpProtocolOptions()
    grpc.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].Unpack(
        options
    )
    assert options.explicit_http_config.HasField("http2_protocol_options")
    assignments = {a.cluster_name: a for a in resources.load_assignments}
    http_hosts = [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for e in assignments["default.iris.default.model.http"].endpoints[0].lb_endpoints
    ]
    assert http_hosts == [("10.0.0.1", 9000), ("10.0.0.2", 9000)]
    assert not assignments["default.iris.default.model.grpc"].endpoints
    assert clusters["seldon-mesh.reflection"].type == cluster_pb2.Cluster.STATIC


def test_listener_speaks_every_http_version_and_maps_local_replies_to_seldon_json() -> None:
    (listener,) = translate([], {}, GATEWAY).listeners
    assert listener.address.socket_address.port_value == 8123
    hcm = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    assert hcm.codec_type == hcm_pb2.HttpConnectionManager.AUTO
    assert hcm.rds.route_config_name == "seldon-gateway"
    assert hcm.generate_request_id.value
    bodies = {
        m.filter.and_filter.filters[
            0
        ].status_code_filter.comparison.value.default_value: json_format.MessageToDict(
            m.body_format_override.json_format
        )
        for m in hcm.local_reply_config.mappers
        if m.body_format_override.HasField("json_format")  # REST replies; gRPC ones get text
    }
    assert bodies[503]["status"]["reason"] == "UNAVAILABLE"
    assert bodies[504]["status"]["reason"] == "TIMEOUT"
    assert bodies[404]["status"] == {
        "code": 404,
        "info": "no SeldonDeployment serves %REQ(:PATH)%",
        "reason": "NOT_FOUND",
        "status": "FAILURE",
    }


def test_translation_is_deterministic() -> None:
    deps = [b.single("a"), b.single("b", "other")]
    assert translate(deps, {}, GATEWAY) == translate(list(reversed(deps)), {}, GATEWAY)


def test_reads_a_real_seldon_deployment() -> None:
    dep = parse_deployment(
        {
            "apiVersion": "machinelearning.seldon.io/v1",
            "kind": "SeldonDeployment",
            "metadata": {"name": "iris", "namespace": "seldon"},
            "spec": {
                "predictors": [
                    {
                        "name": "default",
                        "graph": {
                            "name": "classifier",
                            "implementation": "SKLEARN_SERVER",
                            "modelUri": "gs://m",
                        },
                    }
                ]
            },
        }
    )
    routes = _routes(translate([dep], {}, GATEWAY))
    assert routes["seldon.iris.http"].route.cluster == "seldon.iris.default.classifier.http"


def test_bootstrap_takes_everything_over_ads() -> None:
    bootstrap = render_bootstrap("node-1", Upstream("127.0.0.1", 18000), admin_port=9901)
    assert bootstrap["node"] == {"id": "node-1", "cluster": "seldon-mesh"}
    assert bootstrap["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9901}
    dynamic = bootstrap["dynamic_resources"]
    assert dynamic["ads_config"]["api_type"] == "DELTA_GRPC"  # incremental by default
    sotw = render_bootstrap("node-1", Upstream("127.0.0.1", 18000), admin_port=9901, delta=False)
    assert sotw["dynamic_resources"]["ads_config"]["api_type"] == "GRPC"
    assert dynamic["ads_config"]["transport_api_version"] == "V3"
    assert dynamic["lds_config"] == dynamic["cds_config"] == {"ads": {}, "resource_api_version": "V3"}
    (xds,) = bootstrap["static_resources"]["clusters"]
    assert xds["name"] == XDS_CLUSTER
    assert "http2_protocol_options" in json.dumps(xds)
    assert "listeners" not in bootstrap["static_resources"]


def test_envoy_closes_an_idle_upstream_connection_before_the_runtime_does() -> None:
    """Every cluster, the local and the in-cluster gateway's alike (the same translate), closes upstream
    connections idle for less than the runtime's keep-alive, so Envoy never reuses one the runtime is
    closing (a request sent on it would be lost)."""
    for gateway in (GATEWAY, GatewaySettings(scoped=True, on_demand_clusters=True)):
        for cluster in translate([b.single()], {}, gateway).clusters:
            assert isinstance(cluster, cluster_pb2.Cluster)
            options = http_protocol_options_pb2.HttpProtocolOptions()
            packed = cluster.typed_extension_protocol_options[
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
            ]
            packed.Unpack(options)
            idle = options.common_http_protocol_options.idle_timeout.ToTimedelta().total_seconds()
            assert 0 < idle < _KEEP_ALIVE_S, cluster.name
