"""Runtimes for the V2 protocol tests: a toy echo model, a two-output model and the iris classifier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.runtime import RunningRuntime, start_runtime
from tests.runtimes import models

MODELS = Path(__file__).resolve().parent / "models"


def toy(class_name: str, name: str, *extra: str) -> list[str]:
    return ["--class", f"Echo.{class_name}", "--code-dir", str(MODELS), "--name", name, *extra]


@pytest.fixture(scope="session")
def iris_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("v2-iris")
    models.sklearn_model(folder)
    return folder


@pytest.fixture(scope="module")
def echo() -> Iterator[RunningRuntime]:
    with start_runtime(toy("Echo", "echo", "--max-request-bytes", "200000", "--model-version", "7")) as rt:
        yield rt


@pytest.fixture(scope="module")
def pair() -> Iterator[RunningRuntime]:
    with start_runtime(toy("Pair", "pair")) as rt:
        yield rt


@pytest.fixture(scope="module")
def iris(iris_folder: Path) -> Iterator[RunningRuntime]:
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", str(iris_folder), "--name", "iris"]
    with start_runtime([*args, "--grpc-max-message-bytes", "200000"]) as rt:
        yield rt
