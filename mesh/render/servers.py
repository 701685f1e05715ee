"""What a prepackaged node runs in a cluster: seldon-mesh's runtime, or an upstream server image.

seldon-mesh's runtime serves the scikit-learn, XGBoost, MLflow, LightGBM and ONNX servers under both
protocols. The rest (TensorFlow Serving, Triton, Hugging Face and Tempo on MLServer), or any server the
cluster's `predictor_servers` setting names an image for under the deployment's protocol, run that image
with the flags and environment it reads, as Seldon's `predictor_servers` does. Each upstream server keeps
the model in `/mnt/models` and listens on the node's HTTP and gRPC ports.

HUGGINGFACE_SERVER: `seldon-mesh up` runs it in our runtime (`model_runtime.runtimes.huggingface`), which
answers the V2 protocol as MLServer's Hugging Face runtime does (same parameters, content types and
`hg_jsonlist` output), so the cluster's default, MLServer's image with the node's parameters as
`MLSERVER_MODEL_EXTRA` and the model at `/mnt/models`, answers the same requests in the same shapes.
Our runtime image leaves the `huggingface` extra out (PyPI's torch is a CUDA build of several GB).

TENSORFLOW_SERVER: under `protocol: tensorflow` TF Serving's image answers, as in Seldon; under `seldon`
our runtime serves the SavedModel and translates Seldon messages as Seldon's tfserving proxy does
(`model_runtime.runtimes.tensorflow`). It runs TensorFlow in an environment of its own, which the first
load builds from PyPI unless `SELDON_MESH_TENSORFLOW_PYTHON` names one in the image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mesh.render.settings import RenderSettings
from mesh.spec import FieldError, PredictiveUnit, SeldonDeployment, SpecError, canonical_protocol
from mesh.spec.ports import ContainerPorts

MODEL_DIR = "/mnt/models"
# What the seldon-mesh runtime image serves itself (model_runtime/runtimes), under seldon and v2 (and
# TENSORFLOW_SERVER under seldon, translating as Seldon's tfserving proxy does; under `tensorflow` the
# TF Serving image answers, as in Seldon).
RUNTIME_SERVERS = frozenset(
    {
        "SKLEARN_SERVER",
        "XGBOOST_SERVER",
        "MLFLOW_SERVER",
        "LIGHTGBM_SERVER",
        "ONNX_SERVER",
        "TENSORFLOW_SERVER",
    }
)
# MLServer's runtime class per prepackaged server, for MLServer-based v2 images.
_MLSERVER_IMPLEMENTATIONS = {
    "SKLEARN_SERVER": "mlserver_sklearn.SKLearnModel",
    "XGBOOST_SERVER": "mlserver_xgboost.XGBoostModel",
    "MLFLOW_SERVER": "mlserver_mlflow.MLflowRuntime",
    "LIGHTGBM_SERVER": "mlserver_lightgbm.LightGBMModel",
    "HUGGINGFACE_SERVER": "mlserver_huggingface.HuggingFaceRuntime",
    "TEMPO_SERVER": "tempo.mlserver.InferenceRuntime",
}


class Probe(StrEnum):
    """How the pod asks a server whether it is ready."""

    RUNTIME = "runtime"  # seldon-mesh's runtime: GET /ready (503 until the model is loaded)
    V2 = "v2"  # GET /v2/health/ready (MLServer, Triton)
    TCP = "tcp"  # the HTTP port accepts connections (TensorFlow Serving, Seldon v1 images, users')


@dataclass(frozen=True)
class ServerRun:
    """The image a prepackaged node runs, the command line and environment that image reads."""

    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    probe: Probe = Probe.TCP
    ours: bool = False  # seldon-mesh's runtime image (non-root, with its preStop drain)


def upstream_image(deployment: SeldonDeployment, node: PredictiveUnit, settings: RenderSettings) -> str:
    """The `predictor_servers` image for the node's server under the deployment's protocol, or ""."""
    images = settings.predictor_servers.get(node.implementation)
    if images is None:
        return ""
    protocol = canonical_protocol(deployment.spec.protocol)
    chosen: str = {"seldon": images.seldon, "v2": images.v2, "tensorflow": images.tensorflow}.get(
        protocol, ""
    )
    return chosen


def server_run(
    deployment: SeldonDeployment,
    node: PredictiveUnit,
    ports: ContainerPorts,
    model_uri: str,
    settings: RenderSettings,
    path: str,
) -> ServerRun:
    """How the prepackaged `node` (at field `path`) runs; `model_uri` is where its model is in the pod."""
    image = upstream_image(deployment, node, settings)
    if not image:
        if node.implementation not in RUNTIME_SERVERS:
            raise SpecError(
                [
                    FieldError(
                        f"{path}.implementation",
                        f"{node.implementation} needs an image: the cluster's predictor_servers setting "
                        f"names none for protocol {deployment.spec.protocol!r}",
                    )
                ]
            )
        return _runtime(node, ports, model_uri, settings)
    if _is_ours(image, settings):
        return _runtime(node, ports, model_uri, settings, image)
    if node.implementation == "TENSORFLOW_SERVER":
        return _tfserving(image, node, ports, model_uri)
    if node.implementation == "TRITON_SERVER":
        return _triton(image, ports, model_uri)
    if canonical_protocol(deployment.spec.protocol) == "v2":
        return _mlserver(image, node, ports, model_uri)
    return _seldon_v1_server(image, node, model_uri)


def _is_ours(image: str, settings: RenderSettings) -> bool:
    """Whether a `predictor_servers` image is a variant of our runtime image, from any registry: the same
    image name, or that name with a suffix, as `seldon-mesh-runtime-huggingface` is. It runs our command."""
    ours, theirs = _image_name(settings.runtime_image), _image_name(image)
    return theirs == ours or theirs.startswith(ours + "-")


def _image_name(image: str) -> str:
    """The last path component of `image`, without its tag or digest."""
    return image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]


def _runtime(
    node: PredictiveUnit,
    ports: ContainerPorts,
    model_uri: str,
    settings: RenderSettings,
    image: str = "",
) -> ServerRun:
    args = ["--implementation", node.implementation, *runtime_ports(ports)]
    if model_uri:
        args += ["--model-uri", model_uri]
    return ServerRun(
        image or settings.runtime_image,
        ("seldon-mesh-runtime",),
        tuple(args),
        probe=Probe.RUNTIME,
        ours=True,
    )


def runtime_ports(ports: ContainerPorts) -> list[str]:
    """The runtime's listening flags in a pod: every interface, on the node's ports."""
    return [
        "--host", "0.0.0.0",
        "--http-port", str(ports.http),
        "--grpc-port", str(ports.grpc),
        "--metrics-port", str(ports.metrics),
    ]  # fmt: skip


def _tfserving(image: str, node: PredictiveUnit, ports: ContainerPorts, model_uri: str) -> ServerRun:
    args = (
        f"--port={ports.grpc}",
        f"--rest_api_port={ports.http}",
        f"--model_name={node.name}",
        f"--model_base_path={model_uri or MODEL_DIR}",
    )
    return ServerRun(image, ("/usr/bin/tensorflow_model_server",), args)


def _triton(image: str, ports: ContainerPorts, model_uri: str) -> ServerRun:
    args = (
        f"--model-repository={model_uri or MODEL_DIR}",
        f"--http-port={ports.http}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-port={ports.metrics}",
        "--strict-readiness=true",
    )
    return ServerRun(image, ("/opt/tritonserver/bin/tritonserver",), args, probe=Probe.V2)


def _mlserver(image: str, node: PredictiveUnit, ports: ContainerPorts, model_uri: str) -> ServerRun:
    env = {
        "MLSERVER_HTTP_PORT": str(ports.http),
        "MLSERVER_GRPC_PORT": str(ports.grpc),
        "MLSERVER_METRICS_PORT": str(ports.metrics),
        "MLSERVER_MODEL_NAME": node.name,
        "MLSERVER_MODEL_URI": model_uri or MODEL_DIR,
    }
    implementation = _MLSERVER_IMPLEMENTATIONS.get(node.implementation)
    if implementation:
        env["MLSERVER_MODEL_IMPLEMENTATION"] = implementation
    extra = _mlserver_parameters(node)
    if extra:
        env["MLSERVER_MODEL_EXTRA"] = json.dumps(extra, sort_keys=True)
    return ServerRun(image, ("mlserver",), ("start", MODEL_DIR), env, probe=Probe.V2)


def _mlserver_parameters(node: PredictiveUnit) -> dict[str, Any]:
    return {p.name: p.typed_value() for p in node.parameters}


def _seldon_v1_server(image: str, node: PredictiveUnit, model_uri: str) -> ServerRun:
    """A Seldon v1 prepackaged server image: a Python wrapper reading its model from `model_uri`."""
    params = [{"name": p.name, "value": p.value, "type": p.type} for p in node.parameters]
    params.append({"name": "model_uri", "value": model_uri or MODEL_DIR, "type": "STRING"})
    return ServerRun(image, env={"PREDICTIVE_UNIT_PARAMETERS": json.dumps(params)})
