"""Pure translation of SeldonDeployments into the gateway's Envoy resources (see `translate`)."""

from xds_controller.translate.model import (
    ComponentEndpoints,
    ComponentKey,
    DeploymentView,
    GatewaySettings,
    Resources,
    Upstream,
)
from xds_controller.translate.plan import (
    PAYLOAD_LOG_STREAM_ANNOTATION,
    Direct,
    Graph,
    PredictorPlan,
    cluster_name,
    logs_over_stream,
    plan_predictor,
)
from xds_controller.translate.translate import translate

__all__ = [
    "PAYLOAD_LOG_STREAM_ANNOTATION",
    "ComponentEndpoints",
    "ComponentKey",
    "DeploymentView",
    "Direct",
    "GatewaySettings",
    "Graph",
    "PredictorPlan",
    "Resources",
    "Upstream",
    "cluster_name",
    "logs_over_stream",
    "plan_predictor",
    "translate",
]
