"""Reading SeldonDeployments from text, files and folders, as `kubectl apply -f` would.

YAML streams (`---`) and JSON (one object, or a `List` with `items`) are accepted. Errors carry the
source and the document (`iris.yaml#2`) and are collected across every document and file before one
`SpecError` is raised, so a folder is applied whole or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mesh.spec.deployment import SeldonDeployment
from mesh.spec.errors import FieldError, SpecError
from mesh.spec.parsing import parse_deployment
from mesh.spec.vocabulary import KIND

SUFFIXES = (".yaml", ".yml", ".json")


def parse_documents(
    text: str, source: str = "<input>", *, skip_other_kinds: bool = False
) -> list[SeldonDeployment]:
    """Every SeldonDeployment in `text`; empty documents are ignored. With `skip_other_kinds`, objects of
    another kind (a ConfigMap next to the model) are skipped instead of reported."""
    deployments, errors = _parse(text, source, skip_other_kinds)
    errors += _duplicates(deployments)
    if errors:
        raise SpecError(errors)
    return [deployment for deployment, _ in deployments]


def load_path(path: Path) -> list[SeldonDeployment]:
    """A manifest file, or every `*.yaml`, `*.yml` and `*.json` directly in a folder (sorted by name).
    In a folder, documents that are not SeldonDeployments are skipped; in a named file they are errors."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        skip = True
    else:
        files, skip = [path], False
    found: list[tuple[SeldonDeployment, str]] = []
    errors: list[FieldError] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            errors.append(FieldError("", f"cannot read: {error}", source=str(file)))
            continue
        deployments, file_errors = _parse(text, str(file), skip)
        found += deployments
        errors += file_errors
    errors += _duplicates(found)
    if errors:
        raise SpecError(errors)
    return [deployment for deployment, _ in found]


def _parse(
    text: str, source: str, skip_other_kinds: bool
) -> tuple[list[tuple[SeldonDeployment, str]], list[FieldError]]:
    try:
        documents = _documents(text)
    except ValueError as error:
        return [], [FieldError("", str(error), source=source)]
    numbered = len(documents) > 1
    found: list[tuple[SeldonDeployment, str]] = []
    errors: list[FieldError] = []
    for number, document in enumerate(documents, start=1):
        label = f"{source}#{number}" if numbered else source
        try:
            objects = _objects(document)
        except ValueError as error:
            errors.append(FieldError("items", str(error), source=label))
            continue
        for prefix, obj in objects:
            if skip_other_kinds and not (isinstance(obj, dict) and obj.get("kind") == KIND):
                continue
            try:
                found.append((parse_deployment(obj), label))
            except SpecError as error:
                errors += [e.under(prefix).with_source(label) for e in error.errors]
    return found, errors


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
