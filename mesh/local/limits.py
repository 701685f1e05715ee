"""What a spec asks that one machine cannot do: refused at apply with its field path, or warned about.

`problems` are mistakes that would only show later as a runtime that never gets ready (a local modelUri
or workingDir that does not exist, a PersistentVolumeClaim): `seldon-mesh apply` refuses them before
anything is sent. `warnings` are fields only a cluster acts on (autoscalers, disruption budgets, Kafka
serving): applied without them, and named, so nothing is dropped silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from mesh.local.plan import resolve_model_uri
from mesh.spec import FieldError, PredictorSpec, SeldonDeployment

PVC_ROOT_ENV = "SELDON_MESH_PVC_ROOT"  # the folder of claims a local runtime reads pvc:// models from


def problems(deployment: SeldonDeployment, base_dir: Path) -> list[FieldError]:
    errors: list[FieldError] = []
    for p_index, predictor in enumerate(deployment.spec.predictors):
        path = f"spec.predictors[{p_index}]"
        for node, sub in predictor.graph.walk():
            uri = node.model_uri
            if not uri:
                continue
            where = f"{path}.graph{sub}.modelUri"
            scheme = urlparse(uri).scheme
            if scheme == "pvc":
                errors.append(
                    FieldError(where, f"{uri}: a PersistentVolumeClaim needs a cluster; locally give a path")
                )
            elif scheme in ("", "file") or len(scheme) == 1:
                local = Path(resolve_model_uri(uri, base_dir))
                if not local.exists():
                    errors.append(FieldError(where, f"{uri}: no such file or folder ({local})"))
        errors += _explainer_problems(predictor, path, base_dir)
        for c_index, component in enumerate(predictor.component_specs):
            for k_index, container in enumerate(component.spec.containers):
                if not container.working_dir:
                    continue
                folder = Path(container.working_dir).expanduser()
                folder = folder if folder.is_absolute() else base_dir / folder
                if not folder.is_dir():
                    where = f"{path}.componentSpecs[{c_index}].spec.containers[{k_index}].workingDir"
                    errors.append(FieldError(where, f"{container.working_dir}: no such folder ({folder})"))
    return errors


def _explainer_problems(predictor: PredictorSpec, path: str, base_dir: Path) -> list[FieldError]:
    """A saved explainer is read from a local path (a cluster's storage initializer fetches remote ones)."""
    uri = str((predictor.explainer or {}).get("modelUri") or "")
    where = f"{path}.explainer.modelUri"
    if not uri:
        return []
    if urlparse(uri).scheme not in ("", "file"):
        return [FieldError(where, f"{uri}: a cluster's storage initializer fetches it; locally give a path")]
    local = Path(resolve_model_uri(uri, base_dir))
    return [] if local.exists() else [FieldError(where, f"{uri}: no such file or folder ({local})")]


def _pvc_problems(uri: str, where: str) -> list[FieldError]:
    """Locally a claim is a folder under `SELDON_MESH_PVC_ROOT` (the runtime reads it from there)."""
    root = os.environ.get(PVC_ROOT_ENV)
    if not root:
        return [
            FieldError(
                where, f"{uri}: a PersistentVolumeClaim; locally set {PVC_ROOT_ENV} to a folder of claims"
            )
        ]
    parsed = urlparse(uri)
    folder = Path(root) / parsed.netloc / parsed.path.lstrip("/")
    return [] if folder.exists() else [FieldError(where, f"{uri}: no such file or folder ({folder})")]


def warnings(deployment: SeldonDeployment) -> list[FieldError]:
    notes: list[FieldError] = []
    if deployment.spec.server_type == "kafka":
        notes.append(
            FieldError("spec.serverType", "kafka serving needs a cluster; served over REST and gRPC here")
        )
    for p_index, predictor in enumerate(deployment.spec.predictors):
        path = f"spec.predictors[{p_index}]"
        for c_index, component in enumerate(predictor.component_specs):
            where = f"{path}.componentSpecs[{c_index}]"
            for field, value in (
                ("hpaSpec", component.hpa_spec),
                ("kedaSpec", component.keda_spec),
                ("pdbSpec", component.pdb_spec),
            ):
                if value:
                    notes.append(
                        FieldError(
                            f"{where}.{field}", "acted on in a cluster only; the local mesh runs replicas"
                        )
                    )
    return notes
