"""The values translation consumes and produces: component keys, upstream addresses, gateway settings,
and the bundle of Envoy resources. Also the view of a SeldonDeployment that translation reads.

The spec view is a set of read-only Protocols matching `mesh.spec` (SeldonDeployment, PredictorSpec,
PredictiveUnit), so translation depends on the shape it reads and not on how the spec is parsed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from google.protobuf.message import Message

from xds_controller.snapshot import Snapshot
from xds_controller.translate.tracing import GatewayTracingSettings


class PredictiveUnitView(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def children(self) -> Sequence[PredictiveUnitView]: ...


class PredictorView(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def graph(self) -> PredictiveUnitView: ...

    @property
    def traffic(self) -> int: ...

    @property
    def shadow(self) -> bool: ...

    def nodes(self) -> Iterator[PredictiveUnitView]: ...


class MetadataView(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...


class DeploymentSpecView(Protocol):
    @property
    def predictors(self) -> Sequence[PredictorView]: ...


class DeploymentView(Protocol):
    @property
    def metadata(self) -> MetadataView: ...

    @property
    def spec(self) -> DeploymentSpecView: ...

    @property
    def annotations(self) -> Mapping[str, str]: ...


class ComponentKey(NamedTuple):
    """One graph node of one predictor: what a runtime process (or Deployment) serves."""

    namespace: str
    deployment: str
    predictor: str
    node: str


class Upstream(NamedTuple):
    """One address (a named tuple: hashed and compared in C, as every cluster's endpoints are looked up
    by their upstreams when a snapshot is built)."""

    host: str
    port: int


@dataclass(frozen=True)
class ComponentEndpoints:
    """Where a component's replicas listen: REST (HTTP/1.1) and gRPC (HTTP/2) addresses."""

    http: tuple[Upstream, ...] = ()
    grpc: tuple[Upstream, ...] = ()


@dataclass(frozen=True)
class GatewaySettings:
    # Loopback by default: the local mesh serves the machine it runs on.
    listen_host: str = "127.0.0.1"
    # Seldon Core's executor port, so clients written for Seldon work unchanged.
    listen_port: int = 8000
    # The control plane's gRPC server that answers reflection for requests naming no deployment.
    reflection: Upstream | None = None
    # The extproc gRPC server (ext_proc + gRPC graph edges); None: graph predictors answer 501.
    extproc: Upstream | None = None
    # extproc's REST edge (HTTP/1.1; `seldon-mesh up --graph-edge http`): REST graph and translation
    # requests are routed there as to an ordinary upstream; None: they are answered over ext_proc.
    extproc_rest: Upstream | None = None
    # With `extproc_rest` (`--graph-edge ext_proc-http`): the graph ext_proc filter, over `http_service` to
    # the REST edge, answers non-split REST graph routes' POSTs; their GETs and splits go to the REST edge.
    extproc_http: bool = False
    # Envoy's OpenTelemetry tracer exporting to this collector, and per-route span tags; None: no tracing.
    tracing: GatewayTracingSettings | None = None
    # One RouteConfiguration per deployment, chosen by scope (SRDS; see `translate.scopes`), so a change
    # makes Envoy parse only that deployment's routes; False: one RouteConfiguration for all.
    scoped: bool = False
    # A client must send its request headers within this, and its whole request within
    # `request_timeout_s`, or get a 408: a slow client (a byte every few seconds) cannot hold a stream.
    request_headers_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    # Component clusters reach Envoy when a request first needs one (on-demand CDS; delta xDS only; see
    # `translate.on_demand`), so thousands of deployments do not cost all their clusters up front; scoped,
    # so do the RouteConfigurations that turn on no filter (on-demand scoped RDS).
    on_demand_clusters: bool = False


@dataclass(frozen=True)
class Resources:
    """Translated Envoy resources; `all()` lists them in push order (clusters first)."""

    listeners: tuple[Message, ...] = ()
    routes: tuple[Message, ...] = ()
    clusters: tuple[Message, ...] = ()
    load_assignments: tuple[Message, ...] = ()
    scoped_routes: tuple[Message, ...] = ()
    # With on-demand clusters: the only clusters a wildcard CDS subscription is sent (`Snapshot`)
    eager_clusters: frozenset[str] | None = None

    def all(self) -> tuple[Message, ...]:
        return (*self.clusters, *self.load_assignments, *self.listeners, *self.scoped_routes, *self.routes)

    def to_snapshot(self) -> Snapshot:
        return Snapshot.of(self.all(), eager_clusters=self.eager_clusters)
