"""One small `seldon-mesh up` for the fuzz suite: a Seldon single model (iris, SKLEARN_SERVER), the same
model under `protocol: v2`, and a graph averaging two copies of it (so every graph request goes through
extproc to two real runtimes). Prepackaged servers answer data that does not fit the model with 400, as
Seldon's do; a user class that raises on it answers 500 (Seldon's choice too), so none is used here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.mesh import Mesh, free_port

ROOT = Path(__file__).resolve().parents[2]

MANIFESTS = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: iris-model, namespace: seldon}
spec:
  predictors:
    - name: default
      graph: {name: classifier, implementation: SKLEARN_SERVER, modelUri: ./model}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: iris-v2, namespace: seldon}
spec:
  protocol: v2
  predictors:
    - name: default
      graph: {name: classifier, implementation: SKLEARN_SERVER, modelUri: ./model}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: pair, namespace: seldon}
spec:
  predictors:
    - name: main
      graph:
        name: average
        implementation: AVERAGE_COMBINER
        children:
          - {name: left, implementation: SKLEARN_SERVER, modelUri: ./model}
          - {name: right, implementation: SKLEARN_SERVER, modelUri: ./model}
"""

DEPLOYMENTS = ("iris-model", "iris-v2", "pair")


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("fuzz")
    subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(folder / "model")], check=True)
    (folder / "fuzz.yaml").write_text(MANIFESTS)
    running = Mesh(folder / "state", free_port()).start(folder / "fuzz.yaml")
    try:
        for name in DEPLOYMENTS:
            running.wait_state(name, "Available", timeout=120)
        yield running
    finally:
        running.stop()
        shutil.rmtree(folder / "model", ignore_errors=True)
