"""Typed views of translated Envoy resources for tests (`Resources` holds them as plain `Message`s)."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from xds_controller.translate import Resources


def clusters(resources: Resources) -> dict[str, cluster_pb2.Cluster]:
    found = {}
    for cluster in resources.clusters:
        assert isinstance(cluster, cluster_pb2.Cluster)
        found[cluster.name] = cluster
    return found


def route_configs(resources: Resources) -> list[route_pb2.RouteConfiguration]:
    configs = []
    for config in resources.routes:
        assert isinstance(config, route_pb2.RouteConfiguration)
        configs.append(config)
    return configs


def routes(resources: Resources) -> dict[str, route_components_pb2.Route]:
    """Every route of every route configuration's first virtual host, by name."""
    return {
        route.name: route for config in route_configs(resources) for route in config.virtual_hosts[0].routes
    }


def hcm(resources: Resources) -> hcm_pb2.HttpConnectionManager:
    """The HttpConnectionManager of the one gateway listener."""
    (listener,) = resources.listeners
    assert isinstance(listener, listener_pb2.Listener)
    manager = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)
    return manager
