"""A predictor's explainer in the cluster: its Deployment, Service and route, as Seldon renders them.

Seldon gives each predictor with an `explainer:` a Deployment and a Service named
`<sdep>-<predictor>-explainer` (port 9000) running its alibi explain server, and routes
`/seldon/<ns>/<sdep>-explainer/<predictor>/` to it.
Here the server is `explainer_server` in its own image (`RenderSettings.explainer_image`: alibi pins numpy
below 2), asking the predictor's Service for predictions (`--predictor-url`, through the pod's sidecar:
the mesh). A saved explainer (`modelUri`) is fetched by the storage initializer into `/mnt/models` (an
emptyDir) or mounted from `pvc://<claim>/<folder>`; `initParameters` and `config` are passed as JSON.
`containerSpec` is merged into the container (its image, resources, env...), `replicas`,
`serviceAccountName` and `envSecretRefName` are honoured. The route: one more VirtualService
(`<sdep>-explainer`, on the deployment's Istio gateway) or HTTPRoute, per deployment with explainers, each
predictor's prefix rewritten to `/`, the deployment's REST timeout, `Seldon-Predictor` on the answer. Pure.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlparse

from mesh.render import gateway_api, istio
from mesh.render.labels import COMPONENT_LABEL, Manifest, label_value, object_meta, selector_labels
from mesh.render.names import shorten
from mesh.render.routing import PREDICTOR_HEADER, service_host
from mesh.render.settings import RenderSettings
from mesh.spec import PredictorSpec, SeldonDeployment
from mesh.spec import annotations as annotation_names
from mesh.spec.traffic import policy_of

PORT = 9000  # Seldon's explainer port
MODEL_DIR = "/mnt/models"
PREDICTOR_PORT = 8000  # the predictor Service's REST port (mesh.render.routing)
_SECURE = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def explainer_name(deployment: SeldonDeployment, predictor: PredictorSpec) -> str:
    return shorten(f"{deployment.metadata.name}-{predictor.name}-explainer")


def explained(deployment: SeldonDeployment) -> list[PredictorSpec]:
    return [p for p in deployment.spec.predictors if p.explainer]


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _args(
    deployment: SeldonDeployment, predictor: PredictorSpec, settings: RenderSettings, model: str
) -> list[str]:
    explainer = predictor.explainer or {}
    meta = deployment.metadata
    protocol = "v2" if str(deployment.spec.protocol) in ("v2", "kfserving") else "seldon"
    predictor_url = f"http://{service_host(deployment, predictor, settings)}:{PREDICTOR_PORT}"
    args = [
        "--type", str(explainer.get("type", "")),
        "--namespace", meta.namespace,
        "--deployment", meta.name,
        "--predictor", predictor.name,
        "--model-name", predictor.graph.name,
        "--protocol", protocol,
        "--predictor-url", predictor_url,
        "--host", "0.0.0.0",
        "--http-port", str(PORT),
    ]  # fmt: skip
    if model:
        args += ["--model-uri", model]
    for key, flag in (("initParameters", "--init-parameters"), ("config", "--config")):
        if explainer.get(key):
            args += [flag, _json(explainer[key])]
    return args


def _model(
    predictor: PredictorSpec, settings: RenderSettings
) -> tuple[str, list[Manifest], list[Manifest], list[Manifest]]:
    """Where the server reads the saved explainer, and the pod's init containers, volumes and mounts."""
    explainer = predictor.explainer or {}
    uri = str(explainer.get("modelUri") or "")
    if not uri:
        return "", [], [], []
    volume = "explainer-provision-location"
    parsed = urlparse(uri)
    if parsed.scheme == "pvc":
        claim = {"name": volume, "persistentVolumeClaim": {"claimName": parsed.netloc, "readOnly": True}}
        mount: Manifest = {"name": volume, "mountPath": MODEL_DIR, "readOnly": True}
        if parsed.path.strip("/"):
            mount["subPath"] = parsed.path.strip("/")
        return MODEL_DIR, [], [claim], [mount]
    init: Manifest = {
        "name": "explainer-model-initializer",
        "image": str(explainer.get("storageInitializerImage") or settings.storage_initializer_image),
        "command": ["python", "-m", "model_runtime.storage_init"],
        "args": [uri, MODEL_DIR],
        "volumeMounts": [{"name": volume, "mountPath": MODEL_DIR}],
        "securityContext": copy.deepcopy(_SECURE),
    }
    if explainer.get("envSecretRefName"):
        init["envFrom"] = [{"secretRef": {"name": str(explainer["envSecretRefName"])}}]
    mounts = [{"name": volume, "mountPath": MODEL_DIR, "readOnly": True}]
    return MODEL_DIR, [init], [{"name": volume, "emptyDir": {}}], mounts


def _container(
    deployment: SeldonDeployment,
    predictor: PredictorSpec,
    settings: RenderSettings,
    model: str,
    mounts: list[Manifest],
) -> Manifest:
    container: Manifest = {
        "name": "explainer",
        "image": (
            settings.explainer_tensorflow_image
            if (predictor.explainer or {}).get("type") == "IntegratedGradients"
            else settings.explainer_image
        ),
        "command": ["python", "-m", "explainer_server"],
        "args": _args(deployment, predictor, settings, model),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": PORT}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/live", "port": PORT}, "periodSeconds": 10},
        # importing alibi (and loading a large explainer) takes a while: up to 10 minutes before liveness
        "startupProbe": {
            "httpGet": {"path": "/live", "port": PORT},
            "periodSeconds": 5,
            "failureThreshold": 120,
        },
        "securityContext": copy.deepcopy(_SECURE),
    }
    if mounts:
        container["volumeMounts"] = mounts
    spec = (predictor.explainer or {}).get("containerSpec")
    if isinstance(spec, dict):  # the user's fields win, lists are added to ours
        for key, value in spec.items():
            if key in ("name", "ports"):
                continue
            if isinstance(value, list) and isinstance(container.get(key), list):
                container[key] = [*container[key], *copy.deepcopy(value)]
            else:
                container[key] = copy.deepcopy(value)
    return container


def _deployment(deployment: SeldonDeployment, predictor: PredictorSpec, settings: RenderSettings) -> Manifest:
    name = explainer_name(deployment, predictor)
    model, init, volumes, mounts = _model(predictor, settings)
    pod: Manifest = {"containers": [_container(deployment, predictor, settings, model, mounts)]}
    if init:
        pod["initContainers"] = init
    if volumes:
        pod["volumes"] = volumes
    explainer = predictor.explainer or {}
    if explainer.get("serviceAccountName"):
        pod["serviceAccountName"] = str(explainer["serviceAccountName"])
    selector = selector_labels(deployment, name)
    labels = {"app": name, "seldon-app": name, "seldon.io/explainer": label_value(predictor.name), **selector}
    replicas = explainer.get("replicas")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(deployment, settings, name, labels={COMPONENT_LABEL: name}),
        "spec": {
            "replicas": replicas if isinstance(replicas, int) else 1,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": {
                "metadata": {
                    "labels": {**object_meta(deployment, settings, name)["labels"], **labels},
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/path": "/prometheus",
                                    "prometheus.io/port": str(PORT)},
                },
                "spec": pod,
            },
        },
    }  # fmt: skip


def _service(deployment: SeldonDeployment, predictor: PredictorSpec, settings: RenderSettings) -> Manifest:
    name = explainer_name(deployment, predictor)
    port = {"name": "http", "port": PORT, "targetPort": PORT, "protocol": "TCP", "appProtocol": "http"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(deployment, settings, name),
        "spec": {"type": "ClusterIP", "selector": selector_labels(deployment, name), "ports": [port]},
    }


def render_explainers(deployment: SeldonDeployment, settings: RenderSettings) -> list[Manifest]:
    manifests: list[Manifest] = []
    for predictor in explained(deployment):
        manifests += [_deployment(deployment, predictor, settings), _service(deployment, predictor, settings)]
    return manifests


def _prefix(deployment: SeldonDeployment, predictor: PredictorSpec) -> str:
    meta = deployment.metadata
    return f"/seldon/{meta.namespace}/{meta.name}-explainer/{predictor.name}/"


def _host(deployment: SeldonDeployment, predictor: PredictorSpec, settings: RenderSettings) -> str:
    namespace = deployment.metadata.namespace
    return f"{explainer_name(deployment, predictor)}.{namespace}.svc.{settings.cluster_domain}"


def _timeout_ms(deployment: SeldonDeployment) -> int | None:
    return policy_of(deployment.annotations).rest_timeout_ms


def istio_virtual_service(deployment: SeldonDeployment, settings: RenderSettings) -> list[Manifest]:
    """`<sdep>-explainer`: each predictor's explainer path to its Service (none without explainers)."""
    predictors = explained(deployment)
    if not predictors:
        return []
    routes = []
    for predictor in predictors:
        route: Manifest = {
            "name": f"{deployment.metadata.namespace}.{deployment.metadata.name}.explainer.{predictor.name}",
            "match": [{"uri": {"prefix": _prefix(deployment, predictor)}}],
            "rewrite": {"uri": "/"},
            "route": [
                {"destination": {"host": _host(deployment, predictor, settings), "port": {"number": PORT}}}
            ],
            "headers": {"response": {"set": {PREDICTOR_HEADER: predictor.name}}},
            "retries": {"attempts": 0},  # an explanation is many predictions: never run it twice
        }
        timeout = _timeout_ms(deployment)
        if timeout is not None:
            route["timeout"] = istio.duration(timeout)
        routes.append(route)
    gateway = deployment.annotations.get(annotation_names.ISTIO_GATEWAY) or settings.istio_gateway
    return [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": object_meta(deployment, settings, shorten(f"{deployment.metadata.name}-explainer")),
            "spec": {"hosts": ["*"], "gateways": [gateway], "http": routes},
        }
    ]


def gateway_api_route(
    deployment: SeldonDeployment, settings: RenderSettings, parent: Manifest
) -> list[Manifest]:
    """`<sdep>-explainer` HTTPRoute on `parent` (the deployment's Gateway), a rule per explainer."""
    predictors = explained(deployment)
    if not predictors:
        return []
    rules = []
    for predictor in predictors:
        rule: Manifest = {
            "name": f"explainer-{shorten(predictor.name)}"[:63],
            "matches": [
                {"path": {"type": "PathPrefix", "value": _prefix(deployment, predictor).rstrip("/")}}
            ],
            "filters": [
                {
                    "type": "URLRewrite",
                    "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
                },
                {
                    "type": "ResponseHeaderModifier",
                    "responseHeaderModifier": {"set": [{"name": PREDICTOR_HEADER, "value": predictor.name}]},
                },
            ],
            "backendRefs": [{"name": explainer_name(deployment, predictor), "port": PORT}],
        }
        timeout = _timeout_ms(deployment)
        if timeout is not None:
            rule["timeouts"] = {"request": gateway_api.duration(timeout)}
        rules.append(rule)
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": object_meta(deployment, settings, shorten(f"{deployment.metadata.name}-explainer")),
            "spec": {"parentRefs": [parent], "rules": rules},
        }
    ]
