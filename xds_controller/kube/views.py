"""What the gateway routes to in a cluster: each predictor's Service, seen as a one-node graph.

On Kubernetes a predictor is reached through its Service `<sdep>-<predictor>` (or `seldon.io/svc-name`),
ports `http` (8000) and `grpc` (5001): the runtime's pods behind it for a single model, the predictor's own
extproc for a graph (which runs the graph and translates protocols itself). So the gateway never needs its
own ext_proc: `ServiceDeployment` presents every predictor to `xds_controller.translate` as a single node
named `SERVICE_NODE`, which `plan_predictor` routes straight to, with the deployment's traffic split,
shadows, header pins and `seldon.io/*` traffic annotations unchanged.

Views are frozen values compared by content, so `SnapshotBuilder` re-renders a deployment only when what
the gateway reads of it changed (a replica count or an image does not; a weight does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from mesh.spec import PredictorSpec, SeldonDeployment
from xds_controller.translate import ComponentKey

# The node every predictor view has: its Service. Short, as it is part of four cluster names a deployment.
SERVICE_NODE = "svc"
SVC_NAME_ANNOTATION = "seldon.io/svc-name"
MAX_NAME = 63


def shorten(name: str) -> str:
    """Seldon's rule for object names past the 63-character DNS label limit: `seldon-<md5 hex>`."""
    if len(name) <= MAX_NAME:
        return name
    return "seldon-" + hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()


def predictor_service(deployment: SeldonDeployment, predictor: PredictorSpec) -> str:
    """The predictor Service's name, as the renderer names it (`mesh.render.names.predictor_service`)."""
    custom = predictor.annotations.get(SVC_NAME_ANNOTATION)
    if custom:
        return custom
    return shorten(f"{deployment.metadata.name}-{predictor.name}")


@dataclass(frozen=True)
class ServiceUnit:
    name: str = SERVICE_NODE
    children: tuple[ServiceUnit, ...] = ()


_UNIT = ServiceUnit()


@dataclass(frozen=True)
class ServicePredictor:
    name: str
    traffic: int
    shadow: bool
    graph: ServiceUnit = _UNIT

    def nodes(self) -> Iterator[ServiceUnit]:
        yield self.graph


@dataclass(frozen=True)
class ServiceMeta:
    name: str
    namespace: str


@dataclass(frozen=True)
class ServiceSpec:
    predictors: tuple[ServicePredictor, ...]


@dataclass(frozen=True)
class ServiceDeployment:
    """A SeldonDeployment as the in-cluster gateway routes it (a `translate.DeploymentView`).

    The Services are kept beside the spec, not in it: the builder renders one deployment per spec
    shape and fills in the others' names (`templates`), so the spec must not hold the name."""

    metadata: ServiceMeta
    spec: ServiceSpec
    annotations: Mapping[str, str] = field(default_factory=dict)
    service_names: tuple[str, ...] = ()  # each predictor's, in order

    @property
    def key(self) -> tuple[str, str]:
        return self.metadata.namespace, self.metadata.name

    def services(self) -> Iterator[tuple[ComponentKey, str]]:
        """Each predictor's component key and the Service (in the deployment's namespace) behind it."""
        meta = self.metadata
        for predictor, service in zip(self.spec.predictors, self.service_names, strict=True):
            yield ComponentKey(meta.namespace, meta.name, predictor.name, SERVICE_NODE), service


def service_view(deployment: SeldonDeployment) -> ServiceDeployment:
    predictors = tuple(ServicePredictor(p.name, p.traffic, p.shadow) for p in deployment.spec.predictors)
    services = tuple(predictor_service(deployment, p) for p in deployment.spec.predictors)
    meta = deployment.metadata
    return ServiceDeployment(
        ServiceMeta(meta.name, meta.namespace),
        ServiceSpec(predictors),
        dict(deployment.annotations),
        services,
    )
