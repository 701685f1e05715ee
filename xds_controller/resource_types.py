"""The xDS vocabulary: type URLs, push order and resource naming.

This is the only module that spells a type URL. The snapshot, cache and server import the constants
from here; translation never needs them (it builds protos, and `Any.Pack` names their type).
"""

from __future__ import annotations

from typing import NewType

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2, scoped_route_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf.message import Message

TypeUrl = NewType("TypeUrl", str)

_PREFIX = "type.googleapis.com/"

LISTENER = TypeUrl(_PREFIX + "envoy.config.listener.v3.Listener")
ROUTE = TypeUrl(_PREFIX + "envoy.config.route.v3.RouteConfiguration")
SCOPED_ROUTE = TypeUrl(_PREFIX + "envoy.config.route.v3.ScopedRouteConfiguration")
CLUSTER = TypeUrl(_PREFIX + "envoy.config.cluster.v3.Cluster")
ENDPOINT = TypeUrl(_PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment")
SECRET = TypeUrl(_PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret")

# Make before break: clusters, then their endpoints, then listeners, then the route scopes and the routes
# they name. Secrets are named by clusters and listeners, so they follow (as in go-control-plane).
PUSH_ORDER: tuple[TypeUrl, ...] = (CLUSTER, ENDPOINT, LISTENER, SCOPED_ROUTE, ROUTE, SECRET)

# Envoy always subscribes to these with a wildcard; the others it names one by one.
WILDCARD_TYPES: frozenset[TypeUrl] = frozenset({LISTENER, CLUSTER, SCOPED_ROUTE})

SHORT_NAMES: dict[TypeUrl, str] = {
    CLUSTER: "CDS",
    ENDPOINT: "EDS",
    LISTENER: "LDS",
    ROUTE: "RDS",
    SCOPED_ROUTE: "SRDS",
    SECRET: "SDS",
}

_MESSAGE_TYPES: dict[TypeUrl, type[Message]] = {
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
    SCOPED_ROUTE: scoped_route_pb2.ScopedRouteConfiguration,
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    SECRET: secret_pb2.Secret,
}


def type_url_of(message: Message) -> TypeUrl:
    """The xDS type URL of a resource proto; ValueError for anything that is not an xDS resource."""
    url = TypeUrl(_PREFIX + message.DESCRIPTOR.full_name)
    if url not in _MESSAGE_TYPES:
        raise ValueError(f"{message.DESCRIPTOR.full_name} is not an xDS resource type")
    return url


def message_type(type_url: TypeUrl) -> type[Message]:
    return _MESSAGE_TYPES[type_url]


def resource_name(message: Message) -> str:
    """The name Envoy subscribes to: `cluster_name` for a ClusterLoadAssignment, `name` otherwise."""
    if isinstance(message, endpoint_pb2.ClusterLoadAssignment):
        return str(message.cluster_name)
    return str(getattr(message, "name"))  # noqa: B009 - every other resource type has `name`


def short_name(type_url: str) -> str:
    return SHORT_NAMES.get(TypeUrl(type_url), type_url.removeprefix(_PREFIX))
