"""A detector's cluster objects: a Deployment running the detector server and a Service in front of it.

Seldon runs its alibi-detect server as a Knative Service subscribed to the broker's request events; here it
is a plain Deployment and Service (no Knative needed), which a node's `logger.url` names directly
(`http://<name>.<namespace>`: the Service listens on port 80) or a Knative Trigger subscribes. The saved
detector is fetched by the storage initializer into `/mnt/detector` (an emptyDir), or mounted read-only
from a claim for `pvc://<claim>/<folder>`. The pods are scraped at Seldon's `/v1/metrics`.

A detector is not part of a SeldonDeployment (in Seldon neither), so it has no owner: its objects carry
our managed-by label and `seldon-mesh.io/detector`, and `kubectl delete` removes them. Pure.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from mesh.render.labels import CONTROLLER_LABEL, MANAGED_BY, Manifest
from mesh.render.names import shorten
from mesh.render.settings import RenderSettings

DETECTOR_LABEL = "seldon-mesh.io/detector"
DETECTOR_DIR = "/mnt/detector"
HTTP_PORT = 8080
SERVICE_PORT = 80
KINDS = ("OutlierDetector", "AdversarialDetector", "DriftDetector")
_SECURE = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class DetectorSpec:
    """One detector, in the words of Seldon's alibi-detect server's flags."""

    name: str
    namespace: str
    kind: str  # one of KINDS
    storage_uri: str  # gs://, s3://, https://, pvc://<claim>/<folder>, ...
    reply_url: str = ""
    event_type: str = ""
    event_source: str = ""
    protocol: str = ""  # seldon.http, tensorflow.http, kfserving.http; "" = the event's Ce-Protocol
    drift_batch_size: int | None = None
    model_name: str = ""  # defaults to `name`
    replicas: int = 1  # a drift batch lives in a pod's memory: each replica tests its own share
    env_secret_ref_name: str = ""  # the storage initializer's credentials (as a node's envSecretRefName)
    env: dict[str, str] = field(default_factory=dict)  # e.g. RETURN_INSTANCE_SCORE=true

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.drift_batch_size is not None and self.kind != "DriftDetector":
            raise ValueError("drift_batch_size is a DriftDetector's setting")
        if self.drift_batch_size is not None and self.drift_batch_size < 1:
            raise ValueError("drift_batch_size must be at least 1")


def render_detector(spec: DetectorSpec, settings: RenderSettings) -> list[Manifest]:
    return [_deployment(spec, settings), _service(spec, settings)]


def detector_url(spec: DetectorSpec) -> str:
    """What a node's `logger.url` says to send its events here."""
    return f"http://{shorten(spec.name)}.{spec.namespace}"


def _labels(spec: DetectorSpec, settings: RenderSettings) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": shorten(spec.name),
        "app.kubernetes.io/component": "detector",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        DETECTOR_LABEL: shorten(spec.name),
    }
    if settings.controller_id:
        labels[CONTROLLER_LABEL] = settings.controller_id
    return labels


def _meta(spec: DetectorSpec, settings: RenderSettings) -> dict[str, Any]:
    return {"name": shorten(spec.name), "namespace": spec.namespace, "labels": _labels(spec, settings)}


def _args(spec: DetectorSpec, model_dir: str) -> list[str]:
    args = ["--host", "0.0.0.0", "--http_port", str(HTTP_PORT), "--model_name", spec.model_name or spec.name]
    args += ["--storage_uri", model_dir]
    for flag, value in (
        ("--reply_url", spec.reply_url),
        ("--event_type", spec.event_type),
        ("--event_source", spec.event_source),
        ("--protocol", spec.protocol),
    ):
        if value:
            args += [flag, value]
    args.append(spec.kind)
    if spec.drift_batch_size is not None:
        args += ["--drift_batch_size", str(spec.drift_batch_size)]
    return args


def _model(spec: DetectorSpec, settings: RenderSettings) -> tuple[str, list[Manifest], list[Manifest]]:
    """Where the server reads the detector, with the pod's init containers and volumes for it."""
    volume = "detector"
    parsed = urlparse(spec.storage_uri)
    if parsed.scheme == "pvc":
        claim = {"name": volume, "persistentVolumeClaim": {"claimName": parsed.netloc, "readOnly": True}}
        folder = parsed.path.strip("/")
        return f"{DETECTOR_DIR}/{folder}" if folder else DETECTOR_DIR, [], [claim]
    init: Manifest = {
        "name": "detector-initializer",
        "image": settings.storage_initializer_image,
        "command": ["python", "-m", "model_runtime.storage_init"],
        "args": [spec.storage_uri, DETECTOR_DIR],
        "volumeMounts": [{"name": volume, "mountPath": DETECTOR_DIR}],
        "securityContext": copy.deepcopy(_SECURE),
    }
    if spec.env_secret_ref_name:
        init["envFrom"] = [{"secretRef": {"name": spec.env_secret_ref_name}}]
    return DETECTOR_DIR, [init], [{"name": volume, "emptyDir": {}}]


def _deployment(spec: DetectorSpec, settings: RenderSettings) -> Manifest:
    model_dir, init_containers, volumes = _model(spec, settings)
    container: Manifest = {
        "name": "detector",
        "image": settings.detector_image,
        "command": ["python", "-m", "detector_server"],
        "args": _args(spec, model_dir),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "volumeMounts": [{"name": "detector", "mountPath": DETECTOR_DIR, "readOnly": True}],
        "readinessProbe": {"httpGet": {"path": "/health/ready", "port": HTTP_PORT}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/health/live", "port": HTTP_PORT}, "periodSeconds": 10},
        # TensorFlow's import and a large detector's load take a while: up to 10 minutes before liveness
        "startupProbe": {
            "httpGet": {"path": "/health/live", "port": HTTP_PORT},
            "periodSeconds": 5,
            "failureThreshold": 120,
        },
        "securityContext": copy.deepcopy(_SECURE),
    }
    if spec.env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    pod: Manifest = {"containers": [container], "volumes": volumes}
    if init_containers:
        pod["initContainers"] = init_containers
    selector = {DETECTOR_LABEL: shorten(spec.name)}
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/path": "/v1/metrics",
        "prometheus.io/port": str(HTTP_PORT),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec, settings),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": _labels(spec, settings), "annotations": annotations},
                "spec": pod,
            },
        },
    }


def _service(spec: DetectorSpec, settings: RenderSettings) -> Manifest:
    port = {"name": "http", "port": SERVICE_PORT, "targetPort": HTTP_PORT, "protocol": "TCP"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, settings),
        "spec": {
            "type": "ClusterIP",
            "selector": {DETECTOR_LABEL: shorten(spec.name)},
            "ports": [{**port, "appProtocol": "http"}],
        },
    }
