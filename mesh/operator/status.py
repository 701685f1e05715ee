"""A SeldonDeployment's status, computed from what was rendered and what the API holds: pure, no I/O.

Seldon's fields (`state`, `description`, `deploymentStatus`, `serviceStatus`, `address.url`,
`replicas`) plus standard conditions, each with `observedGeneration` and a `lastTransitionTime` that
only moves when the condition's status does. A Deployment counts as ready the way `kubectl rollout status`
decides it (observed generation caught up, every replica updated, no old replica left, every updated
replica available), so a rollout in progress never shows Available on the strength of old pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh.operator.kube import INGRESS_KINDS
from mesh.render.labels import DEPLOYMENT_LABEL, label_value
from mesh.render.names import predictor_service
from mesh.spec import SeldonDeployment

CREATING, AVAILABLE, FAILED = "Creating", "Available", "Failed"
CONDITIONS = ("DeploymentsReady", "ServicesReady", "IngressReady", "Ready")
# The status fields this operator writes (anything else under status is someone else's).
OWNED = (
    "state", "description", "deploymentStatus", "serviceStatus", "replicas", "selector", "address",
    "conditions", "observedGeneration",
)  # fmt: skip
Key = tuple[str, str]  # (kind, name)


@dataclass(frozen=True)
class Problem:
    """Why a condition is not true: a machine reason and a sentence for `kubectl describe`."""

    condition: str
    reason: str
    message: str
    failed: bool = False  # permanent (state Failed) rather than still in progress


@dataclass
class Observed:
    """What one reconcile saw: the live object of each rendered one (None: missing), and problems."""

    live: dict[Key, Mapping[str, Any] | None] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def key(obj: Mapping[str, Any]) -> Key:
    return str(obj["kind"]), str(obj["metadata"]["name"])


def deployment_ready(live: Mapping[str, Any]) -> tuple[bool, str]:
    """(ready, why not): `kubectl rollout status` semantics on a live apps/v1 Deployment."""
    spec, status = live.get("spec") or {}, live.get("status") or {}
    generation = (live.get("metadata") or {}).get("generation")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return False, f"progress deadline exceeded: {condition.get('message', '')}".strip()
    if generation is not None and int(status.get("observedGeneration") or 0) < int(generation):
        return False, "waiting for the Deployment controller to observe the new spec"
    desired = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    updated = int(status.get("updatedReplicas") or 0)
    replicas = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < desired:
        return False, f"{updated} of {desired} replicas updated"
    if replicas > updated:
        return False, f"{replicas - updated} old replicas pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas available"
    return True, ""


def _progress_failed(live: Mapping[str, Any]) -> bool:
    conditions = (live.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded" for c in conditions
    )


def address_url(deployment: SeldonDeployment, cluster_domain: str) -> str:
    """The in-cluster URL of the main predictor's Service, as Seldon reports it per protocol."""
    predictors = [p for p in deployment.spec.predictors if not p.shadow] or list(deployment.spec.predictors)
    main = max(predictors, key=lambda p: p.traffic)
    host = f"{predictor_service(deployment, main)}.{deployment.metadata.namespace}.svc.{cluster_domain}:8000"
    protocol = str(deployment.spec.protocol)
    if protocol == "v2":
        path = f"/v2/models/{main.graph.name}/infer"
    elif protocol == "tensorflow":
        path = f"/v1/models/{main.graph.name}:predict"
    else:
        path = "/api/v1.0/predictions"
    return f"http://{host}{path}"


@dataclass
class _Tally:
    deployments: dict[str, Any] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)
    waiting: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CONDITIONS[:3]})
    failed: list[str] = field(default_factory=list)
    replicas: int = 0


def compute(
    deployment: SeldonDeployment,
    generation: int | None,
    rendered: Sequence[Mapping[str, Any]],
    observed: Observed,
    cluster_domain: str,
) -> dict[str, Any]:
    """The status fields we own, before `lastTransitionTime`s are merged with the old ones."""
    tally = _Tally()
    for obj in rendered:
        kind, name = key(obj)
        live = observed.live.get((kind, name))
        if kind == "Deployment":
            _tally_deployment(tally, name, live)
        elif kind == "Service":
            _tally_service(tally, deployment.metadata.namespace, obj, live)
        elif kind in INGRESS_KINDS and live is None:
            tally.waiting["IngressReady"].append(f"{kind} {name} not created")
    conditions = _conditions(tally, observed, rendered, generation)
    not_ready = [c for c in conditions.values() if c["status"] != "True"]
    permanent = [p for p in observed.problems if p.failed]
    if permanent or tally.failed:
        state = FAILED
        description = "; ".join([p.message for p in permanent] + tally.failed)
    elif not_ready:
        state = CREATING
        description = "; ".join(f"{c['type']}: {c['message']}" for c in not_ready)
    else:
        state = AVAILABLE
        description = ""
    ready = state == AVAILABLE
    conditions["Ready"] = _condition("Ready", ready, AVAILABLE if ready else state, description, generation)
    status: dict[str, Any] = {
        "state": state,
        "description": description,
        "deploymentStatus": tally.deployments,
        "serviceStatus": tally.services,
        "replicas": tally.replicas,
        # The scale subresource's label selector: every pod of the deployment (`kubectl get sdep -o wide`,
        # an HPA or KEDA aimed at the SeldonDeployment itself).
        "selector": f"{DEPLOYMENT_LABEL}={label_value(deployment.metadata.name)}",
        "address": {"url": address_url(deployment, cluster_domain)},
        "conditions": [conditions[name] for name in CONDITIONS],
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def _tally_deployment(tally: _Tally, name: str, live: Mapping[str, Any] | None) -> None:
    if live is None:
        tally.deployments[name] = {"replicas": 0, "availableReplicas": 0, "status": CREATING}
        tally.waiting["DeploymentsReady"].append(f"Deployment {name} not created")
        return
    ready, why = deployment_ready(live)
    live_status = live.get("status") or {}
    state = AVAILABLE if ready else FAILED if _progress_failed(live) else CREATING
    entry: dict[str, Any] = {
        "replicas": int(live_status.get("replicas") or 0),
        "availableReplicas": int(live_status.get("availableReplicas") or 0),
        "status": state,
    }
    if why:
        entry["description"] = why
    tally.deployments[name] = entry
    tally.replicas += entry["replicas"]
    if state == FAILED:
        tally.failed.append(f"Deployment {name}: {why}")
    elif not ready:
        tally.waiting["DeploymentsReady"].append(f"Deployment {name}: {why}")


def _tally_service(
    tally: _Tally, namespace: str, obj: Mapping[str, Any], live: Mapping[str, Any] | None
) -> None:
    name = key(obj)[1]
    ports = {p.get("name"): p.get("port") for p in (obj.get("spec") or {}).get("ports") or []}
    entry = {"svcName": name}
    if ports.get("http"):
        entry["httpEndpoint"] = f"{name}.{namespace}:{ports['http']}"
    if ports.get("grpc"):
        entry["grpcEndpoint"] = f"{name}.{namespace}:{ports['grpc']}"
    tally.services[name] = entry
    if live is None:
        tally.waiting["ServicesReady"].append(f"Service {name} not created")


def _conditions(
    tally: _Tally, observed: Observed, rendered: Sequence[Mapping[str, Any]], generation: int | None
) -> dict[str, dict[str, Any]]:
    conditions: dict[str, dict[str, Any]] = {}
    reasons = {"DeploymentsReady": "DeploymentsAvailable", "ServicesReady": "ServicesCreated"}
    for name in CONDITIONS[:3]:
        problems = [p for p in observed.problems if p.condition == name]
        if problems:
            message = "; ".join(p.message for p in problems)
            conditions[name] = _condition(name, False, problems[0].reason, message, generation)
        elif name == "DeploymentsReady" and tally.failed:
            message = "; ".join(tally.failed)
            conditions[name] = _condition(name, False, "ProgressDeadlineExceeded", message, generation)
        elif tally.waiting[name]:
            message = "; ".join(tally.waiting[name])
            conditions[name] = _condition(name, False, "Waiting", message, generation)
        else:
            reason = reasons.get(name, "IngressCreated" if _has_ingress(rendered) else "NoIngressObjects")
            conditions[name] = _condition(name, True, reason, "", generation)
    return conditions


def invalid(errors: Sequence[str], generation: int | None) -> dict[str, Any]:
    """The status of a spec mesh.spec refuses: Failed, every field path, conditions false."""
    description = "invalid SeldonDeployment: " + "; ".join(errors)
    status: dict[str, Any] = {
        "state": FAILED,
        "description": description,
        "conditions": [
            _condition(name, False, "InvalidSpec", description, generation) for name in CONDITIONS
        ],
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def _has_ingress(rendered: Sequence[Mapping[str, Any]]) -> bool:
    return any(obj.get("kind") in INGRESS_KINDS for obj in rendered)


def _condition(name: str, ok: bool, reason: str, message: str, generation: int | None) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": name,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def merge(old: Mapping[str, Any] | None, new: dict[str, Any], now: str) -> tuple[dict[str, Any], list[str]]:
    """`new` with each condition's `lastTransitionTime` kept when its status did not change (set to
    `now` when it did), and the merge patch that turns our fields of `old` into it. Also returns what
    changed, one line per condition or state move, for events."""
    old = old or {}
    previous = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, Mapping)}
    changes: list[str] = []
    for condition in new.get("conditions", []):
        before = previous.get(condition["type"])
        if before is not None and before.get("status") == condition["status"]:
            condition["lastTransitionTime"] = before.get("lastTransitionTime") or now
        else:
            condition["lastTransitionTime"] = now
            if condition["type"] != "Ready":
                changes.append(f"{condition['type']}={condition['status']}")
    if old.get("state") != new.get("state"):
        changes.insert(0, f"state {new.get('state')}")
    owned = {name: old[name] for name in OWNED if name in old}
    return merge_patch(owned, new), changes


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7396) that turns `old` into `new`: keys gone are nulled, maps recurse."""
    patch: dict[str, Any] = {name: None for name in old if name not in new}
    for name, value in new.items():
        before = old.get(name)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            patch[name] = merge_patch(before, value)
        else:
            patch[name] = value
    return patch


def same(old: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> bool:
    """Whether writing `patch` would change nothing in `old`."""
    old = old or {}
    for name, value in patch.items():
        current = old.get(name)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            if not same(current, value):
                return False
        elif value is None:
            if current is not None:
                return False
        elif current != value:
            return False
    return True
