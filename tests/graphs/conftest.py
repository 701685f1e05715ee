"""One `seldon-mesh up` for all graph flows: Seldon's example graphs (tests/data/graphs/graphs.yaml),
a Python-class node in front of a real MLServer, and nodes that fail, hang or answer garbage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.graphs.servers import JunkServer, MLServer
from tests.helpers.mesh import Mesh, free_port

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "tests/data/graphs"

EXTRA = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: mixed
  annotations:
    protocol.seldon-mesh.io/iris: v2
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - name: scaler
                image: example/affine:0.1
                workingDir: {graphs}
                env: [{{name: MODEL_NAME, value: Affine}}]
      graph:
        name: scaler
        type: TRANSFORMER
        parameters: [{{name: tag, value: scaler, type: STRING}}]
        children:
          - name: iris
            type: MODEL
            endpoint:
              {{service_host: 127.0.0.1, http_port: {mlserver_http}, grpc_port: {mlserver_grpc}, type: REST}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: faulty
  annotations:
    seldon.io/rest-timeout: "1000"
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - name: failing
                workingDir: {graphs}
                env: [{{name: MODEL_NAME, value: Failing}}]
              - name: sleepy
                workingDir: {graphs}
                env: [{{name: MODEL_NAME, value: Sleepy}}]
      graph:
        name: average
        implementation: AVERAGE_COMBINER
        children:
          - {{name: failing, type: MODEL}}
          - {{name: sleepy, type: MODEL}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: thompson
spec:
  predictors:
    - name: main
      graph:
        name: ts
        implementation: THOMPSON_SAMPLING
        parameters:
          - {{name: n_branches, value: "2", type: INT}}
          - {{name: seed, value: "7", type: INT}}
        children:
          - {{name: left, implementation: SIMPLE_MODEL}}
          - {{name: right, implementation: SIMPLE_MODEL}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: junky
spec:
  predictors:
    - name: main
      graph:
        name: average
        implementation: AVERAGE_COMBINER
        children:
          - name: junk
            type: MODEL
            endpoint: {{service_host: 127.0.0.1, http_port: {junk}, type: REST}}
"""

IRIS_V2 = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: iris-v2
spec:
  protocol: v2
  predictors:
    - name: main
      graph:
        name: iris
        type: MODEL
        endpoint: {{service_host: 127.0.0.1, http_port: {http}, grpc_port: {grpc}, type: REST}}
"""

DEPLOYMENTS = (
    "iris-v2",
    "chain",
    "grpc-chain",
    "combiner",
    "abtest",
    "bandit",
    "thompson",
    "single",
    "mixed",
    "faulty",
    "junky",
)


@pytest.fixture(scope="session")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServer]:
    server = MLServer(tmp_path_factory.mktemp("mlserver")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def junk() -> Iterator[JunkServer]:
    server = JunkServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory, mlserver: MLServer, junk: JunkServer) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("graphs")
    extra = folder / "extra.yaml"
    extra.write_text(
        EXTRA.format(
            graphs=GRAPHS, mlserver_http=mlserver.http_port, mlserver_grpc=mlserver.grpc_port, junk=junk.port
        )
        + "---"
        + IRIS_V2.format(http=mlserver.http_port, grpc=mlserver.grpc_port)
    )
    running = Mesh(folder / "state", free_port()).start(GRAPHS / "graphs.yaml", extra)
    try:
        mlserver.wait_ready()  # it has been loading its model while the mesh started
        for name in DEPLOYMENTS:
            running.wait_state(name, "Available", timeout=120)
        yield running
    finally:
        running.stop()
