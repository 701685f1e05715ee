"""The one decision of how a predictor is served: straight to its runtime, or through the graph executor.

Everything else in translation asks `plan_predictor` and renders what it says, so when the ext_proc graph
executor arrives only this module and the graph branch of the route renderer change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from xds_controller.translate.model import ComponentKey, DeploymentView, PredictorView


class Transport(StrEnum):
    HTTP = "http"
    GRPC = "grpc"


def component_key(deployment: DeploymentView, predictor: PredictorView, node: str) -> ComponentKey:
    return ComponentKey(deployment.metadata.namespace, deployment.metadata.name, predictor.name, node)


def cluster_name(key: ComponentKey, transport: Transport) -> str:
    """`<namespace>.<deployment>.<predictor>.<node>.<http|grpc>`."""
    return f"{key.namespace}.{key.deployment}.{key.predictor}.{key.node}.{transport.value}"


@dataclass(frozen=True)
class Direct:
    """Envoy routes the predictor's traffic straight to one component's runtime."""

    predictor: str
    component: ComponentKey


@dataclass(frozen=True)
class Graph:
    """The predictor needs the graph executor (ext_proc); `reason` says why, for the 501 reply."""

    predictor: str
    reason: str


PredictorPlan = Direct | Graph


def plan_predictor(deployment: DeploymentView, predictor: PredictorView) -> PredictorPlan:
    nodes = list(predictor.nodes())
    # A lone built-in node (SIMPLE_MODEL, ...) has no runtime: the graph executor serves it.
    if len(nodes) == 1 and not getattr(nodes[0], "is_builtin", False):
        return Direct(predictor.name, component_key(deployment, predictor, nodes[0].name))
    meta = deployment.metadata
    return Graph(
        predictor.name,
        f"predictor {predictor.name!r} of SeldonDeployment {meta.namespace}/{meta.name} has a "
        f"{len(nodes)}-node graph, and graph execution is not available in this gateway yet",
    )


# A deployment annotation: "true" logs its single-model predictors' payloads through the gateway's ext_proc
# observability stream (extproc logs them) instead of in their runtimes, the default. Each logged request
# then costs an ext_proc stream (in `make bench`, more CPU than the model's whole request).
PAYLOAD_LOG_STREAM_ANNOTATION = "seldon.io/payload-log-stream"


def logs_over_stream(deployment: DeploymentView) -> bool:
    """Does the deployment ask for the observability stream to log its single models?"""
    value = deployment.annotations.get(PAYLOAD_LOG_STREAM_ANNOTATION, "")
    return value.strip().lower() in ("true", "1", "yes")
