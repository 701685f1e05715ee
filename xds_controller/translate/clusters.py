"""Clusters and ClusterLoadAssignments: one EDS cluster per component and transport.

Every component of every predictor gets its `.http` (HTTP/1.1) and `.grpc` (HTTP/2) cluster even before
it has endpoints, with an empty assignment, so a route to a component that is still starting answers
503 (no healthy upstream) rather than 404.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from xds_controller.translate.model import ComponentEndpoints, ComponentKey, DeploymentView, Upstream
from xds_controller.translate.plan import Transport, cluster_name, component_key

REFLECTION_CLUSTER = "seldon-mesh.reflection"

# Connecting to a local runtime takes microseconds; a second means it is not there.
CONNECT_TIMEOUT_S = 1
# Envoy's defaults are 1024 connections/pending/requests; a model runtime saturates long before, and
# more pending requests than this only grows latency, so overflow is better answered with a 503 at once.
MAX_CONNECTIONS = 1024
MAX_PENDING_REQUESTS = 1024
MAX_REQUESTS = 1024
MAX_RETRIES = 3

_HTTP_OPTIONS_KEY = http_protocol_options_pb2.HttpProtocolOptions.DESCRIPTOR.full_name


def _protocol_options(transport: Transport) -> any_pb2.Any:
    explicit = http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig()
    if transport is Transport.GRPC:
        explicit.http2_protocol_options.CopyFrom(protocol_pb2.Http2ProtocolOptions())
    else:
        explicit.http_protocol_options.CopyFrom(protocol_pb2.Http1ProtocolOptions())
    packed = any_pb2.Any()
    packed.Pack(http_protocol_options_pb2.HttpProtocolOptions(explicit_http_config=explicit))
    return packed


def _circuit_breakers() -> circuit_breaker_pb2.CircuitBreakers:
    return circuit_breaker_pb2.CircuitBreakers(
        thresholds=[
            circuit_breaker_pb2.CircuitBreakers.Thresholds(
                max_connections=wrappers_pb2.UInt32Value(value=MAX_CONNECTIONS),
                max_pending_requests=wrappers_pb2.UInt32Value(value=MAX_PENDING_REQUESTS),
                max_requests=wrappers_pb2.UInt32Value(value=MAX_REQUESTS),
                max_retries=wrappers_pb2.UInt32Value(value=MAX_RETRIES),
            )
        ]
    )


def _base_cluster(name: str, transport: Transport) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(
        name=name,
        connect_timeout=duration_pb2.Duration(seconds=CONNECT_TIMEOUT_S),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        circuit_breakers=_circuit_breakers(),
    )
    cluster.typed_extension_protocol_options[_HTTP_OPTIONS_KEY].CopyFrom(_protocol_options(transport))
    return cluster


def eds_cluster(name: str, transport: Transport) -> cluster_pb2.Cluster:
    cluster = _base_cluster(name, transport)
    cluster.type = cluster_pb2.Cluster.EDS
    ads = config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )
    cluster.eds_cluster_config.eds_config.CopyFrom(ads)
    return cluster


def load_assignment(name: str, upstreams: Sequence[Upstream]) -> endpoint_pb2.ClusterLoadAssignment:
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    if upstreams:
        assignment.endpoints.append(
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(
                            address=address_pb2.Address(
                                socket_address=address_pb2.SocketAddress(address=up.host, port_value=up.port)
                            )
                        )
                    )
                    for up in upstreams
                ]
            )
        )
    return assignment


def static_cluster(name: str, transport: Transport, upstream: Upstream) -> cluster_pb2.Cluster:
    cluster = _base_cluster(name, transport)
    cluster.type = cluster_pb2.Cluster.STATIC
    cluster.load_assignment.CopyFrom(load_assignment(name, (upstream,)))
    return cluster


def component_keys(deployments: Sequence[DeploymentView]) -> Iterator[ComponentKey]:
    for deployment in deployments:
        for predictor in deployment.spec.predictors:
            for node in predictor.nodes():
                yield component_key(deployment, predictor, node.name)


def component_clusters(
    deployments: Sequence[DeploymentView], endpoints: Mapping[ComponentKey, ComponentEndpoints]
) -> tuple[list[cluster_pb2.Cluster], list[endpoint_pb2.ClusterLoadAssignment]]:
    clusters, assignments = [], []
    for key in component_keys(deployments):
        found = endpoints.get(key, ComponentEndpoints())
        for transport, upstreams in ((Transport.HTTP, found.http), (Transport.GRPC, found.grpc)):
            name = cluster_name(key, transport)
            clusters.append(eds_cluster(name, transport))
            assignments.append(load_assignment(name, upstreams))
    return clusters, assignments
