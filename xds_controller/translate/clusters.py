"""Clusters and ClusterLoadAssignments: one EDS cluster per component and transport.

Every component of every predictor gets its `.http` (HTTP/1.1) and `.grpc` (HTTP/2) cluster even before
it has endpoints, with an empty assignment, so a route to a component that is still starting answers
503 (no healthy upstream) rather than 404.
"""

from __future__ import annotations

import functools
import ipaddress
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from xds_controller.translate.model import ComponentEndpoints, ComponentKey, DeploymentView, Upstream
from xds_controller.translate.plan import Transport, cluster_name
from xds_controller.translate.policy import policy_of

REFLECTION_CLUSTER = "seldon-mesh.reflection"

# Connecting to a local runtime takes microseconds; a second means it is not there.
CONNECT_TIMEOUT_S = 1
# Envoy's defaults are 1024 connections/pending/requests; a model runtime saturates long before, and
# more pending requests than this only grows latency, so overflow is better answered with a 503 at once.
MAX_CONNECTIONS = 1024
MAX_PENDING_REQUESTS = 1024
MAX_REQUESTS = 1024
# Retries may add at most a fifth to the requests in flight (at least 8 at a time): enough to hide a
# flaky replica, never enough to double the load on a struggling model.
RETRY_BUDGET_PERCENT = 20.0
MIN_RETRY_CONCURRENCY = 8
# Outlier ejection: a replica answering 5 errors in a row (5xx, or 3 connect failures/timeouts in a row)
# is taken out for 30 s (longer each time); at most half the replicas at once, so a deployment-wide
# fault (a bad model version) still reaches the runtimes and shows as errors rather than as 503 no-host.
CONSECUTIVE_5XX = 5
CONSECUTIVE_GATEWAY_FAILURE = 3
OUTLIER_INTERVAL_S = 5
BASE_EJECTION_TIME_S = 30
MAX_EJECTION_PERCENT = 50
# An upstream connection idle this long is closed by Envoy: before the runtime's own keep-alive
# (model_runtime.server, 75 s) closes it, so Envoy never sends a request on a connection being closed
# (Envoy's default is an hour).
IDLE_TIMEOUT_S = 60
# HTTP/2 flow-control windows: Envoy's defaults (256 MiB) unless a larger message is allowed.
DEFAULT_WINDOW_BYTES = 256 * 2**20
MAX_WINDOW_BYTES = 2**31 - 1

_HTTP_OPTIONS_KEY = http_protocol_options_pb2.HttpProtocolOptions.DESCRIPTOR.full_name


def _protocol_options(transport: Transport, max_message_bytes: int | None = None) -> any_pb2.Any:
    explicit = http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig()
    if transport is Transport.GRPC:
        window = min(max(max_message_bytes or 0, DEFAULT_WINDOW_BYTES), MAX_WINDOW_BYTES)
        explicit.http2_protocol_options.CopyFrom(
            protocol_pb2.Http2ProtocolOptions(
                initial_stream_window_size=wrappers_pb2.UInt32Value(value=window),
                initial_connection_window_size=wrappers_pb2.UInt32Value(value=window),
            )
        )
    else:
        explicit.http_protocol_options.CopyFrom(protocol_pb2.Http1ProtocolOptions())
    packed = any_pb2.Any()
    common = protocol_pb2.HttpProtocolOptions(idle_timeout=duration_pb2.Duration(seconds=IDLE_TIMEOUT_S))
    options = http_protocol_options_pb2.HttpProtocolOptions(
        common_http_protocol_options=common, explicit_http_config=explicit
    )
    packed.Pack(options)
    return packed


def _circuit_breakers() -> circuit_breaker_pb2.CircuitBreakers:
    return circuit_breaker_pb2.CircuitBreakers(
        thresholds=[
            circuit_breaker_pb2.CircuitBreakers.Thresholds(
                max_connections=wrappers_pb2.UInt32Value(value=MAX_CONNECTIONS),
                max_pending_requests=wrappers_pb2.UInt32Value(value=MAX_PENDING_REQUESTS),
                max_requests=wrappers_pb2.UInt32Value(value=MAX_REQUESTS),
                retry_budget=circuit_breaker_pb2.CircuitBreakers.Thresholds.RetryBudget(
                    budget_percent=percent_pb2.Percent(value=RETRY_BUDGET_PERCENT),
                    min_retry_concurrency=wrappers_pb2.UInt32Value(value=MIN_RETRY_CONCURRENCY),
                ),
            )
        ]
    )


def _outlier_detection() -> outlier_detection_pb2.OutlierDetection:
    return outlier_detection_pb2.OutlierDetection(
        consecutive_5xx=wrappers_pb2.UInt32Value(value=CONSECUTIVE_5XX),
        consecutive_gateway_failure=wrappers_pb2.UInt32Value(value=CONSECUTIVE_GATEWAY_FAILURE),
        enforcing_consecutive_gateway_failure=wrappers_pb2.UInt32Value(value=100),
        interval=duration_pb2.Duration(seconds=OUTLIER_INTERVAL_S),
        base_ejection_time=duration_pb2.Duration(seconds=BASE_EJECTION_TIME_S),
        max_ejection_percent=wrappers_pb2.UInt32Value(value=MAX_EJECTION_PERCENT),
    )


def _base_cluster(
    name: str, transport: Transport, max_message_bytes: int | None = None
) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(
        name=name,
        connect_timeout=duration_pb2.Duration(seconds=CONNECT_TIMEOUT_S),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        circuit_breakers=_circuit_breakers(),
    )
    options = _protocol_options(transport, max_message_bytes)
    cluster.typed_extension_protocol_options[_HTTP_OPTIONS_KEY].CopyFrom(options)
    return cluster


@functools.lru_cache(maxsize=256)
def _eds_template(transport: Transport, max_message_bytes: int | None) -> bytes:
    """A component cluster without its name, serialized: every component cluster is this plus a name."""
    cluster = _base_cluster("", transport, max_message_bytes)
    cluster.type = cluster_pb2.Cluster.EDS
    ads = config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )
    cluster.eds_cluster_config.eds_config.CopyFrom(ads)
    cluster.outlier_detection.CopyFrom(_outlier_detection())
    return bytes(cluster.SerializeToString(deterministic=True))


def eds_cluster_bytes(name: str, transport: Transport, max_message_bytes: int | None = None) -> bytes:
    """The deterministic serialization of `eds_cluster(...)`, built without a proto.

    `name` is field 1 and deterministic serialization writes fields in number order, so prefixing the
    encoded name to the nameless template gives exactly the bytes the full message serializes to.
    """
    encoded = name.encode()
    return b"\x0a" + _varint(len(encoded)) + encoded + _eds_template(transport, max_message_bytes)


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = tuple(bytes((value,)) for value in range(0x80))


def eds_cluster(name: str, transport: Transport, max_message_bytes: int | None = None) -> cluster_pb2.Cluster:
    """A component cluster: endpoints over ADS, outlier ejection, circuit breakers, retry budget."""
    return cluster_pb2.Cluster.FromString(eds_cluster_bytes(name, transport, max_message_bytes))


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


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _lb_endpoint_bytes(host: str, port: int) -> bytes:
    """One `LocalityLbEndpoints.lb_endpoints` entry, serialized (field 2 of its locality)."""
    # address: a plain string (omitted when empty); port_value: in a oneof, so written even when 0
    socket = (_length_delimited(2, host.encode()) if host else b"") + b"\x18" + _varint(port)
    address = _length_delimited(1, socket)  # Address.socket_address
    endpoint = _length_delimited(1, address)  # Endpoint.address
    return _length_delimited(2, _length_delimited(1, endpoint))  # LbEndpoint.endpoint


def load_assignment_bytes(name: str, upstreams: Sequence[Upstream]) -> bytes:
    """The deterministic serialization of `load_assignment(...)`, built without a proto: cluster_name
    (field 1), then one LocalityLbEndpoints (field 2) holding an LbEndpoint per upstream."""
    encoded = _length_delimited(1, name.encode()) if name else b""
    return encoded + _locality_bytes(tuple(upstreams))


def load_assignments_bytes(
    heads: Sequence[bytes], upstreams: Iterable[tuple[Upstream, ...]]
) -> tuple[bytes, ...]:
    """`load_assignment_bytes` of many clusters at once, from each one's head (its assignment without
    upstreams, `load_assignment_bytes(name, ())`: a builder gets those from its shape templates) and
    upstreams: the endpoints field follows the name, so it is a concatenation (a cold build of 10,000
    deployments makes 40,000 of them)."""
    return tuple(map(operator.add, heads, map(_locality_bytes, upstreams)))


@functools.lru_cache(maxsize=4096)
def _locality_bytes(upstreams: tuple[Upstream, ...]) -> bytes:
    """`ClusterLoadAssignment.endpoints` (field 2): one locality holding an LbEndpoint per upstream, or
    nothing for no upstreams."""
    if not upstreams:
        return b""
    return _length_delimited(2, b"".join(_lb_endpoint_bytes(up.host, up.port) for up in upstreams))


def static_cluster(name: str, transport: Transport, upstream: Upstream) -> cluster_pb2.Cluster:
    """A cluster of one fixed upstream: STATIC for an IP address, STRICT_DNS for a name (a Kubernetes
    Service such as the in-cluster xDS server), which a STATIC cluster refuses as a malformed address."""
    cluster = _base_cluster(name, transport)
    cluster.type = cluster_pb2.Cluster.STATIC if _is_ip(upstream.host) else cluster_pb2.Cluster.STRICT_DNS
    cluster.load_assignment.CopyFrom(load_assignment(name, (upstream,)))
    return cluster


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def deployment_component_keys(deployment: DeploymentView) -> tuple[ComponentKey, ...]:
    """Every graph node's `component_key`, predictor by predictor (runs for every deployment a build
    looks at, hence inline)."""
    meta = deployment.metadata
    namespace, name = meta.namespace, meta.name
    return tuple(
        [
            ComponentKey(namespace, name, predictor.name, node.name)
            for predictor in deployment.spec.predictors
            for node in predictor.nodes()
        ]
    )


def component_keys(deployments: Sequence[DeploymentView]) -> Iterator[ComponentKey]:
    for deployment in deployments:
        yield from deployment_component_keys(deployment)


@dataclass(frozen=True)
class ClusterSpec:
    """What one component cluster is made of: `eds_cluster` and `load_assignment` render it."""

    name: str
    transport: Transport
    max_message_bytes: int | None
    upstreams: tuple[Upstream, ...]


def deployment_cluster_specs(
    deployment: DeploymentView, endpoints: Mapping[ComponentKey, ComponentEndpoints]
) -> Iterator[ClusterSpec]:
    """The `.http` and `.grpc` cluster of every component of one deployment."""
    max_message_bytes = policy_of(deployment.annotations).max_message_bytes
    for key in deployment_component_keys(deployment):
        found = endpoints.get(key, ComponentEndpoints())
        for transport, upstreams in ((Transport.HTTP, found.http), (Transport.GRPC, found.grpc)):
            yield ClusterSpec(cluster_name(key, transport), transport, max_message_bytes, tuple(upstreams))


def component_clusters(
    deployments: Sequence[DeploymentView], endpoints: Mapping[ComponentKey, ComponentEndpoints]
) -> tuple[list[cluster_pb2.Cluster], list[endpoint_pb2.ClusterLoadAssignment]]:
    clusters, assignments = [], []
    for deployment in deployments:
        for spec in deployment_cluster_specs(deployment, endpoints):
            clusters.append(eds_cluster(spec.name, spec.transport, spec.max_message_bytes))
            assignments.append(load_assignment(spec.name, spec.upstreams))
    return clusters, assignments
