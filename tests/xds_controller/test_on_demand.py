"""On-demand clusters: which clusters a gateway sends unasked (its own and every shadow's), the same from
`translate` and from `SnapshotBuilder` as deployments come and go, and the on_demand filter before the
router on both connection managers; which deployments' RouteConfigurations are on demand (scopes)."""

from __future__ import annotations

import dataclasses

from envoy.config.route.v3 import scoped_route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from tests.xds_controller import builders as b
from xds_controller import resource_types
from xds_controller.builder import SnapshotBuilder
from xds_controller.translate import GatewaySettings, Resources, Upstream, translate
from xds_controller.translate.listener import gateway_listener
from xds_controller.translate.on_demand import ON_DEMAND_FILTER
from xds_controller.translate.scopes import DEFAULT_ROUTE_CONFIG

GATEWAY = GatewaySettings(
    listen_port=8000, reflection=Upstream("127.0.0.1", 9000), scoped=True, on_demand_clusters=True
)


def _with_shadow(name: str) -> b.Deployment:
    return b.deployment(
        name,
        b.Predictor("main", b.Unit("model"), traffic=100),
        b.Predictor("mirror", b.Unit("model"), traffic=100, shadow=True),
    )


def test_only_the_gateways_and_the_shadows_clusters_are_eager() -> None:
    deployments = [b.single("plain"), _with_shadow("shadowed")]
    snapshot = translate(deployments, {}, GATEWAY).to_snapshot()
    assert snapshot.eager_clusters == frozenset(
        {
            "seldon-mesh.reflection",
            "default.shadowed.mirror.model.http",
            "default.shadowed.mirror.model.grpc",
        }
    )
    assert snapshot.on_demand("default.plain.default.model.http")
    assert not snapshot.on_demand("default.shadowed.mirror.model.grpc")
    every = dataclasses.replace(GATEWAY, on_demand_clusters=False)
    assert translate(deployments, {}, every).to_snapshot().eager_clusters is None


def test_the_builder_keeps_the_eager_set_as_deployments_change() -> None:
    builder = SnapshotBuilder(GATEWAY)
    deployments = [b.single("plain"), _with_shadow("shadowed")]
    first = builder.build(deployments, {})
    assert first.eager_clusters == translate(deployments, {}, GATEWAY).to_snapshot().eager_clusters
    removed = builder.update([], [("default", "shadowed")], {})
    assert removed.eager_clusters == frozenset({"seldon-mesh.reflection"})
    added = builder.update([_with_shadow("other")], [], {})
    assert added.eager_clusters == frozenset(
        {
            "seldon-mesh.reflection",
            "default.other.mirror.model.http",
            "default.other.mirror.model.grpc",
        }
    )


def test_both_connection_managers_ask_for_missing_clusters_just_before_the_router() -> None:
    listener = gateway_listener(GATEWAY)
    chains = list(listener.filter_chains)
    assert chains
    for chain in chains:
        manager = hcm_pb2.HttpConnectionManager()
        chain.filters[0].typed_config.Unpack(manager)
        names = [f.name for f in manager.http_filters]
        assert names[-2:] == [ON_DEMAND_FILTER, "envoy.filters.http.router"]
    plain = gateway_listener(dataclasses.replace(GATEWAY, on_demand_clusters=False))
    assert ON_DEMAND_FILTER not in str(plain)


def _on_demand_scopes(resources: Resources) -> dict[str, bool]:
    scopes = [s for s in resources.scoped_routes if isinstance(s, scoped_route_pb2.ScopedRouteConfiguration)]
    return {s.name: s.on_demand for s in scopes}


def test_only_routes_that_turn_no_filter_on_are_on_demand() -> None:
    """A single model's routes (and a shadowed one's) come when a request first selects its scope; a
    graph's, whose routes turn the ext_proc filter on, are there before any request, as is the default
    scope's; without on-demand clusters every RouteConfiguration is sent up front."""
    gateway = dataclasses.replace(GATEWAY, extproc=Upstream("127.0.0.1", 9001))
    graph = b.deployment("graph", b.Predictor("main", b.Unit("pre", (b.Unit("model"),)), traffic=100))
    deployments = [b.single("plain"), _with_shadow("shadowed"), graph]
    expected = {
        "seldon-gateway/default/plain": True,
        "seldon-gateway/default/shadowed": True,
        "seldon-gateway/default/graph": False,
        DEFAULT_ROUTE_CONFIG: False,
    }
    assert _on_demand_scopes(translate(deployments, {}, gateway)) == expected
    built = SnapshotBuilder(gateway).build(deployments, {}).get(resource_types.SCOPED_ROUTE)
    from_builder = {}
    for name, packed in built.items():
        message = scoped_route_pb2.ScopedRouteConfiguration()
        message.ParseFromString(packed.value)
        from_builder[name] = message.on_demand
    assert from_builder == expected
    every = dataclasses.replace(gateway, on_demand_clusters=False)
    assert not any(_on_demand_scopes(translate(deployments, {}, every)).values())
