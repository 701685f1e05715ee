"""`seldon-mesh apply` is honest: an input with nothing to apply is an error, a local path that is not there
is refused with its field path before anything is sent, unknown fields and fields only a cluster acts on
are named on stderr; in every refusal the running deployment keeps serving, unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers.mesh import Mesh

PREDICT = "/seldon/seldon/iris-model/api/v1.0/predictions"
GOOD = {"data": {"ndarray": [[1, 2, 3, 4]]}}


def _iris(iris_dir: Path) -> dict[str, Any]:
    """The iris manifest, its model at an absolute path: variants are written outside iris_dir, which
    other modules' `up` load whole (a second iris-model there is a duplicate)."""
    loaded: dict[str, Any] = yaml.safe_load((iris_dir / "iris.yaml").read_text())
    loaded["spec"]["predictors"][0]["graph"]["modelUri"] = str(iris_dir / "model")
    return loaded


def _generation(mesh: Mesh) -> object:
    return mesh.get("iris-model")[0]["metadata"].get("generation")


def test_an_empty_file_is_an_error(mesh: Mesh, tmp_path: Path) -> None:
    before = _generation(mesh)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    result = mesh.cli("apply", "-f", str(empty))
    assert result.returncode == 1
    assert "no SeldonDeployment" in result.stderr
    assert mesh.cli("apply", "-f", "-", stdin="").returncode == 1
    assert _generation(mesh) == before


def test_a_model_uri_that_is_not_there_is_refused_with_its_path(
    mesh: Mesh, iris_dir: Path, tmp_path: Path
) -> None:
    mesh.wait_serving(PREDICT, GOOD)
    before = _generation(mesh)
    manifest = _iris(iris_dir)
    manifest["spec"]["predictors"][0]["graph"]["modelUri"] = "./no-such-model"
    bad = tmp_path / "missing-model.yaml"
    bad.write_text(yaml.safe_dump(manifest))
    result = mesh.cli("apply", "-f", str(bad))
    assert result.returncode == 1, result.stdout
    assert "spec.predictors[0].graph.modelUri" in result.stderr and "no such file" in result.stderr
    assert _generation(mesh) == before
    assert httpx.post(mesh.gateway + PREDICT, json=GOOD).status_code == 200


def test_unknown_fields_and_cluster_only_fields_are_named(mesh: Mesh, iris_dir: Path, tmp_path: Path) -> None:
    manifest = _iris(iris_dir)
    predictor = manifest["spec"]["predictors"][0]
    predictor["grahp"] = {"name": "typo"}
    predictor["componentSpecs"] = [{"hpaSpec": {"maxReplicas": 3}, "spec": {"containers": []}}]
    noted = tmp_path / "noted.yaml"
    noted.write_text(yaml.safe_dump(manifest))
    result = mesh.cli("apply", "-f", str(noted))
    assert result.returncode == 0, result.stderr
    assert "spec.predictors[0].grahp: unknown field, ignored" in result.stderr
    assert "spec.predictors[0].componentSpecs[0].hpaSpec" in result.stderr
    mesh.wait_state("iris-model", "Available")
    assert httpx.post(mesh.gateway + PREDICT, json=GOOD).status_code == 200
