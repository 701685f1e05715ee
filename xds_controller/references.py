"""What one xDS resource names in another: the edges the snapshot consistency check walks.

Listener -> RouteConfiguration (HCM over RDS), ScopedRouteConfiguration -> RouteConfiguration,
RouteConfiguration -> Cluster (route, weighted and
mirror clusters), Cluster -> ClusterLoadAssignment (EDS service name).
"""

from __future__ import annotations

from collections.abc import Iterator

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2, scoped_route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2

_HCM = http_connection_manager_pb2.HttpConnectionManager


def route_config_names(listener: listener_pb2.Listener) -> Iterator[str]:
    chains = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    for chain in chains:
        for network_filter in chain.filters:
            if not network_filter.typed_config.Is(_HCM.DESCRIPTOR):
                continue
            hcm = _HCM()
            network_filter.typed_config.Unpack(hcm)
            if hcm.HasField("rds"):
                yield str(hcm.rds.route_config_name)


def _action_clusters(action: route_components_pb2.RouteAction) -> Iterator[str]:
    if action.cluster:
        yield str(action.cluster)
    for weighted in action.weighted_clusters.clusters:
        if weighted.name:
            yield str(weighted.name)
    for mirror in action.request_mirror_policies:
        if mirror.cluster:
            yield str(mirror.cluster)


def route_cluster_names(route: route_components_pb2.Route) -> Iterator[str]:
    if route.HasField("route"):
        yield from _action_clusters(route.route)


def cluster_names(route_config: route_pb2.RouteConfiguration) -> Iterator[str]:
    for virtual_host in route_config.virtual_hosts:
        for mirror in virtual_host.request_mirror_policies:
            if mirror.cluster:
                yield str(mirror.cluster)
        for route in virtual_host.routes:
            yield from route_cluster_names(route)


def eds_service_name(cluster: cluster_pb2.Cluster) -> str | None:
    """The ClusterLoadAssignment an EDS cluster waits for, or None for other discovery types."""
    if not cluster.HasField("type") or cluster.type != cluster_pb2.Cluster.EDS:
        return None
    return str(cluster.eds_cluster_config.service_name or cluster.name)


def scope_route_name(scope: scoped_route_pb2.ScopedRouteConfiguration) -> str:
    return str(scope.route_configuration_name)
