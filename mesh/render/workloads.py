"""Every workload object of a SeldonDeployment: per predictor its component Deployments, its Services,
its extproc (when it needs one), and the autoscalers and disruption budgets its componentSpecs ask for.

A component Deployment rolls out with `maxUnavailable: 0` (a new pod is ready before an old one goes),
its pods drain before they stop (`containers.PRESTOP_SLEEP_S`), and `replicas` is left out when an HPA
or a KEDA ScaledObject owns it, so server-side apply never fights the autoscaler.
"""

from __future__ import annotations

import copy
from typing import Any

from mesh.render import autoscaling, extproc, services
from mesh.render.components import Component, components, entry_component
from mesh.render.containers import node_containers
from mesh.render.labels import Manifest, object_meta, selector_labels, workload_labels
from mesh.render.names import predictor_service
from mesh.render.settings import RenderSettings
from mesh.spec import PredictorSpec, SeldonDeployment
from mesh.spec.extproc_config import needs_extproc

ROLLING_UPDATE = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}


def render_workloads(deployment: SeldonDeployment, settings: RenderSettings) -> list[Manifest]:
    manifests: list[Manifest] = []
    for index, predictor in enumerate(deployment.spec.predictors):
        path = f"spec.predictors[{index}]"
        parts = components(deployment, predictor)
        if needs_extproc(predictor):
            manifests += extproc.render_extproc(deployment, predictor, settings)
        for component in parts:
            manifests.append(component_deployment(deployment, component, settings, path))
        manifests += services.render_services(deployment, predictor, parts, settings)
        for component in parts:
            manifests += autoscaling.render_autoscaling(deployment, component, settings)
    return manifests


def replicas(deployment: SeldonDeployment, predictor: PredictorSpec, own: int | None) -> int:
    """Seldon's precedence: the componentSpec's, else the predictor's, else the deployment's, else 1."""
    for value in (own, predictor.replicas, deployment.spec.replicas):
        if value is not None:
            return value
    return 1


def component_deployment(
    deployment: SeldonDeployment, component: Component, settings: RenderSettings, path: str
) -> Manifest:
    predictor, spec = component.predictor, component.spec
    entry = entry_component(deployment, predictor)
    service = (
        predictor_service(deployment, predictor)
        if entry is not None and entry.name == component.name
        else component.name
    )
    extra_labels = dict((spec.metadata.get("labels") or {}) if spec else {})
    labels = workload_labels(deployment, settings, predictor, component.name, service, extra_labels)
    containers, parts = node_containers(deployment, component, settings, path)
    pod: dict[str, Any] = dict(spec.spec.rest()) if spec is not None else {}
    pod["containers"] = containers
    if parts.init_containers:
        pod["initContainers"] = [*pod.get("initContainers", []), *parts.init_containers]
    if parts.volumes:
        pod["volumes"] = [*pod.get("volumes", []), *parts.volumes]
    account = next(
        (n.node.service_account_name for n in component.nodes if n.node.service_account_name), None
    )
    if account and "serviceAccountName" not in pod:
        pod["serviceAccountName"] = account
    template_meta: dict[str, Any] = {"labels": labels}
    annotations = dict((spec.metadata.get("annotations") or {}) if spec else {})
    metrics_port = component.nodes[0].ports.metrics if component.nodes else None
    if metrics_port is not None:
        annotations = {
            "prometheus.io/scrape": "true",
            "prometheus.io/path": "/prometheus",
            "prometheus.io/port": str(metrics_port),
            **annotations,
        }
    if annotations:
        template_meta["annotations"] = annotations
    body: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(deployment, component.name)},
        "strategy": copy.deepcopy(ROLLING_UPDATE),
        "template": {"metadata": template_meta, "spec": pod},
    }
    if not autoscaling.autoscaled(spec):
        body = {"replicas": replicas(deployment, predictor, spec.replicas if spec else None), **body}
    if predictor.progress_deadline_seconds is not None:
        body["progressDeadlineSeconds"] = predictor.progress_deadline_seconds
    meta = object_meta(deployment, settings, component.name, labels=_object_labels(labels))
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": body}


def _object_labels(pod_labels: dict[str, str]) -> dict[str, str]:
    """The Deployment carries its pods' labels too, so `kubectl get deploy -l seldon-app=...` works."""
    return dict(pod_labels)
