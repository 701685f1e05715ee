"""Reading SeldonDeployments from text, files and folders, as `kubectl apply -f` would.

YAML streams (`---`) and JSON (one object, or a `List` with `items`) are accepted. Errors carry the
source and the document (`iris.yaml#2`) and are collected across every document and file before one
`SpecError` is raised, so a folder is applied whole or not at all. Objects of other Kubernetes kinds
(the Namespace or ConfigMap many Seldon examples put beside their SeldonDeployments) are skipped and
listed in `Loaded.skipped`, but for a `v1` Secret, kept in `Loaded.secrets` (`secrets.py`: locally a node's
`envSecretRefName` reads it); an object of Seldon's API group with another kind, or with no kind, is
still an error (most likely a misspelt SeldonDeployment).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mesh.spec.deployment import SeldonDeployment
from mesh.spec.errors import FieldError, SpecError
from mesh.spec.parsing import parse_deployment
from mesh.spec.secrets import SecretDocument, is_secret, parse_secret
from mesh.spec.unknown import deployment_warnings, unknown_fields
from mesh.spec.vocabulary import KIND

SUFFIXES = (".yaml", ".yml", ".json")
SELDON_GROUP = "machinelearning.seldon.io"


@dataclass(frozen=True)
class Skipped:
    """An object that is not a SeldonDeployment, left for `kubectl apply` (or, locally, ignored)."""

    kind: str
    name: str
    source: str
    document: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def __str__(self) -> str:
        return f"{self.source}: skipped {self.kind} {self.name!r} (not a SeldonDeployment)"


@dataclass(frozen=True)
class Loaded:
    deployments: list[SeldonDeployment]
    skipped: list[Skipped]
    # Unknown fields, by path: ignored, as `kubectl apply` warns and the API server prunes them.
    warnings: list[FieldError] = field(default_factory=list)
    secrets: list[SecretDocument] = field(default_factory=list)


def parse_documents(
    text: str, source: str = "<input>", *, skip_other_kinds: bool = True
) -> list[SeldonDeployment]:
    """Every SeldonDeployment in `text`; empty documents and other Kubernetes kinds are left out.
    `skip_other_kinds=False` makes any other kind an error."""
    return read_documents(text, source, skip_other_kinds=skip_other_kinds).deployments


def read_documents(text: str, source: str = "<input>", *, skip_other_kinds: bool = True) -> Loaded:
    """`parse_documents`, with what was skipped."""
    found: list[tuple[SeldonDeployment, str]] = []
    loaded = Loaded([], [])
    errors = _parse(text, source, skip_other_kinds, found, loaded)
    errors += _duplicates(found)
    if errors:
        raise SpecError(errors)
    loaded.deployments.extend(deployment for deployment, _ in found)
    return loaded


def load_path(path: Path) -> list[SeldonDeployment]:
    """A manifest file, or every `*.yaml`, `*.yml` and `*.json` directly in a folder (sorted by name)."""
    return read_path(path).deployments


def read_path(path: Path) -> Loaded:
    """`load_path`, with the objects of other kinds that were skipped."""
    files = (
        sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()) if path.is_dir() else [path]
    )
    found: list[tuple[SeldonDeployment, str]] = []
    loaded = Loaded([], [])
    errors: list[FieldError] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            errors.append(FieldError("", f"cannot read: {error}", source=str(file)))
            continue
        errors += _parse(text, str(file), True, found, loaded)
    errors += _duplicates(found)
    if errors:
        raise SpecError(errors)
    loaded.deployments.extend(deployment for deployment, _ in found)
    return loaded


def _other_kind(obj: Any) -> bool:
    """A Kubernetes object of another kind: it says its apiVersion and kind, outside Seldon's group."""
    if not isinstance(obj, dict):
        return False
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not kind or kind == KIND:
        return False
    return api_version.split("/")[0] != SELDON_GROUP


def _parse(
    text: str,
    source: str,
    skip_other_kinds: bool,
    found: list[tuple[SeldonDeployment, str]],
    loaded: Loaded,
) -> list[FieldError]:
    try:
        documents = _documents(text)
    except ValueError as error:
        return [FieldError("", str(error), source=source)]
    numbered = len(documents) > 1
    errors: list[FieldError] = []
    for number, document in enumerate(documents, start=1):
        label = f"{source}#{number}" if numbered else source
        try:
            objects = _objects(document)
        except ValueError as error:
            errors.append(FieldError("items", str(error), source=label))
            continue
        for prefix, obj in objects:
            if skip_other_kinds and is_secret(obj):
                try:
                    loaded.secrets.append(parse_secret(obj, label))
                except SpecError as error:
                    errors += [e.under(prefix) for e in error.errors]
                continue
            if skip_other_kinds and _other_kind(obj):
                name = (
                    str((obj.get("metadata") or {}).get("name", ""))
                    if isinstance(obj.get("metadata"), dict)
                    else ""
                )
                loaded.skipped.append(Skipped(obj["kind"], name, label, obj))
                continue
            try:
                deployment = parse_deployment(obj)
                found.append((deployment, label))
                noted = [*unknown_fields(obj), *deployment_warnings(deployment)]
                loaded.warnings.extend(e.under(prefix).with_source(label) for e in noted)
            except SpecError as error:
                errors += [e.under(prefix).with_source(label) for e in error.errors]
    return errors


def _documents(text: str) -> list[Any]:
    """The documents of a YAML stream or a JSON text, empty ones included (so numbering matches the file)."""
    if text.lstrip().startswith(("{", "[")):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as error:
            raise ValueError(f"invalid JSON: {error}") from None
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise ValueError(f"invalid YAML: {error}") from None


def _objects(document: Any) -> list[tuple[str, Any]]:
    """The objects in one document: itself, or the items of a Kubernetes `List` (with their path)."""
    if document is None:
        return []
    if isinstance(document, dict) and str(document.get("kind", "")).endswith("List") and "items" in document:
        items = document["items"] or []
        if not isinstance(items, list):
            raise ValueError(f"must be a list, got {type(items).__name__}")
        return [(f"items[{index}]", item) for index, item in enumerate(items)]
    return [("", document)]


def _duplicates(found: list[tuple[SeldonDeployment, str]]) -> list[FieldError]:
    first: dict[tuple[str, str], str] = {}
    errors: list[FieldError] = []
    for deployment, label in found:
        namespace, name = deployment.key
        if deployment.key in first:
            message = (
                f"deployment {name!r} in namespace {namespace!r} is also defined in {first[deployment.key]}"
            )
            errors.append(FieldError("metadata.name", message, source=label))
        first.setdefault(deployment.key, label)
    return errors
