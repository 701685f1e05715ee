"""The gateway's ext_proc wiring from `xds_controller.translate`: off by default, on per graph route."""

from __future__ import annotations

from typing import Any

from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2, processing_mode_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from mesh.spec import SeldonDeployment, parse_deployment
from tests.helpers import xds
from xds_controller.translate import GatewaySettings, Resources, Upstream, translate
from xds_controller.translate.extproc import (
    EXTPROC_CLUSTER,
    EXTPROC_ERROR_STATUS,
    EXTPROC_FILTER,
    EXTPROC_REST_CLUSTER,
    OBSERVE_FILTER,
)
from xds_controller.translate.listener import EXTPROC_DOWN_INFO

WITH_EXTPROC = GatewaySettings(listen_port=8123, extproc=Upstream("127.0.0.1", 7100))
# `seldon-mesh up --graph-edge http`: REST graphs go to extproc's REST edge as an upstream.
WITH_REST_EDGE = GatewaySettings(
    listen_port=8123, extproc=Upstream("127.0.0.1", 7100), extproc_rest=Upstream("127.0.0.1", 7101)
)


def _unit(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "MODEL", **extra}


def _deployment(*predictors: dict[str, Any], name: str = "dep") -> SeldonDeployment:
    containers = [{"name": n, "image": "x"} for p in predictors for n in _names(p["graph"])]
    for predictor in predictors:
        predictor["componentSpecs"] = [{"spec": {"containers": containers}}]
    return parse_deployment(
        {
            "apiVersion": "machinelearning.seldon.io/v1",
            "kind": "SeldonDeployment",
            "metadata": {"name": name},
            "spec": {"predictors": list(predictors)},
        }
    )


def _names(unit: dict[str, Any]) -> list[str]:
    return [unit["name"], *(n for child in unit.get("children", []) for n in _names(child))]


CHAIN = {"name": "pre", "type": "TRANSFORMER", "children": [_unit("model")]}


def _routes(resources: Resources) -> dict[str, route_components_pb2.Route]:
    (config,) = resources.routes
    assert isinstance(config, route_pb2.RouteConfiguration)
    return {route.name: route for route in config.virtual_hosts[0].routes}


def _per_route(packed: Any) -> ext_proc_pb2.ExtProcPerRoute:
    if packed.Is(route_components_pb2.FilterConfig.DESCRIPTOR):
        wrapper = route_components_pb2.FilterConfig()
        packed.Unpack(wrapper)
        assert not wrapper.disabled  # this is what turns the disabled-by-default filter on
        packed = wrapper.config
    per_route = ext_proc_pb2.ExtProcPerRoute()
    assert packed.Unpack(per_route)
    return per_route


def _metadata(per_route: ext_proc_pb2.ExtProcPerRoute) -> dict[str, str]:
    return {h.key: h.value for h in per_route.overrides.grpc_initial_metadata}


def test_without_extproc_graphs_answer_501_and_no_filter_is_added() -> None:
    resources = translate([_deployment({"name": "main", "graph": CHAIN})], {}, GatewaySettings())
    assert _routes(resources)["default.dep.http"].direct_response.status == 501
    assert [f.name for f in xds.hcm(resources).http_filters] == ["envoy.filters.http.router"]


def test_filter_is_in_the_chain_disabled_and_fails_closed() -> None:
    resources = translate([], {}, WITH_EXTPROC)
    filters = list(xds.hcm(resources).http_filters)
    assert [f.name for f in filters] == [EXTPROC_FILTER, OBSERVE_FILTER, "envoy.filters.http.router"]
    assert filters[0].disabled
    config = ext_proc_pb2.ExternalProcessor()
    filters[0].typed_config.Unpack(config)
    assert not config.failure_mode_allow and config.status_on_error.code == EXTPROC_ERROR_STATUS
    assert config.processing_mode.request_body_mode == processing_mode_pb2.ProcessingMode.FULL_DUPLEX_STREAMED
    assert config.processing_mode.response_header_mode == processing_mode_pb2.ProcessingMode.SKIP
    assert config.grpc_service.envoy_grpc.cluster_name == EXTPROC_CLUSTER
    assert EXTPROC_CLUSTER in xds.clusters(resources)


def test_graph_routes_enable_ext_proc_and_name_the_predictor() -> None:
    resources = translate([_deployment({"name": "main", "graph": CHAIN})], {}, WITH_EXTPROC)
    routes = _routes(resources)
    rest, grpc = routes["default.dep.http"], routes["default.dep.grpc"]
    assert rest.route.cluster == EXTPROC_CLUSTER == grpc.route.cluster
    assert _metadata(_per_route(rest.typed_per_filter_config[EXTPROC_FILTER])) == {
        "x-seldon-predictor": "main"
    }
    assert EXTPROC_FILTER not in grpc.typed_per_filter_config  # gRPC: extproc is the upstream
    assert {(h.header.key, h.header.value) for h in grpc.request_headers_to_add} == {
        ("x-seldon-predictor", "main")
    }


def test_single_model_predictors_never_touch_ext_proc() -> None:
    resources = translate([_deployment({"name": "main", "graph": _unit("model")})], {}, WITH_EXTPROC)
    for route in _routes(resources).values():
        assert EXTPROC_FILTER not in route.typed_per_filter_config
        assert route.route.cluster != EXTPROC_CLUSTER


def test_lone_builtin_node_is_a_graph() -> None:
    stub = {"name": "main", "graph": {"name": "s", "implementation": "SIMPLE_MODEL"}}
    resources = translate([_deployment(stub)], {}, WITH_EXTPROC)
    assert _routes(resources)["default.dep.http"].route.cluster == EXTPROC_CLUSTER


def test_canary_of_a_graph_and_a_single_model_splits_with_ext_proc_per_cluster() -> None:
    deployment = _deployment(
        {"name": "graph", "traffic": 30, "graph": CHAIN},
        {"name": "direct", "traffic": 70, "graph": _unit("solo")},
    )
    routes = _routes(translate([deployment], {}, WITH_EXTPROC))
    split = routes["default.dep.http"]
    assert not _per_route(split.typed_per_filter_config[EXTPROC_FILTER]).disabled  # on for the route
    by_cluster = {c.name: c for c in split.route.weighted_clusters.clusters}
    graph = _per_route(by_cluster[EXTPROC_CLUSTER].typed_per_filter_config[EXTPROC_FILTER])
    assert _metadata(graph) == {"x-seldon-predictor": "graph"}
    direct = by_cluster["default.dep.direct.solo.http"]
    assert _per_route(direct.typed_per_filter_config[EXTPROC_FILTER]).disabled  # off for the direct one
    pinned = routes["default.dep.pin.graph.http"]
    assert _metadata(_per_route(pinned.typed_per_filter_config[EXTPROC_FILTER])) == {
        "x-seldon-predictor": "graph"
    }
    grpc_split = {c.name: c for c in routes["default.dep.grpc"].route.weighted_clusters.clusters}
    headers = grpc_split[EXTPROC_CLUSTER].request_headers_to_add
    assert [(h.header.key, h.header.value) for h in headers] == [("x-seldon-predictor", "graph")]


def test_v2_single_model_answers_seldon_paths_through_ext_proc_only() -> None:
    deployment = _deployment({"name": "main", "graph": _unit("model")})
    v2 = deployment.model_copy(update={"spec": deployment.spec.model_copy(update={"protocol": "v2"})})
    routes = _routes(translate([v2], {}, WITH_EXTPROC))
    rest = routes["default.dep.http.translate"]
    assert rest.match.prefix == "/seldon/default/dep/api/"
    assert _metadata(_per_route(rest.typed_per_filter_config[EXTPROC_FILTER])) == {
        "x-seldon-predictor": "main"
    }
    assert routes["default.dep.grpc.translate"].match.safe_regex.regex.startswith("/seldon\\.protos")
    assert routes["default.dep.http"].route.cluster == "default.dep.main.model.http"  # V2 paths: direct
    seldon = _routes(translate([deployment], {}, WITH_EXTPROC))
    assert "default.dep.http.translate" not in seldon


def test_grpc_graph_routes_retry_only_when_extproc_is_unreachable() -> None:
    routes = _routes(translate([_deployment({"name": "main", "graph": CHAIN})], {}, WITH_EXTPROC))
    assert routes["default.dep.grpc"].route.retry_policy.retry_on == "connect-failure,refused-stream"


def test_extproc_failure_is_mapped_to_a_seldon_503_naming_extproc() -> None:
    mappers = list(xds.hcm(translate([], {}, WITH_EXTPROC)).local_reply_config.mappers)
    down = [m for m in mappers if _status_filtered(m.filter) == {EXTPROC_ERROR_STATUS}]
    assert len(down) == 2  # REST: Seldon JSON; gRPC: only the status (grpc-status UNAVAILABLE)
    assert all(m.status_code.value == 503 for m in down)
    body = down[0].body_format_override.json_format
    assert body["status"]["code"] == 503 and body["status"]["info"] == EXTPROC_DOWN_INFO
    assert body["status"]["reason"] == "UNAVAILABLE"
    assert not down[1].HasField("body_format_override")
    assert mappers.index(down[0]) < mappers.index(down[1])


def _status_filtered(log_filter: Any) -> set[int]:
    if log_filter.HasField("status_code_filter"):
        return {log_filter.status_code_filter.comparison.value.default_value}
    return {code for f in log_filter.and_filter.filters for code in _status_filtered(f)}


def _serialized(resources: Resources) -> list[bytes]:
    return [message.SerializeToString(deterministic=True) for message in resources.all()]


def _examples() -> list[SeldonDeployment]:
    v2 = _deployment({"name": "main", "graph": _unit("model")}, name="v2")
    return [
        _deployment({"name": "main", "graph": CHAIN}, name="chain"),
        _deployment({"name": "main", "graph": _unit("model")}, name="single"),
        _deployment(
            {"name": "graph", "traffic": 30, "graph": CHAIN},
            {"name": "direct", "traffic": 70, "graph": _unit("solo")},
            name="canary",
        ),
        v2.model_copy(update={"spec": v2.spec.model_copy(update={"protocol": "v2"})}),
    ]


def test_graph_edge_unset_is_the_ext_proc_wiring() -> None:
    for scoped in (False, True):
        ext_proc = GatewaySettings(extproc=Upstream("127.0.0.1", 7100), scoped=scoped)
        rest_edge = GatewaySettings(
            extproc=Upstream("127.0.0.1", 7100), extproc_rest=Upstream("127.0.0.1", 7101), scoped=scoped
        )
        plain, edged = translate(_examples(), {}, ext_proc), translate(_examples(), {}, rest_edge)
        assert EXTPROC_REST_CLUSTER not in xds.clusters(plain)
        assert plain.listeners == edged.listeners  # the same filters: the REST edge is only routes
        assert _serialized(plain) != _serialized(edged)
        # everything not about REST graphs is the same
        routes = xds.routes(plain)
        edge_routes = xds.routes(edged)
        assert routes.keys() == edge_routes.keys()
        same = {n for n in routes if n.endswith(".grpc") or n.endswith(".grpc.translate") or "single" in n}
        assert same and all(routes[n] == edge_routes[n] for n in same)


def test_rest_edge_routes_rest_graphs_to_extproc_as_an_upstream() -> None:
    resources = translate([_deployment({"name": "main", "graph": CHAIN})], {}, WITH_REST_EDGE)
    edge = xds.clusters(resources)[EXTPROC_REST_CLUSTER]
    (packed,) = edge.typed_extension_protocol_options.values()
    options = http_protocol_options_pb2.HttpProtocolOptions()
    assert packed.Unpack(options) and options.explicit_http_config.HasField("http_protocol_options")  # 1.1
    rest = _routes(resources)["default.dep.http"]
    assert rest.route.cluster == EXTPROC_REST_CLUSTER
    assert EXTPROC_FILTER not in rest.typed_per_filter_config  # the filter stays off: nothing is sent
    assert [(h.header.key, h.header.value) for h in rest.request_headers_to_add] == [
        ("x-seldon-predictor", "main")
    ]
    assert rest.route.retry_policy.retry_on == "connect-failure,refused-stream"
    assert rest.route.timeout.seconds == 300  # node calls are bounded in extproc, which names the node
    assert rest.route.prefix_rewrite == "/"  # the edge reads Envoy's x-envoy-original-path


def test_rest_edge_canary_names_the_graph_predictor_on_its_weighted_cluster() -> None:
    deployment = _deployment(
        {"name": "graph", "traffic": 30, "graph": CHAIN},
        {"name": "direct", "traffic": 70, "graph": _unit("solo")},
    )
    routes = _routes(translate([deployment], {}, WITH_REST_EDGE))
    split = routes["default.dep.http"]
    assert EXTPROC_FILTER not in split.typed_per_filter_config
    by_cluster = {c.name: c for c in split.route.weighted_clusters.clusters}
    assert set(by_cluster) == {EXTPROC_REST_CLUSTER, "default.dep.direct.solo.http"}
    headers = by_cluster[EXTPROC_REST_CLUSTER].request_headers_to_add
    assert [(h.header.key, h.header.value) for h in headers] == [("x-seldon-predictor", "graph")]
    assert not by_cluster["default.dep.direct.solo.http"].request_headers_to_add
    assert all(EXTPROC_FILTER not in c.typed_per_filter_config for c in by_cluster.values())
    assert split.route.retry_policy.retry_on == "connect-failure,refused-stream"
    assert split.route.timeout.seconds == 300
    pinned = routes["default.dep.pin.graph.http"]
    assert (
        pinned.route.cluster == EXTPROC_REST_CLUSTER and EXTPROC_FILTER not in pinned.typed_per_filter_config
    )
    assert [(h.header.key, h.header.value) for h in pinned.request_headers_to_add] == [
        ("x-seldon-predictor", "graph")
    ]
    assert routes["default.dep.pin.direct.http"].route.cluster == "default.dep.direct.solo.http"


def test_rest_edge_translates_seldon_paths_for_a_v2_single_model() -> None:
    deployment = _deployment({"name": "main", "graph": _unit("model")})
    v2 = deployment.model_copy(update={"spec": deployment.spec.model_copy(update={"protocol": "v2"})})
    routes = _routes(translate([v2], {}, WITH_REST_EDGE))
    rest = routes["default.dep.http.translate"]
    assert rest.route.cluster == EXTPROC_REST_CLUSTER and not rest.route.prefix_rewrite  # original path
    assert EXTPROC_FILTER not in rest.typed_per_filter_config
    assert routes["default.dep.grpc.translate"].route.cluster == EXTPROC_CLUSTER
    assert routes["default.dep.http"].route.cluster == "default.dep.main.model.http"
