"""`translate`: SeldonDeployments plus where their components listen -> the gateway's Envoy resources.

Pure: no I/O, no clock, no gRPC. The same inputs always give equal protos, hence equal snapshot versions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xds_controller.translate.clusters import REFLECTION_CLUSTER, component_clusters, static_cluster
from xds_controller.translate.explainer import with_explainers
from xds_controller.translate.extproc import EXTPROC_CLUSTER, EXTPROC_REST_CLUSTER
from xds_controller.translate.listener import gateway_listener
from xds_controller.translate.model import (
    ComponentEndpoints,
    ComponentKey,
    DeploymentView,
    GatewaySettings,
    Resources,
)
from xds_controller.translate.on_demand import eager_cluster_names, routes_on_demand
from xds_controller.translate.plan import Transport
from xds_controller.translate.routes import default_route_config, deployment_route_config, gateway_routes
from xds_controller.translate.scopes import DEFAULT_ROUTE_CONFIG, DEFAULT_SCOPE, scope, scope_key
from xds_controller.translate.tracing import collector_cluster


def translate(
    deployments: Sequence[DeploymentView],
    endpoints: Mapping[ComponentKey, ComponentEndpoints],
    gateway: GatewaySettings,
) -> Resources:
    ordered = sorted(with_explainers(deployments), key=lambda d: (d.metadata.namespace, d.metadata.name))
    clusters, assignments = component_clusters(ordered, endpoints)
    if gateway.reflection is not None:
        clusters.append(static_cluster(REFLECTION_CLUSTER, Transport.GRPC, gateway.reflection))
    if gateway.extproc is not None:
        clusters.append(static_cluster(EXTPROC_CLUSTER, Transport.GRPC, gateway.extproc))
    if gateway.extproc is not None and gateway.extproc_rest is not None:
        clusters.append(static_cluster(EXTPROC_REST_CLUSTER, Transport.HTTP, gateway.extproc_rest))
    if gateway.tracing is not None:
        clusters.append(collector_cluster(gateway.tracing))
    eager = (
        eager_cluster_names((c.name for c in clusters[len(assignments) :]), ordered)
        if gateway.on_demand_clusters
        else None
    )
    if not gateway.scoped:
        return Resources(
            listeners=(gateway_listener(gateway),),
            routes=(gateway_routes(ordered, gateway),),
            clusters=tuple(clusters),
            load_assignments=tuple(assignments),
            eager_clusters=eager,
        )
    configs = [deployment_route_config(d, gateway) for d in ordered]
    scopes = [
        scope(
            config.name,
            scope_key(d.metadata.namespace, d.metadata.name),
            gateway.on_demand_clusters and routes_on_demand(config),
        )
        for d, config in zip(ordered, configs, strict=True)
    ]
    return Resources(
        listeners=(gateway_listener(gateway),),
        routes=(*configs, default_route_config(gateway)),
        clusters=tuple(clusters),
        load_assignments=tuple(assignments),
        scoped_routes=(*scopes, scope(DEFAULT_ROUTE_CONFIG, DEFAULT_SCOPE)),
        eager_clusters=eager,
    )
