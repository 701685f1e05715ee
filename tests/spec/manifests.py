"""Builders for SeldonDeployment manifests used across the mesh.spec tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from mesh.spec import SpecError, parse_deployment

SPECS = Path(__file__).resolve().parent.parent / "data" / "specs"


def sample(name: str) -> dict[str, Any]:
    """A fresh copy of a manifest from tests/data/specs."""
    loaded: dict[str, Any] = yaml.safe_load((SPECS / name).read_text())
    return loaded


def iris(**spec: Any) -> dict[str, Any]:
    manifest = sample("iris.yaml")
    manifest["spec"].update(spec)
    return manifest


def node(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}


def prepackaged(name: str = "classifier", **fields: Any) -> dict[str, Any]:
    return node(name, **{"implementation": "SKLEARN_SERVER", "modelUri": "gs://bucket/iris", **fields})


def predictor(name: str, graph: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": name, "graph": graph, **fields}


def containers(*names: str) -> list[dict[str, Any]]:
    return [{"spec": {"containers": [{"name": n, "image": f"example/{n}:1"} for n in names]}}]


def with_graph(graph: dict[str, Any], **predictor_fields: Any) -> dict[str, Any]:
    manifest = iris()
    manifest["spec"]["predictors"] = [predictor("default", graph, **predictor_fields)]
    return manifest


def errors_of(manifest: dict[str, Any]) -> dict[str, str]:
    """Path -> message of every problem parse_deployment reports; fails if it accepts the manifest."""
    try:
        parse_deployment(copy.deepcopy(manifest))
    except SpecError as error:
        return {e.path: e.message for e in error.errors}
    raise AssertionError("the manifest was accepted")
