"""The graph executor of a predictor that needs one: a Deployment running extproc, and its graph config.

extproc serves the predictor's REST on 8000 and its gRPC (Seldon and V2) on 5001, which the predictor
Service exposes, and calls each node at its component Service. Its config (the same schema-1 document the
local mesh writes, built by `mesh.spec.extproc_config`, holding this one deployment and predictor) is a
ConfigMap mounted as a folder: the kubelet swaps the file in place when the graph changes and extproc
reloads it, so a graph change restarts nothing. Bandit state and the payload spool live on an emptyDir,
which survives a container restart.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from mesh.render import names
from mesh.render.containers import PRESTOP_SLEEP_S
from mesh.render.labels import Manifest, object_meta, selector_labels, workload_labels
from mesh.render.settings import RenderSettings
from mesh.spec import PredictiveUnit, PredictorSpec, SeldonDeployment
from mesh.spec.extproc_config import NodeAddress, graph_config
from mesh.spec.ports import assign_ports

HTTP_PORT = 8000
GRPC_PORT = 5001
METRICS_PORT = 6000
CONFIG_DIR = "/etc/seldon-mesh"
CONFIG_FILE = "graph.json"
STATE_DIR = "/var/lib/seldon-mesh"
_ROLLING_UPDATE = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}
_SECURE = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def render_extproc(
    deployment: SeldonDeployment, predictor: PredictorSpec, settings: RenderSettings
) -> list[Manifest]:
    name = names.extproc_name(deployment, predictor)
    config = names.graph_config(deployment, predictor)
    document = extproc_config(deployment, predictor, settings)
    config_map: Manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(deployment, settings, config),
        "data": {CONFIG_FILE: json.dumps(document, indent=1, sort_keys=True) + "\n"},
    }
    service = names.predictor_service(deployment, predictor)
    labels = workload_labels(deployment, settings, predictor, name, service)
    container: dict[str, Any] = {
        "name": "extproc",
        "image": settings.extproc_image,
        "command": ["python", "-m", "extproc"],
        "args": [
            *("--host", "0.0.0.0", "--port", str(GRPC_PORT), "--http-port", str(HTTP_PORT)),
            *("--metrics-port", str(METRICS_PORT), "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"),
            *("--state-dir", STATE_DIR),
        ],
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"grpc": {"port": GRPC_PORT}, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {"grpc": {"port": GRPC_PORT}, "periodSeconds": 10, "failureThreshold": 3},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SLEEP_S)]}}},
        "volumeMounts": [
            {"name": "graph", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": copy.deepcopy(_SECURE),
    }
    if settings.request_logger_endpoint:
        container["env"] = [
            {"name": "REQUEST_LOGGER_DEFAULT_ENDPOINT", "value": settings.request_logger_endpoint}
        ]
    if predictor.engine_resources:
        container["resources"] = predictor.engine_resources
    pod = {
        "containers": [container],
        "volumes": [
            {"name": "graph", "configMap": {"name": config}},
            {"name": "state", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    template = {
        "metadata": {
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/path": "/prometheus",
                "prometheus.io/port": str(METRICS_PORT),
            },
        },
        "spec": pod,
    }
    replicas = next((r for r in (predictor.replicas, deployment.spec.replicas) if r is not None), 1)
    workload: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(deployment, settings, name, labels=dict(labels)),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(deployment, name)},
            "strategy": copy.deepcopy(_ROLLING_UPDATE),
            "template": template,
        },
    }
    return [config_map, workload]


def extproc_config(
    deployment: SeldonDeployment, predictor: PredictorSpec, settings: RenderSettings
) -> dict[str, Any]:
    """The schema-1 graph config of this predictor alone, each node at its component Service."""
    alone = deployment.model_copy(
        update={"spec": deployment.spec.model_copy(update={"predictors": (predictor,)})}
    )
    ports = assign_ports(predictor.component_specs, predictor.nodes())
    domain = f"{deployment.metadata.namespace}.svc.{settings.cluster_domain}"

    def address(_: SeldonDeployment, owner: PredictorSpec, node: PredictiveUnit) -> NodeAddress:
        external = node.endpoint if node.endpoint is not None and node.endpoint.service_host else None
        if external is not None and predictor.container_for(node.name) is None and not node.is_prepackaged:
            host = external.service_host
            http = external.http_port or (external.service_port if external.type != "GRPC" else None)
            grpc = external.grpc_port or (external.service_port if external.type == "GRPC" else None)
            return NodeAddress(f"{host}:{http}" if http else None, f"{host}:{grpc}" if grpc else None)
        node_ports = ports.get(node.name)
        if node_ports is None:  # a built-in node: extproc serves it
            return NodeAddress()
        host = f"{names.component_service(deployment, owner, node.name)}.{domain}"
        return NodeAddress(f"{host}:{node_ports.http}", f"{host}:{node_ports.grpc}")

    return graph_config([alone], address)
