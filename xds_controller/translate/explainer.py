"""A predictor's explainer at the gateway: Seldon's path of it, its component, its route.

Seldon serves a predictor's `explainer:` at `/seldon/<ns>/<name>-explainer/<predictor>/` (then
`api/v1.0/explain`, or `v2/models/<name>-<predictor>-explainer/infer` for V2). Translation sees each
deployment with an explainer as two: itself, and an `ExplainerView` named `<name>-explainer` whose
predictors are the explainers (one node each, `EXPLAINER_NODE`). Everything built per deployment then
holds for explainers unchanged: their `.http`/`.grpc` clusters, their own RouteConfiguration and scope (a
scoped gateway picks the scope from the path's `<ns>/<name>-explainer`), incremental rebuilds. Only the
routes differ (`explainer_routes`, which `routes.deployment_routes` hands such a view to): per predictor,
its prefix rewritten to `/` to its explainer's cluster, with the deployment's REST timeout (explanations
can take long: `seldon.io/rest-timeout`, none by default), no mirrors, and `Seldon-Predictor` on the
answer. A deployment that is itself named `<name>-explainer` keeps that name; the explainer then is not
routed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2
from google.protobuf import duration_pb2

from xds_controller.translate.model import ComponentKey, DeploymentView, PredictorView
from xds_controller.translate.plan import Transport, cluster_name
from xds_controller.translate.policy import policy_of

EXPLAINER_NODE = "explainer"  # as Seldon names the explainer's container
SUFFIX = "-explainer"
_PREDICTOR_HEADER = "Seldon-Predictor"


@dataclass(frozen=True)
class _Node:
    name: str = EXPLAINER_NODE
    children: tuple[_Node, ...] = ()


@dataclass(frozen=True)
class _Predictor:
    name: str
    graph: _Node = field(default_factory=_Node)
    traffic: int = 0
    shadow: bool = False

    def nodes(self) -> Iterator[_Node]:
        yield self.graph


@dataclass(frozen=True)
class _Meta:
    name: str
    namespace: str


@dataclass(frozen=True)
class _Spec:
    predictors: tuple[_Predictor, ...]


@dataclass(frozen=True)
class ExplainerView:
    """The explainers of deployment `explains`, as translation reads a deployment."""

    metadata: _Meta
    spec: _Spec
    annotations: Mapping[str, str]
    explains: str

    def __hash__(self) -> int:  # annotations are a dict: hash what identifies the content
        return hash((self.metadata, self.spec, tuple(sorted(self.annotations.items()))))


def has_explainer(predictor: PredictorView) -> bool:
    return bool(getattr(predictor, "explainer", None))


def explainer_key(namespace: str, name: str, predictor: str) -> ComponentKey:
    """The component a predictor's explainer runs as (what the local supervisor and the routes agree on)."""
    return ComponentKey(namespace, f"{name}{SUFFIX}", predictor, EXPLAINER_NODE)


def explainer_view(deployment: DeploymentView) -> ExplainerView | None:
    predictors = tuple(_Predictor(p.name) for p in deployment.spec.predictors if has_explainer(p))
    if not predictors:
        return None
    meta = deployment.metadata
    return ExplainerView(
        _Meta(f"{meta.name}{SUFFIX}", meta.namespace),
        _Spec(predictors),
        dict(deployment.annotations),
        meta.name,
    )


def with_explainers(deployments: Sequence[DeploymentView]) -> list[DeploymentView]:
    """`deployments` and the explainer view of each that has one (none whose name a deployment has)."""
    names = {(d.metadata.namespace, d.metadata.name) for d in deployments}
    views = [explainer_view(d) for d in deployments]
    extra = [v for v in views if v is not None and (v.metadata.namespace, v.metadata.name) not in names]
    return [*deployments, *extra]


def explainer_changes(
    changed: Iterable[DeploymentView], removed: Iterable[tuple[str, str]]
) -> tuple[list[DeploymentView], list[tuple[str, str]]]:
    """An incremental change widened to the explainer views: a changed deployment's view is upserted
    (or removed when it has no explainer any more), a removed deployment's view removed."""
    changed, removed = list(changed), list(removed)
    extra_changed: list[DeploymentView] = []
    extra_removed = [(namespace, f"{name}{SUFFIX}") for namespace, name in removed]
    for deployment in changed:
        view = explainer_view(deployment)
        if view is not None:
            extra_changed.append(view)
        else:
            extra_removed.append((deployment.metadata.namespace, f"{deployment.metadata.name}{SUFFIX}"))
    return [*changed, *extra_changed], [*removed, *extra_removed]


def is_explainer_view(deployment: DeploymentView) -> bool:
    return getattr(deployment, "explains", None) is not None


def explainer_routes(deployment: DeploymentView) -> list[route_components_pb2.Route]:
    meta = deployment.metadata
    timeout_ms = policy_of(deployment.annotations).rest_timeout_ms or 0
    routes = []
    for predictor in deployment.spec.predictors:
        key = ComponentKey(meta.namespace, meta.name, predictor.name, EXPLAINER_NODE)
        action = route_components_pb2.RouteAction(
            cluster=cluster_name(key, Transport.HTTP),
            prefix_rewrite="/",
            timeout=duration_pb2.Duration(seconds=timeout_ms // 1000, nanos=(timeout_ms % 1000) * 1_000_000),
        )
        header = base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=_PREDICTOR_HEADER, value=predictor.name),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
        )
        routes.append(
            route_components_pb2.Route(
                name=f"{meta.namespace}.{meta.name}.{predictor.name}.http",
                match=route_components_pb2.RouteMatch(
                    prefix=f"/seldon/{meta.namespace}/{meta.name}/{predictor.name}/"
                ),
                route=action,
                response_headers_to_add=[header],
            )
        )
    return routes
