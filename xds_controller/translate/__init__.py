"""Pure translation of SeldonDeployments into the gateway's Envoy resources (see `translate`)."""

from xds_controller.translate.model import (
    ComponentEndpoints,
    ComponentKey,
    DeploymentView,
    GatewaySettings,
    Resources,
    Upstream,
)
from xds_controller.translate.plan import Direct, Graph, PredictorPlan, cluster_name, plan_predictor
from xds_controller.translate.translate import translate

__all__ = [
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
    "plan_predictor",
    "translate",
]
