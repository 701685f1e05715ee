"""Fixtures for the local mesh flows: the trained iris example in a temp folder and a running `up`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.mesh import Mesh, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/iris as a user has it after `make run` trained the model."""
    folder = tmp_path_factory.mktemp("iris")
    shutil.copy(ROOT / "examples/iris/iris.yaml", folder / "iris.yaml")
    subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(folder / "model")], check=True)
    return folder


@pytest.fixture(scope="session")
def pyclass_dir() -> Path:
    return ROOT / "tests/data/local/pyclass"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, iris_dir: Path) -> Iterator[Mesh]:
    running = Mesh(tmp_path_factory.mktemp("mesh") / "state", free_port()).start(iris_dir)
    try:
        running.wait_state("iris-model", "Available")
        yield running
    finally:
        running.stop()
