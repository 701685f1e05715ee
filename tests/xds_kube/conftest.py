"""Real iris runtimes (the examples/iris model, trained once) that the emulated EndpointSlices point at."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.runtime import RunningRuntime, start_runtime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("iris") / "model"
    subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(folder)], check=True)
    return folder


@pytest.fixture(scope="module")
def runtimes(iris_model: Path) -> Iterator[tuple[RunningRuntime, RunningRuntime]]:
    """Two runtimes of the same model: the pods of two predictors ("main" and "canary")."""
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", str(iris_model), "--name", "classifier"]
    with start_runtime(args) as main, start_runtime(args) as canary:
        yield main, canary
