"""Labels, owner references and object metadata shared by every rendered object.

Seldon's labels (`seldon-deployment-id`, `seldon-app`, `app`, `version`) are what users' selectors,
dashboards and PodMonitors already rely on; `app.kubernetes.io/*` are the standard ones. Every object is
owned by its SeldonDeployment, so Kubernetes collects it on delete, and carries `MANAGED_BY` and
`DEPLOYMENT_LABEL` so the operator finds what it rendered before (to delete what the spec dropped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh.render.names import shorten
from mesh.render.settings import RenderSettings
from mesh.spec import API_VERSIONS, KIND, PredictorSpec, SeldonDeployment

Manifest = dict[str, Any]

MANAGED_BY = "seldon-mesh"
DEPLOYMENT_LABEL = "seldon-deployment-id"
APP_LABEL = "seldon-app"  # the Service selector label Seldon gives each pod
PREDICTOR_LABEL = "seldon-predictor"  # seldon-mesh: which predictor (DestinationRule subsets select on it)
CONTROLLER_LABEL = "seldon.io/controller-id"
# seldon-mesh: the Deployment a pod belongs to (its own selector, and its PDB's and component Services').
COMPONENT_LABEL = "seldon-mesh.io/component"


def label_value(name: str) -> str:
    """A name as a label value: itself, or shortened as object names are when it is over 63 characters."""
    return shorten(name)


def common_labels(deployment: SeldonDeployment, settings: RenderSettings) -> dict[str, str]:
    labels = {
        DEPLOYMENT_LABEL: label_value(deployment.metadata.name),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": label_value(deployment.metadata.name),
    }
    if settings.controller_id:
        labels[CONTROLLER_LABEL] = settings.controller_id
    return labels


def owner_references(deployment: SeldonDeployment) -> list[dict[str, Any]]:
    """The SeldonDeployment as controller owner; none when it has no uid (offline `seldon-mesh render`,
    where the objects are applied by the user and have no owner yet)."""
    uid = deployment.metadata.uid
    if not uid:
        return []
    return [
        {
            "apiVersion": API_VERSIONS[0],
            "kind": KIND,
            "name": deployment.metadata.name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def object_meta(
    deployment: SeldonDeployment,
    settings: RenderSettings,
    name: str,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": deployment.metadata.namespace,
        "labels": {**common_labels(deployment, settings), **(labels or {})},
    }
    if annotations:
        meta["annotations"] = annotations
    owners = owner_references(deployment)
    if owners:
        meta["ownerReferences"] = owners
    return meta


def predictor_version(predictor: PredictorSpec) -> str:
    """Seldon's `version` pod label: the predictor's `version` label or annotation, else its name."""
    return predictor.labels.get("version") or predictor.version or label_value(predictor.name)


def selector_labels(deployment: SeldonDeployment, workload: str) -> dict[str, str]:
    """What a Deployment, its PDB and its pods' Services select on; never changes for a Deployment."""
    return {DEPLOYMENT_LABEL: label_value(deployment.metadata.name), COMPONENT_LABEL: workload}


def workload_labels(
    deployment: SeldonDeployment,
    settings: RenderSettings,
    predictor: PredictorSpec,
    workload: str,
    service: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A workload's pod labels, as Seldon gives them: the predictor's and componentSpec's own labels
    (`extra`), `app` (the Deployment), `version`, `seldon-app` (the Service that selects the pods), plus
    the predictor (DestinationRule subsets select on it) and the selector labels, which nothing overrides."""
    return {
        "app": workload,
        "version": predictor_version(predictor),
        **predictor.labels,
        **(extra or {}),
        **common_labels(deployment, settings),
        APP_LABEL: service,
        PREDICTOR_LABEL: label_value(predictor.name),
        **selector_labels(deployment, workload),
    }
