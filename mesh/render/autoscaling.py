"""A componentSpec's autoscaler and disruption budget, each aimed at that component's Deployment only.

`hpaSpec` becomes an autoscaling/v2 HorizontalPodAutoscaler: `metricsv2` (already v2) as given, else
`metrics` in the autoscaling/v2beta1 shape Seldon documented (`targetAverageUtilization`, `metricName`,
...) restated in v2's `target` form. `kedaSpec` becomes a KEDA ScaledObject with the same fields.
`pdbSpec` becomes a policy/v1 PodDisruptionBudget selecting the component's own pods.
"""

from __future__ import annotations

from typing import Any

from mesh.render.components import Component
from mesh.render.labels import Manifest, object_meta, selector_labels
from mesh.render.settings import RenderSettings
from mesh.spec import ComponentSpec, SeldonDeployment

Json = dict[str, Any]
_KEDA_FIELDS = (
    "pollingInterval",
    "cooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
)


def autoscaled(spec: ComponentSpec | None) -> bool:
    """An HPA or KEDA owns the Deployment's replicas."""
    return spec is not None and bool(spec.hpa_spec or spec.keda_spec)


def render_autoscaling(
    deployment: SeldonDeployment, component: Component, settings: RenderSettings
) -> list[Manifest]:
    spec = component.spec
    if spec is None:
        return []
    out: list[Manifest] = []
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": component.name}
    if spec.hpa_spec:
        out.append(_hpa(deployment, component, settings, spec.hpa_spec, target))
    if spec.keda_spec:
        body = {k: spec.keda_spec[k] for k in _KEDA_FIELDS if k in spec.keda_spec}
        meta = object_meta(deployment, settings, component.name)
        out.append(
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "metadata": meta,
                "spec": {"scaleTargetRef": target, **body},
            }
        )
    if spec.pdb_spec:
        budget = {k: spec.pdb_spec[k] for k in ("minAvailable", "maxUnavailable") if k in spec.pdb_spec}
        out.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": object_meta(deployment, settings, component.name),
                "spec": {**budget, "selector": {"matchLabels": selector_labels(deployment, component.name)}},
            }
        )
    return out


def _hpa(
    deployment: SeldonDeployment, component: Component, settings: RenderSettings, hpa: Json, target: Json
) -> Manifest:
    metrics = hpa.get("metricsv2") or [v2_metric(m) for m in hpa.get("metrics") or []]
    body: Json = {"scaleTargetRef": target, "maxReplicas": hpa.get("maxReplicas", 1)}
    if hpa.get("minReplicas") is not None:
        body["minReplicas"] = hpa["minReplicas"]
    if metrics:
        body["metrics"] = metrics
    if hpa.get("behavior"):
        body["behavior"] = hpa["behavior"]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(deployment, settings, component.name),
        "spec": body,
    }


def v2_metric(metric: Json) -> Json:
    """An autoscaling/v2beta1 MetricSpec in autoscaling/v2's shape; one already in v2's shape as given."""
    kind = metric.get("type", "Resource")
    key = {"Resource": "resource", "Pods": "pods", "Object": "object", "External": "external"}.get(kind)
    source: Json = dict(metric.get(key, {})) if key else {}
    already_v2 = "metric" in source or (kind == "Resource" and "target" in source)
    if key is None or already_v2:
        return metric
    if kind == "Resource":
        return {"type": kind, "resource": {"name": source.get("name", "cpu"), "target": _target(source)}}
    metric_id: Json = {"name": source.get("metricName", "")}
    if source.get("selector") or source.get("metricSelector"):
        metric_id["selector"] = source.get("selector") or source.get("metricSelector")
    if kind == "Pods":
        return {"type": kind, "pods": {"metric": metric_id, "target": _target(source)}}
    if kind == "Object":
        described = source.get("target") or {}  # v2beta1 names the described object `target`
        return {
            "type": kind,
            "object": {"describedObject": described, "metric": metric_id, "target": _target(source)},
        }
    return {"type": kind, "external": {"metric": metric_id, "target": _target(source)}}


def _target(source: Json) -> Json:
    if "targetAverageUtilization" in source:
        return {"type": "Utilization", "averageUtilization": source["targetAverageUtilization"]}
    if "targetAverageValue" in source:
        return {"type": "AverageValue", "averageValue": source["targetAverageValue"]}
    if "targetValue" in source:
        return {"type": "Value", "value": source["targetValue"]}
    return {"type": "Utilization", "averageUtilization": 80}
