"""The containers of a component's pod: one per graph node, each with its model, ports, env and probes.

A prepackaged node runs seldon-mesh's runtime (or the upstream server `servers.server_run` picks); a
node whose container names a Python class and has no image runs the runtime with `--class`; a user's
container keeps its image, command and every field it sets, and gets the Seldon microservice
environment (`PREDICTIVE_UNIT_*`, `PREDICTOR_ID`, `SELDON_DEPLOYMENT_ID`, ...) and the ports it expects.
A node with a `modelUri` has it in `/mnt/models`: fetched by the storage initializer into an emptyDir,
mounted from a PVC for `pvc://`, or left to the runtime with `seldon.io/no-storage-initializer`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from mesh.render.components import Component, NodeContainer, gateway_facing
from mesh.render.names import shorten as shorten_label
from mesh.render.servers import MODEL_DIR, Probe, ServerRun, runtime_ports, server_run
from mesh.render.settings import RenderSettings
from mesh.spec import Container, SeldonDeployment, annotation_is_set
from mesh.spec import annotations as names
from mesh.spec.traffic import policy_of
from mesh.spec.wrapper import python_class, service_type

Json = dict[str, Any]
METRICS_PATH = "/prometheus"
# Seconds a stopping pod keeps serving after it is told to stop, so every Envoy (Istio's, the gateway's)
# has taken it out of its endpoints first; then SIGTERM, and the runtime finishes what is in flight.
PRESTOP_SLEEP_S = 5
SPOOL_DIR = "/var/lib/seldon-mesh/spool"  # a logged runtime's payload spool (an emptyDir)
_SECURE = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass
class PodParts:
    """What the node containers add to the pod besides themselves."""

    init_containers: list[Json] = field(default_factory=list)
    volumes: list[Json] = field(default_factory=list)


def node_containers(
    deployment: SeldonDeployment, component: Component, settings: RenderSettings, path: str
) -> tuple[list[Json], PodParts]:
    """The component's containers in order (graph nodes, then its other containers as given)."""
    parts = PodParts()
    containers: list[Json] = []
    for index, node in enumerate(component.nodes):
        containers.append(_node_container(deployment, component, node, index, settings, path, parts))
    containers += [_as_json(c) for c in component.sidecars]
    return containers, parts


def _node_container(
    deployment: SeldonDeployment,
    component: Component,
    node: NodeContainer,
    index: int,
    settings: RenderSettings,
    path: str,
    parts: PodParts,
) -> Json:
    unit, predictor, ports = node.node, component.predictor, node.ports
    node_path = f"{path}.graph" + _graph_path(predictor.graph, unit.name)
    model_uri, model_mount = _model(deployment, component, node, settings, parts)
    base: Json = _as_json(node.container) if node.container is not None else {"name": unit.name}
    run: ServerRun | None = None
    if unit.is_prepackaged:
        run = server_run(deployment, unit, ports, model_uri, settings, node_path)
    elif node.container is not None and not node.container.image and python_class(node.container):
        run = _class_run(node.container, node, model_uri, settings)
    if run is not None:
        base.setdefault("image", run.image)
        if base["image"] == run.image:  # our runtime or the upstream server: its own command line
            base["command"], base["args"] = list(run.command), list(run.args)
            if run.ours:
                _runtime_flags(base, deployment, component, node, settings, parts)
    image = str(base.get("image", ""))
    env = _seldon_env(deployment, component, node, image, run)
    base["env"] = _merged_env(base.get("env", []), env)
    base["ports"] = _ports(base.get("ports", []), ports, index)
    if model_mount is not None:
        mounts = [m for m in base.get("volumeMounts", []) if m.get("mountPath") != model_mount["mountPath"]]
        base["volumeMounts"] = [*mounts, model_mount]
    probe = run.probe if run is not None else Probe.TCP
    base.setdefault("readinessProbe", _readiness(probe, ports.http))
    base.setdefault("livenessProbe", _liveness(probe, ports.http))
    if run is not None and run.ours:
        base.setdefault("startupProbe", _startup(ports.http))
        base.setdefault("lifecycle", {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SLEEP_S)]}}})
        base.setdefault("securityContext", copy.deepcopy(_SECURE))
    return base


def _class_run(
    container: Container, node: NodeContainer, model_uri: str, settings: RenderSettings
) -> ServerRun:
    class_name = python_class(container) or ""
    args = ["--class", class_name, *runtime_ports(node.ports)]
    if container.working_dir:
        args += ["--code-dir", container.working_dir]
    if model_uri:
        args += ["--model-uri", model_uri]
    return ServerRun(
        settings.runtime_image, ("seldon-mesh-runtime",), tuple(args), probe=Probe.RUNTIME, ours=True
    )


def _runtime_flags(
    base: Json,
    deployment: SeldonDeployment,
    component: Component,
    node: NodeContainer,
    settings: RenderSettings,
    parts: PodParts,
) -> None:
    flags = ["--name", node.name, "--service-type", service_type(node.node, node.container)]
    # The deployment's one request (and answer) limit, REST and gRPC alike, as `seldon-mesh up` runs it.
    limit = str(policy_of(deployment.annotations).request_limit_bytes)
    flags += ["--max-request-bytes", limit, "--grpc-max-message-bytes", limit]
    if gateway_facing(deployment, component.predictor, node):
        flags.append("--gateway-facing")
        logger = node.node.logger
        if logger is not None and not _logs_over_stream(deployment):
            # A single model is logged by its runtime, in process, through a spool on an emptyDir (it
            # survives a container restart, and the restarted runtime delivers what is left).
            flags += ["--logger-mode", str(logger.mode), "--logger-spool-dir", SPOOL_DIR]
            if logger.url:
                flags += ["--logger-url", logger.url]
            elif settings.request_logger_endpoint:
                base.setdefault("env", []).append(
                    {"name": "REQUEST_LOGGER_DEFAULT_ENDPOINT", "value": settings.request_logger_endpoint}
                )
            volume = shorten_label(f"{node.name}-payload-spool")
            parts.volumes.append({"name": volume, "emptyDir": {}})
            base["volumeMounts"] = [*base.get("volumeMounts", []), {"name": volume, "mountPath": SPOOL_DIR}]
    base["args"] = [*base["args"], *flags]


def _logs_over_stream(deployment: SeldonDeployment) -> bool:
    """`seldon.io/payload-log-stream: "true"`: logged over the gateway's ext_proc stream, not in process."""
    value = deployment.annotations.get(names.PAYLOAD_LOG_STREAM, "")
    return value.strip().lower() in ("true", "1", "yes")


def _seldon_env(
    deployment: SeldonDeployment,
    component: Component,
    node: NodeContainer,
    image: str,
    run: ServerRun | None,
) -> dict[str, str]:
    """The environment a Seldon microservice reads (the runtime reads the same names)."""
    unit, predictor, ports = node.node, component.predictor, node.ports
    env = {
        "PREDICTIVE_UNIT_SERVICE_PORT": str(ports.http),
        "PREDICTIVE_UNIT_HTTP_SERVICE_PORT": str(ports.http),
        "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": str(ports.grpc),
        "PREDICTIVE_UNIT_METRICS_SERVICE_PORT": str(ports.metrics),
        "PREDICTIVE_UNIT_METRICS_ENDPOINT": METRICS_PATH,
        "PREDICTIVE_UNIT_ID": unit.name,
        "PREDICTIVE_UNIT_IMAGE": image or unit.implementation,
        "PREDICTOR_ID": predictor.name,
        "PREDICTOR_VERSION": predictor.version,
        "PREDICTOR_LABELS": json.dumps(predictor.labels, sort_keys=True),
        "SELDON_DEPLOYMENT_ID": deployment.metadata.name,
        "SELDON_NAMESPACE": deployment.metadata.namespace,
    }
    if unit.parameters:
        params = [{"name": p.name, "value": p.value, "type": p.type} for p in unit.parameters]
        env["PREDICTIVE_UNIT_PARAMETERS"] = json.dumps(params)
    if run is not None:
        env.update(run.env)
    return env


def _merged_env(given: list[Json], ours: dict[str, str]) -> list[Json]:
    """The container's own variables first and unchanged; ours added where it sets none of that name."""
    set_names = {e["name"] for e in given}
    return [*given, *({"name": k, "value": v} for k, v in ours.items() if k not in set_names)]


def _ports(given: list[Json], ports: Any, index: int) -> list[Json]:
    """The container's declared ports, plus http/grpc/metrics where it declares none of that number.
    Port names are unique in a pod: the second node container's are `http-1`, `grpc-1`, ..."""
    declared = {p.get("containerPort") for p in given}
    taken = {p.get("name") for p in given}
    suffix = "" if index == 0 else f"-{index}"
    out = list(given)
    for name, number in (("http", ports.http), ("grpc", ports.grpc), ("metrics", ports.metrics)):
        if number in declared:
            continue
        port_name = name + suffix if name + suffix not in taken else None
        entry: Json = {"containerPort": number, "protocol": "TCP"}
        if port_name:
            entry = {"name": port_name, **entry}
        out.append(entry)
    return out


def _readiness(probe: Probe, port: int) -> Json:
    if probe is Probe.RUNTIME:
        return {"httpGet": {"path": "/ready", "port": port}, "periodSeconds": 5, "failureThreshold": 2}
    if probe is Probe.V2:
        return {
            "httpGet": {"path": "/v2/health/ready", "port": port},
            "periodSeconds": 5,
            "failureThreshold": 3,
        }
    return {"tcpSocket": {"port": port}, "initialDelaySeconds": 20, "periodSeconds": 5, "failureThreshold": 3}


def _liveness(probe: Probe, port: int) -> Json:
    if probe is Probe.RUNTIME:
        return {"httpGet": {"path": "/health/ping", "port": port}, "periodSeconds": 10, "failureThreshold": 3}
    if probe is Probe.V2:
        return {
            "httpGet": {"path": "/v2/health/live", "port": port},
            "periodSeconds": 10,
            "failureThreshold": 3,
        }
    return {
        "tcpSocket": {"port": port},
        "initialDelaySeconds": 60,
        "periodSeconds": 10,
        "failureThreshold": 3,
    }


def _startup(port: int) -> Json:
    """Liveness waits for the HTTP server: a large model may take minutes to load (up to 10 here)."""
    return {"httpGet": {"path": "/health/ping", "port": port}, "periodSeconds": 5, "failureThreshold": 120}


# -- the model in /mnt/models ---------------------------------------------------------------------------


def _model(
    deployment: SeldonDeployment,
    component: Component,
    node: NodeContainer,
    settings: RenderSettings,
    parts: PodParts,
) -> tuple[str, Json | None]:
    """Where the node's server finds its model ("" when it has none) and the volumeMount that puts it
    there, adding the pod's volume and init container."""
    uri = node.node.model_uri
    if not uri:
        return "", None
    volume = _model_volume(node.name)
    parsed = urlparse(uri)
    if parsed.scheme == "pvc":  # pvc://<claim>/<folder>: the claim mounted read-only, no download
        parts.volumes.append(
            {"name": volume, "persistentVolumeClaim": {"claimName": parsed.netloc, "readOnly": True}}
        )
        folder = parsed.path.strip("/")
        mount: Json = {"name": volume, "mountPath": MODEL_DIR, "readOnly": True}
        if folder:
            mount["subPath"] = folder
        return MODEL_DIR, mount
    annotations = {**deployment.annotations, **component.predictor.annotations}
    if annotation_is_set(annotations, names.NO_STORAGE_INITIALIZER):
        return uri, None  # the server fetches it itself
    parts.volumes.append({"name": volume, "emptyDir": {}})
    init: Json = {
        "name": shorten_label(f"{node.name}-model-initializer"),
        "image": node.node.storage_initializer_image or settings.storage_initializer_image,
        "command": ["python", "-m", "model_runtime.storage_init"],
        "args": [uri, MODEL_DIR],
        "volumeMounts": [{"name": volume, "mountPath": MODEL_DIR}],
        "securityContext": copy.deepcopy(_SECURE),
    }
    if node.node.env_secret_ref_name:
        init["envFrom"] = [{"secretRef": {"name": node.node.env_secret_ref_name}}]
    parts.init_containers.append(init)
    return MODEL_DIR, {"name": volume, "mountPath": MODEL_DIR, "readOnly": True}


def _model_volume(node: str) -> str:
    return shorten_label(f"{node}-provision-location")


def _graph_path(unit: Any, name: str) -> str:
    for found, path in unit.walk():
        if found.name == name:
            return str(path)
    return ""


def _as_json(container: Container) -> Json:
    dumped: Json = container.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key in ("command", "args", "env", "ports"):
        if not dumped.get(key):
            dumped.pop(key, None)
    return dumped
