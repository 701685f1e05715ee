"""What `seldon-mesh get` shows: each deployment's manifest with a SeldonDeployment-like `status`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mesh.local.reconcile import Reconciler
from mesh.local.supervisor import Restart


def describe(
    reconciler: Reconciler, gateway_url: str, namespace: str | None = None, name: str | None = None
) -> list[dict[str, Any]]:
    result = []
    for stored in reconciler.deployments:
        ns, dep_name = stored.deployment.key
        if (namespace is not None and ns != namespace) or (name is not None and dep_name != name):
            continue
        status = reconciler.status(stored.deployment.key)
        if status is None:
            continue
        manifest = stored.deployment.to_manifest()
        base = f"{gateway_url}/seldon/{ns}/{dep_name}"
        manifest["status"] = {
            "state": status.state,
            "description": status.description,
            "generation": status.generation,
            "config": status.config.value,
            "address": {"url": f"{base}/api/v1.0/predictions"},
            "components": [
                {
                    "predictor": key.predictor,
                    "node": key.node,
                    "state": component.state.value,
                    "reason": component.reason,
                    "restarts": component.restarts,
                    "lastRestart": _restart(component.last_restart),
                    "pid": component.pid,
                    "http": [f"{u.host}:{u.port}" for u in component.endpoints.http],
                    "grpc": [f"{u.host}:{u.port}" for u in component.endpoints.grpc],
                    "metrics": component.metrics_url,
                    "replicas": [
                        {
                            "state": replica.state.value,
                            "restarts": replica.restarts,
                            "lastRestart": _restart(replica.last_restart),
                            "pid": replica.pid,
                            "http": [f"{u.host}:{u.port}" for u in replica.endpoints.http],
                        }
                        for replica in component.replicas
                    ],
                }
                for key, component in status.components.items()
            ],
        }
        result.append(manifest)
    return result


def _restart(restart: Restart | None) -> dict[str, str] | None:
    """Why the last run ended and when, as Kubernetes' `lastState.terminated` says it."""
    if restart is None:
        return None
    at = datetime.fromtimestamp(restart.at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {"reason": restart.reason, "finishedAt": at}
