"""Model folders for each prepackaged runtime, trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtimes import models


@pytest.fixture(scope="session")
def model_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runtime-models")
    folders: dict[str, Path] = {}
    for name, build in (
        ("SKLEARN_SERVER", models.sklearn_model),
        ("XGBOOST_SERVER", models.xgboost_model),
        ("LIGHTGBM_SERVER", models.lightgbm_model),
        ("ONNX_SERVER", models.onnx_model),
    ):
        folder = root / name.lower()
        folder.mkdir()
        build(folder)
        folders[name] = folder
    folders["MLFLOW_SERVER"] = models.mlflow_model(root)
    return folders
