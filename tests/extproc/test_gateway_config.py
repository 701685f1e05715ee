"""The gateway's ext_proc wiring from `xds_controller.translate`: off by default, on per graph route."""

from __future__ import annotations

from typing import Any

from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2, processing_mode_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from mesh.spec import SeldonDeployment, parse_deployment
from xds_controller.translate import GatewaySettings, Resources, Upstream, translate
from xds_controller.translate.extproc import EXTPROC_CLUSTER, EXTPROC_FILTER, OBSERVE_FILTER

WITH_EXTPROC = GatewaySettings(listen_port=8123, extproc=Upstream("127.0.0.1", 7100))


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


def _hcm(resources: Resources) -> hcm_pb2.HttpConnectionManager:
    (listener,) = resources.listeners
    manager = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)  # type: ignore[attr-defined]
    return manager


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
    assert [f.name for f in _hcm(resources).http_filters] == ["envoy.filters.http.router"]


def test_filter_is_in_the_chain_disabled_and_fails_closed() -> None:
    resources = translate([], {}, WITH_EXTPROC)
    filters = list(_hcm(resources).http_filters)
    assert [f.name for f in filters] == [EXTPROC_FILTER, OBSERVE_FILTER, "envoy.filters.http.router"]
    assert filters[0].disabled
    config = ext_proc_pb2.ExternalProcessor()
    filters[0].typed_config.Unpack(config)
    assert not config.failure_mode_allow and config.status_on_error.code == 503
    assert config.processing_mode.request_body_mode == processing_mode_pb2.ProcessingMode.BUFFERED
    assert config.processing_mode.response_header_mode == processing_mode_pb2.ProcessingMode.SKIP
    assert config.grpc_service.envoy_grpc.cluster_name == EXTPROC_CLUSTER
    assert EXTPROC_CLUSTER in {c.name for c in resources.clusters}  # type: ignore[attr-defined]


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
