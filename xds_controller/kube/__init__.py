"""The seldon-mesh gateway in a Kubernetes cluster: `xds_controller` fed by the API server.

`python -m xds_controller.kube` watches SeldonDeployments and EndpointSlices (`source`), keeps the valid
deployments as Service-routed views and their Services' ready endpoints (`state`, `views`, `endpoints`),
and publishes snapshots built by the same `SnapshotBuilder`/`translate` code the local mesh uses to the
gateway Envoy over ADS (`controller`). Imports `mesh.spec` only, as all of `xds_controller`.
"""

from xds_controller.kube.controller import NODE_ID, ControllerSettings, GatewayController
from xds_controller.kube.source import Kind, KubeSource, Source
from xds_controller.kube.state import ClusterState
from xds_controller.kube.views import SERVICE_NODE, ServiceDeployment, predictor_service, service_view

__all__ = [
    "NODE_ID",
    "SERVICE_NODE",
    "ClusterState",
    "ControllerSettings",
    "GatewayController",
    "Kind",
    "KubeSource",
    "ServiceDeployment",
    "Source",
    "predictor_service",
    "service_view",
]
