"""A real `seldon-mesh up` with logged graphs and a logged single model, and a CloudEvents sink.

Runtimes spool under `SELDON_MESH_SPOOL_DIR` (set here for the mesh's processes), extproc under the mesh's
state dir; both survive a SIGKILL of the process, which the supervisor restarts on the same spool.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.mesh import Mesh, free_port, wait_for
from tests.observability.sink import Received, RecordingSink

GRAPHS = Path(__file__).resolve().parents[1] / "data/graphs"
REQUEST = "io.seldon.serving.inference.request"
RESPONSE = "io.seldon.serving.inference.response"
FEEDBACK = "io.seldon.serving.feedback"
BODY = {"data": {"ndarray": [[1.0, 2.0]]}}

_AFFINE = "image: example/affine:0.1, workingDir: {graphs}, env: [{{name: MODEL_NAME, value: Affine}}]"
MANIFEST = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: mean}}
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: double, AFFINE}}
              - {{name: quadruple, AFFINE}}
      graph:
        name: average
        implementation: AVERAGE_COMBINER
        logger: {{mode: all, url: "{sink}"}}
        children:
          - {{name: double, type: MODEL, parameters: [{{name: scale, value: "2", type: FLOAT}}]}}
          - {{name: quadruple, type: MODEL, parameters: [{{name: scale, value: "4", type: FLOAT}}]}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: ab}}
spec:
  predictors:
    - name: main
      graph:
        name: split
        implementation: RANDOM_ABTEST
        parameters: [{{name: ratioA, value: "0.5", type: FLOAT}}]
        logger: {{mode: all, url: "{sink}"}}
        children:
          - {{name: a, implementation: SIMPLE_MODEL}}
          - {{name: b, implementation: SIMPLE_MODEL}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: chain}}
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: pre, AFFINE}}
              - {{name: model, AFFINE}}
      graph:
        name: pre
        type: TRANSFORMER
        parameters: [{{name: offset, value: "1", type: FLOAT}}]
        logger: {{mode: all, url: "{sink}"}}
        children:
          - name: model
            type: MODEL
            parameters: [{{name: scale, value: "10", type: FLOAT}}]
            logger: {{mode: all, url: "{inner}"}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: single}}
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: model, AFFINE}}
      graph:
        name: model
        type: MODEL
        parameters: [{{name: scale, value: "3", type: FLOAT}}]
        logger: {{mode: all, url: "{sink}"}}
""".replace("AFFINE", _AFFINE)
DEPLOYMENTS = ("mean", "ab", "chain", "single")


def predictions(name: str) -> str:
    return f"/seldon/default/{name}/api/v1.0/predictions"


@dataclass
class LoggedMesh:
    mesh: Mesh
    sink: RecordingSink  # every root logger's, and the single model's
    inner: RecordingSink  # the chain's inner node's logger
    spool_root: Path

    def events(self, puid: str, sink: RecordingSink | None = None) -> list[Received]:
        return [r for r in (sink or self.sink).snapshot() if r.headers.get("Ce-Requestid") == puid]

    def wait_events(self, puid: str, count: int, sink: RecordingSink | None = None) -> list[Received]:
        found: list[Received] = wait_for(
            lambda: len(e := self.events(puid, sink)) >= count and e, 30, f"{count} events of {puid}"
        )
        return found

    def post(self, name: str, puid: str, body: Any = BODY) -> httpx.Response:
        return httpx.post(
            self.mesh.gateway + predictions(name), json=body, headers={"Seldon-Puid": puid}, timeout=30
        )


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    recording = RecordingSink()
    recording.start()
    yield recording
    recording.stop()


@pytest.fixture(scope="package")
def logged_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggedMesh]:
    folder = tmp_path_factory.mktemp("payload-log-mesh")
    sink, inner = RecordingSink(), RecordingSink()
    sink.start()
    inner.start()
    spec = folder / "logged.yaml"
    spec.write_text(MANIFEST.format(graphs=GRAPHS, sink=sink.url, inner=inner.url))
    spool_root = folder / "runtime-spools"
    previous = os.environ.get("SELDON_MESH_SPOOL_DIR")
    os.environ["SELDON_MESH_SPOOL_DIR"] = str(spool_root)  # inherited by `up` and its runtimes
    try:
        mesh = Mesh(folder / "state", free_port()).start(spec)
    finally:
        if previous is None:
            del os.environ["SELDON_MESH_SPOOL_DIR"]
        else:
            os.environ["SELDON_MESH_SPOOL_DIR"] = previous
    try:
        for name in DEPLOYMENTS:
            mesh.wait_state(name, "Available", timeout=120)
            mesh.wait_serving(predictions(name), BODY)
        yield LoggedMesh(mesh, sink, inner, spool_root)
    finally:
        mesh.stop()
        sink.stop()
        inner.stop()
