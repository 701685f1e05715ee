"""Validate rendered Kubernetes objects against the real schemas, offline and strictly.

Built-in kinds go to `kubernetes-validate` (the Kubernetes OpenAPI schemas, strict: an unknown field is an
error) at every version in `KUBERNETES_VERSIONS`; Istio, KEDA and Gateway API kinds to the
`openAPIV3Schema` of their upstream CRDs in `../shared/schemas/`, and SeldonDeployments to the schema of
our own CRD when one is given. An unknown kind or a missing schema is a failure, never a pass. CRD schemas
are made strict the way the API server's pruning would make them: an object with `properties` and neither
`additionalProperties` nor `x-kubernetes-preserve-unknown-fields` admits no other field (the API server
would silently drop it, which for a rendering is a bug).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
SHARED_SCHEMAS = Path(__file__).resolve().parents[3] / "shared" / "schemas"
CRD_FILES = (
    "istio/customresourcedefinitions.gen.yaml",
    "keda/keda.sh_scaledobjects.yaml",
    "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
    "gateway-api/gateway.networking.k8s.io_grpcroutes.yaml",
    "gateway-api/gateway.networking.k8s.io_gateways.yaml",
)


class SchemaProblem(AssertionError):
    pass


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schemas(crds: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict JSON schema, for every served version of every CRD given."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for crd in crds:
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            # metadata is checked by the API server itself, not by the CRD's schema
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            schema["properties"].setdefault("apiVersion", {"type": "string"})
            schema["properties"].setdefault("kind", {"type": "string"})
            schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return schemas


@cache
def third_party_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    docs: list[Mapping[str, Any]] = []
    for name in CRD_FILES:
        path = SHARED_SCHEMAS / name
        if not path.is_file():
            raise SchemaProblem(f"missing CRD schema {path} (shared/schemas is laid beside the clone)")
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return crd_schemas(docs)


def validate(
    manifest: Mapping[str, Any], extra_crds: Mapping[tuple[str, str], dict[str, Any]] | None = None
) -> None:
    """Raise `SchemaProblem` unless `manifest` is valid for its kind (every Kubernetes version listed)."""
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    name = f"{key[1]} {manifest.get('metadata', {}).get('name', '?')}"
    schemas = {**third_party_schemas(), **(extra_crds or {})}
    if key in schemas:
        errors = sorted(
            jsonschema.Draft7Validator(schemas[key]).iter_errors(dict(manifest)), key=lambda e: e.path
        )
        if errors:
            found = (f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors)
            raise SchemaProblem(f"{name}: " + "; ".join(found))
        return
    if "." in key[0].split("/")[0] and not key[0].split("/")[0].endswith("k8s.io"):
        raise SchemaProblem(f"{name}: no schema for {key[0]} {key[1]}")
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(dict(manifest), version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as error:
            raise SchemaProblem(f"{name}: no Kubernetes {version} schema for {key[0]} {key[1]}") from error
        except kubernetes_validate.ValidationError as error:
            raise SchemaProblem(f"{name} (Kubernetes {version}): {error.message}") from error


def validate_all(
    manifests: Iterable[Mapping[str, Any]], extra_crds: Mapping[tuple[str, str], dict[str, Any]] | None = None
) -> None:
    problems = []
    for manifest in manifests:
        try:
            validate(manifest, extra_crds)
        except SchemaProblem as problem:
            problems.append(str(problem))
    if problems:
        raise SchemaProblem("\n".join(problems))
