"""Envoy's admin API for its owner only: on a Unix socket of mode 0600, plus a loopback listener that
serves nothing of it but the stats, for Prometheus.

The admin API dumps every secret-bearing config (`/config_dump`), and its POST endpoints stop Envoy,
drain listeners or change runtime values: on loopback TCP any local user could call them. A Unix socket
has file permissions (Envoy creates it with the mode given here, and the local mesh's state directory is
0700 besides). Prometheus cannot scrape a Unix socket, so `stats_listener` exposes only `GET /stats`
and `GET /stats/prometheus` on a loopback port, proxied to the socket by a static cluster; every other
path answers 404. Used by `bootstrap.render_bootstrap`.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

ADMIN_CLUSTER = "seldon-mesh.admin"
STATS_LISTENER = "seldon-mesh.stats"
SOCKET_MODE = 0o600  # the owner reads and writes; connecting to a Unix socket needs write permission
STATS_PATHS = ("/stats", "/stats/prometheus")  # read-only; a query string (`?filter=`) is allowed
# The in-cluster gateway's pod listener (the chart's): the kubelet's readiness probe and Prometheus.
POD_PATHS = ("/ready", "/stats/prometheus")


def admin_address(socket_path: str) -> address_pb2.Address:
    return address_pb2.Address(pipe=address_pb2.Pipe(path=socket_path, mode=SOCKET_MODE))


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def admin_cluster(socket_path: str) -> cluster_pb2.Cluster:
    """A static cluster of one endpoint: the admin socket."""
    endpoint = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=admin_address(socket_path))
    )
    return cluster_pb2.Cluster(
        name=ADMIN_CLUSTER,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration_pb2.Duration(seconds=1),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=ADMIN_CLUSTER,
            endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint])],
        ),
    )


def _stats_route(path: str) -> route_components_pb2.Route:
    get = string_pb2.StringMatcher(exact="GET")
    method = route_components_pb2.HeaderMatcher(name=":method", string_match=get)
    return route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(path=path, headers=[method]),
        route=route_components_pb2.RouteAction(cluster=ADMIN_CLUSTER),
    )


def stats_listener(host: str, port: int, paths: Sequence[str] = STATS_PATHS) -> listener_pb2.Listener:
    """`GET` of each of `paths` on `host:port`, from the admin socket; 404 for everything else."""
    not_found = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix="/"),
        direct_response=route_components_pb2.DirectResponseAction(
            status=404, body=base_pb2.DataSource(inline_string=f"only GET {' and '.join(paths)}\n")
        ),
    )
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix="seldon_mesh_stats",
        route_config=route_pb2.RouteConfiguration(
            name=STATS_LISTENER,
            virtual_hosts=[
                route_components_pb2.VirtualHost(
                    name="stats", domains=["*"], routes=[*map(_stats_route, paths), not_found]
                )
            ],
        ),
        http_filters=[
            hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=_packed(router_pb2.Router()))
        ],
    )
    return listener_pb2.Listener(
        name=STATS_LISTENER,
        address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address=host, port_value=port)),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.http_connection_manager", typed_config=_packed(manager)
                    )
                ]
            )
        ],
    )
