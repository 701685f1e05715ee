"""What the gateway's scoped routes cost Envoy per deployment: no regex for gRPC (the Lua scope filter
already checked the service), while an unscoped gateway's one configuration still matches the path."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2, route_pb2

from mesh.spec import parse_deployment
from tests.xds_kube.cluster import sdep
from xds_controller.kube import ControllerSettings, service_view
from xds_controller.translate import GatewaySettings, translate
from xds_controller.translate.scopes import SCOPE_SCRIPT


def _grpc_matches(configs: tuple[object, ...]) -> list[route_components_pb2.RouteMatch]:
    return [
        route.match
        for config in configs
        if isinstance(config, route_pb2.RouteConfiguration)
        for host in config.virtual_hosts
        for route in host.routes
        if route.match.HasField("grpc")
    ]


def test_scoped_grpc_routes_match_no_path_regex_and_the_scope_filter_checks_the_service() -> None:
    view = service_view(parse_deployment(sdep("iris", "models", [("main", 75), ("canary", 25)])))
    scoped = translate([view], {}, ControllerSettings().gateway())
    matches = _grpc_matches(scoped.routes)
    assert len(matches) == 3  # two pins and the split
    assert all(m.prefix == "/" and not m.HasField("safe_regex") for m in matches)
    assert '"seldon.protos."' in SCOPE_SCRIPT and '"grpc.health."' in SCOPE_SCRIPT
    unscoped = translate([view], {}, GatewaySettings())
    assert all(m.HasField("safe_regex") for m in _grpc_matches(unscoped.routes))
