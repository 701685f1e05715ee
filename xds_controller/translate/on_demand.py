"""On-demand clusters (`GatewaySettings.on_demand_clusters`): Envoy creates a component's cluster when a
request first needs it, instead of every cluster up front.

At 10,000 SeldonDeployments the gateway holds 40,000 component clusters (a `.http` and a `.grpc` one per
component of two predictors). Measured with a bare Envoy 1.40 (two workers, the gateway's stats filter):
an empty EDS cluster costs ~28 KB of RSS and ~0.17 ms of Envoy CPU to create, so 40,000 are ~1.1 GB and
~7 s of CPU before the gateway has its configuration, most of them for clusters no request may ever use.

With on-demand clusters the route configurations still name every cluster, but CDS sends a wildcard
subscription only the eager ones (`eager_cluster_names`); the `envoy.filters.http.on_demand` filter, just
before the router, holds a request whose cluster Envoy does not have, asks the control plane for it by
name over ADS (on-demand CDS, delta xDS only), and resumes the request once the cluster and its
endpoints are there (or after `DISCOVERY_TIMEOUT_S`, when the router answers 503 for a missing
cluster). The first request to each cluster pays one control-plane round trip; later ones pay nothing
but the filter's check that the cluster exists.

Eager: the gateway's own clusters (reflection, extproc, the trace collector) and every shadow's, since
Envoy skips a request mirror whose cluster it does not have instead of asking for it.

Scoped, a deployment's RouteConfiguration is on demand too (`ScopedRouteConfiguration.on_demand`):
Envoy receives every scope, but subscribes to a scope's RouteConfiguration only when a request first
selects the scope; the same filter holds the request meanwhile and re-runs it once the routes are there.
Measured at 10,000 SeldonDeployments (`bench/xds_kube.py`, quiet machine): with every RouteConfiguration
up front (20 MB, 10 routes each) Envoy took 2.4 s and 2.6 s of CPU to apply them, more than anything
else between the controller's start and Envoy in sync (5.7 s); on demand, the 10,000 scopes took 0.15 s,
the whole start 2.8 s, Envoy 0.1 s of CPU and 100 MB instead of 580 MB; a first request pays one
more round trip to the control plane (~4 ms in all). Eager: a RouteConfiguration that configures any
filter (`routes_on_demand`), since Envoy builds a request's filter chain from the route it has before
any filter runs, so a route that turns a filter on (graph, logging over the stream) must be there first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from envoy.config.core.v3 import config_source_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.on_demand.v3 import on_demand_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import any_pb2, duration_pb2

from xds_controller.translate.model import DeploymentView
from xds_controller.translate.plan import Direct, Transport, cluster_name, plan_predictor

ON_DEMAND_FILTER = "envoy.filters.http.on_demand"
# How long a request waits for its cluster: Envoy's default; the control plane answers in milliseconds.
DISCOVERY_TIMEOUT_S = 5


def on_demand_filter() -> hcm_pb2.HttpFilter:
    """The on_demand filter asking for missing clusters over ADS (place it just before the router)."""
    ads = config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )
    timeout = duration_pb2.Duration(seconds=DISCOVERY_TIMEOUT_S)
    config = on_demand_pb2.OnDemand(odcds=on_demand_pb2.OnDemandCds(source=ads, timeout=timeout))
    packed = any_pb2.Any()
    packed.Pack(config, deterministic=True)
    return hcm_pb2.HttpFilter(name=ON_DEMAND_FILTER, typed_config=packed)


def shadow_cluster_names(deployment: DeploymentView) -> Iterator[str]:
    """The clusters a deployment's request mirrors name (a graph shadow is not mirrored)."""
    for shadow in deployment.spec.predictors:
        if not shadow.shadow:
            continue
        plan = plan_predictor(deployment, shadow)
        if isinstance(plan, Direct):
            for transport in Transport:
                yield cluster_name(plan.component, transport)


def eager_cluster_names(static: Iterable[str], deployments: Iterable[DeploymentView]) -> frozenset[str]:
    """The clusters sent without being asked for: the gateway's own (`static`) and every shadow's."""
    return frozenset(static).union(*(shadow_cluster_names(d) for d in deployments))


def routes_on_demand(config: route_pb2.RouteConfiguration) -> bool:
    """May Envoy fetch `config` on demand: does nothing in it configure a filter (per virtual host, route
    or weighted cluster)?"""
    for host in config.virtual_hosts:
        if host.typed_per_filter_config:
            return False
        for route in host.routes:
            if route.typed_per_filter_config or any(
                c.typed_per_filter_config for c in route.route.weighted_clusters.clusters
            ):
                return False
    return True
