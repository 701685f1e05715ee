"""How each graph node of a deployment runs on this machine: a pure function of the spec and its folder.

Kubernetes runs a container image per component; locally there are no images, so a node is run as:
- a prepackaged server (`implementation: SKLEARN_SERVER`, ...) with its `modelUri`, or
- the Python class wrapper, when its container follows Seldon's s2i convention (env `MODEL_NAME`, optional
  `SERVICE_TYPE`) or runs `seldon-core-microservice <Class>`; the class is looked up in the container's
  `workingDir` (relative to the manifest's folder) or else the manifest's folder, or
- an external server, when the node's `endpoint` names a host and port (an MLServer you started yourself).
Built-in nodes (RANDOM_ABTEST, AVERAGE_COMBINER, ...) run inside the graph executor and need no process.

Each runtime gets Seldon's component environment (deployment, predictor, node, image, predictor version),
which labels its metrics and spans, and `--gateway-facing` when the gateway routes its predictor straight
to it (then no ext_proc sees the request, so the runtime records the executor's server histogram).
A node's `envSecretRefName` Secret (applied beside it, kept by the store) adds its keys to that environment,
for the model download and the runtime alike, the container's own `env` winning as over a Kubernetes
`envFrom`; a Secret that is not there fails the component, naming it.
Ports, the metrics port among them, are the supervisor's business; tracing settings
(`OTEL_EXPORTER_OTLP_ENDPOINT`, ...) reach the runtime through the environment `up` passes on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from mesh.spec import Container, PredictiveUnit, PredictorSpec, SeldonDeployment
from mesh.spec.traffic import policy_of
from mesh.spec.wrapper import python_class as _python_class
from mesh.spec.wrapper import service_type as _service_type
from xds_controller.translate import (
    ComponentEndpoints,
    ComponentKey,
    Direct,
    Upstream,
    logs_over_stream,
    plan_predictor,
)


@dataclass(frozen=True)
class RuntimeLaunch:
    """Arguments for `python -m model_runtime` (ports are added by the supervisor) and the process env.

    `cwd` is the folder the process starts in, None where nothing it runs reads relative paths (a
    prepackaged server gets its model as an absolute path), so the same spec applied from another
    folder that resolves to the same files starts the same process."""

    args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    program: tuple[str, ...] = ()  # what runs instead of `python -m model_runtime` (an explainer)
    ready_timeout_s: float | None = None  # instead of the supervisor's (an explainer may build its env first)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the process would have to be restarted to pick up the spec: it covers all
        the process is started with (arguments, environment, folder), and nothing else."""
        parts = [list(self.args), sorted(self.env.items()), str(self.cwd or "")]
        blob = json.dumps([*parts, list(self.program)] if self.program else parts)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ComponentPlan:
    """One graph node of one predictor: exactly one of `launch`, `external` or `error` is set.
    `replicas` processes run a launch, all of them endpoints of the component's cluster."""

    key: ComponentKey
    launch: RuntimeLaunch | None = None
    external: ComponentEndpoints | None = None
    error: str | None = None
    replicas: int = 1


Secrets = Mapping[tuple[str, str], Mapping[str, str]]  # (namespace, name) -> the Secret's keys


def plan_deployment(
    deployment: SeldonDeployment, base_dir: Path, workers: int = 1, secrets: Secrets | None = None
) -> list[ComponentPlan]:
    namespace, name = deployment.key
    plans: list[ComponentPlan] = []
    for predictor in deployment.spec.predictors:
        for node in predictor.nodes():
            if node.is_builtin:
                continue
            key = ComponentKey(namespace, name, predictor.name, node.name)
            plans.append(_plan_node(key, deployment, predictor, node, base_dir, workers, secrets or {}))
        if predictor.explainer:
            from mesh.local.explainers import plan_explainer  # it imports this module

            plans.append(plan_explainer(deployment, predictor, base_dir))
    return plans


def _plan_node(
    key: ComponentKey,
    deployment: SeldonDeployment,
    predictor: PredictorSpec,
    node: PredictiveUnit,
    base_dir: Path,
    workers: int,
    secrets: Secrets,
) -> ComponentPlan:
    container = predictor.container_for(node.name)
    external = _external_endpoint(node)
    if external is not None and container is None and not node.is_prepackaged:
        return ComponentPlan(key, external=external)
    limit = str(policy_of(deployment.annotations).request_limit_bytes)  # REST and gRPC alike
    common = [
        "--name", node.name,
        "--workers", str(workers),
        "--service-type", _service_type(node, container),
        "--max-request-bytes", limit,
        "--grpc-max-message-bytes", limit,
    ]  # fmt: skip
    if _gateway_facing(key, deployment, predictor):
        common.append("--gateway-facing")
        if node.logger is not None and not logs_over_stream(deployment):  # the runtime logs it itself
            common += ["--logger-mode", str(node.logger.mode)]
            common += ["--logger-url", node.logger.url] if node.logger.url else []
    found: Mapping[str, str] = {}
    if node.env_secret_ref_name:
        secret = secrets.get((deployment.metadata.namespace, node.env_secret_ref_name))
        if secret is None:
            return ComponentPlan(key, error=_missing_secret(deployment, node))
        found = secret
    # the container's own env and Seldon's variables win over the Secret's keys, as over an envFrom
    env = {**found, **_runtime_env(deployment, predictor, node, container)}
    if node.parameters:  # in the environment, as Seldon passes them: a command line is every user's to read
        params = [{"name": p.name, "value": p.value, "type": p.type} for p in node.parameters]
        env["PREDICTIVE_UNIT_PARAMETERS"] = json.dumps(params)
    if node.is_prepackaged:
        uri = resolve_model_uri(node.model_uri or "", base_dir)
        args = ["--implementation", node.implementation, "--model-uri", uri, *common]
        launch = RuntimeLaunch(tuple(args), env, None)
        return ComponentPlan(key, launch=launch, replicas=replicas(deployment, predictor, node.name))
    if container is None:
        return ComponentPlan(
            key, error=f"node {node.name!r} has no container and no prepackaged implementation"
        )
    class_name = _python_class(container)
    if class_name is None:
        return ComponentPlan(
            key,
            error=f"image {container.image!r} cannot run without a cluster: give the container env "
            "MODEL_NAME (a Python class in the manifest's folder) or use a prepackaged implementation",
        )
    code_dir = _code_dir(container, base_dir)
    args = ["--class", class_name, "--code-dir", str(code_dir), *common]
    if node.model_uri:
        args += ["--model-uri", resolve_model_uri(node.model_uri, base_dir)]
    launch = RuntimeLaunch(tuple(args), env, code_dir)
    return ComponentPlan(key, launch=launch, replicas=replicas(deployment, predictor, node.name))


def replicas(deployment: SeldonDeployment, predictor: PredictorSpec, node_name: str) -> int:
    """Seldon's precedence: the replicas of the componentSpec holding the node's container, else the
    predictor's, else the deployment's, else 1. Zero (scaled to nothing on a cluster) runs one here:
    a local mesh has no autoscaler to bring it back."""
    for component in predictor.component_specs:
        if any(c.name == node_name for c in component.spec.containers) and component.replicas is not None:
            return max(component.replicas, 1)
    for count in (predictor.replicas, deployment.spec.replicas):
        if count is not None:
            return max(count, 1)
    return 1


def _gateway_facing(key: ComponentKey, deployment: SeldonDeployment, predictor: PredictorSpec) -> bool:
    """Does Envoy route the predictor's requests straight to this component (no ext_proc in between)?"""
    plan = plan_predictor(deployment, predictor)
    return isinstance(plan, Direct) and plan.component == key


def resolve_model_uri(uri: str, base_dir: Path) -> str:
    """Relative paths (bare or `file://`) are relative to the manifest's folder; remote URIs pass through."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        raw = uri[len("file://") :] if parsed.scheme == "file" else uri
        path = Path(raw).expanduser()
        return str(path if path.is_absolute() else (base_dir / path).resolve())
    return uri


def _external_endpoint(node: PredictiveUnit) -> ComponentEndpoints | None:
    endpoint = node.endpoint
    if endpoint is None or not endpoint.service_host:
        return None
    http_port = endpoint.http_port or (endpoint.service_port if endpoint.type != "GRPC" else None)
    grpc_port = endpoint.grpc_port or (endpoint.service_port if endpoint.type == "GRPC" else None)
    http = (Upstream(endpoint.service_host, http_port),) if http_port else ()
    grpc = (Upstream(endpoint.service_host, grpc_port),) if grpc_port else ()
    if not http and not grpc:
        return None
    return ComponentEndpoints(http=http, grpc=grpc)


def _missing_secret(deployment: SeldonDeployment, node: PredictiveUnit) -> str:
    return (
        f"Secret {node.env_secret_ref_name!r} (envSecretRefName of node {node.name!r}) not found in "
        f"namespace {deployment.metadata.namespace!r}: apply it (kind: Secret, apiVersion: v1) with "
        "seldon-mesh apply, beside the SeldonDeployment or before it"
    )


def _code_dir(container: Container, base_dir: Path) -> Path:
    if container.working_dir:
        candidate = Path(container.working_dir).expanduser()
        candidate = candidate if candidate.is_absolute() else base_dir / candidate
        if candidate.is_dir():
            return candidate.resolve()
    return base_dir.resolve()


def _runtime_env(
    deployment: SeldonDeployment, predictor: PredictorSpec, node: PredictiveUnit, container: Container | None
) -> dict[str, str]:
    env = dict(container.env_dict()) if container is not None else {}
    image = container.image if container is not None and container.image else node.implementation
    env.update(
        {
            "PREDICTIVE_UNIT_ID": node.name,
            "PREDICTIVE_UNIT_IMAGE": image or "",
            "PREDICTOR_ID": predictor.name,
            "PREDICTOR_VERSION": predictor.version,
            "PREDICTOR_LABELS": json.dumps(predictor.labels, sort_keys=True),
            "SELDON_DEPLOYMENT_ID": deployment.metadata.name,
            "SELDON_NAMESPACE": deployment.metadata.namespace,
        }
    )
    return env
