"""`RenderSettings`: what a cluster decides and a SeldonDeployment does not (images, ingress, gateway).

One typed object, filled by the operator from its ConfigMap (the Helm chart's values) or by
`seldon-mesh render` from its flags, and passed to every render module. Names follow Seldon's chart where
the setting still means the same (`istio.gateway`, `predictor_servers`, `storageInitializer`).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Ingress(StrEnum):
    ISTIO = "istio"  # VirtualService + DestinationRule on an Istio gateway (Seldon's default)
    GATEWAY_API = "gateway-api"  # HTTPRoute + GRPCRoute, for clusters without Istio
    SELDON_MESH = "seldon-mesh"  # workloads only: our xds_controller programs the gateway over xDS


class ServerImages(BaseModel):
    """Images of one prepackaged server per protocol, as Seldon's `predictor_servers` value holds them.
    An empty field means seldon-mesh's own runtime image serves that protocol."""

    model_config = ConfigDict(frozen=True)

    seldon: str = ""
    v2: str = ""
    tensorflow: str = ""


def _default_servers() -> dict[str, ServerImages]:
    # Servers seldon-mesh's runtime does not implement run the upstream images Seldon's chart names.
    mlserver = "seldonio/mlserver:1.7.1"
    return {
        "TENSORFLOW_SERVER": ServerImages(tensorflow="tensorflow/serving:2.1.0"),
        "TRITON_SERVER": ServerImages(v2="nvcr.io/nvidia/tritonserver:21.08-py3"),
        "HUGGINGFACE_SERVER": ServerImages(v2=f"{mlserver}-huggingface"),
        "TEMPO_SERVER": ServerImages(v2=f"{mlserver}-slim"),
    }


class RenderSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    ingress: Ingress = Ingress.ISTIO
    # `namespace/name` of the Istio Gateway the VirtualServices bind to (Seldon's `istio.gateway`).
    istio_gateway: str = "istio-system/seldon-gateway"
    # Gateway API: the parent Gateway of the HTTPRoutes and GRPCRoutes.
    gateway_api_parent: str = "seldon-system/seldon-gateway"
    # Our images; the tag defaults to the chart's appVersion.
    runtime_image: str = "seldonio/seldon-mesh-runtime:0.1.0"
    extproc_image: str = "seldonio/seldon-mesh-extproc:0.1.0"
    storage_initializer_image: str = "seldonio/seldon-mesh-storage-initializer:0.1.0"
    # The detector server (`mesh.render.detectors`): alibi-detect with TensorFlow, numpy below 2.
    detector_image: str = "seldonio/seldon-mesh-detector:0.1.0"
    # The explainer server (`mesh.render.explainers`): alibi, numpy below 2, so an image of its own.
    explainer_image: str = "seldonio/seldon-mesh-explainer:0.1.0"
    # ... and with tensorflow below 2.15, for IntegratedGradients (a Keras model's gradients)
    explainer_tensorflow_image: str = "seldonio/seldon-mesh-explainer-tensorflow:0.1.0"
    # Upstream images for the prepackaged servers our runtime does not serve (Seldon's `predictor_servers`).
    predictor_servers: dict[str, ServerImages] = Field(default_factory=_default_servers)
    # The field manager and the label that mark objects as ours (`controllerId` scopes one operator).
    controller_id: str = ""
    # Where payload logs go for a logger with no `url` (Seldon's executor.requestLogger.defaultEndpoint).
    request_logger_endpoint: str = "http://default-broker"
    # The cluster's DNS suffix, for the addresses extproc calls nodes at and status shows.
    cluster_domain: str = "cluster.local"
