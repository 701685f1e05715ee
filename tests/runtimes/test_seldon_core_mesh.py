"""A Seldon user's wrapper classes (importing seldon_core) in a real `seldon-mesh up`: through Envoy for a
single model, and through extproc for a transformer -> model graph; a SeldonMicroserviceException's status
and reason reach the client at the gateway."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.mesh import Mesh, free_port, wait_for

MODELS = Path(__file__).resolve().parents[1] / "model_runtime" / "seldon_core_models"

MANIFEST = """\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: iris-compat
spec:
  predictors:
    - name: default
      componentSpecs:
        - spec:
            containers:
              - name: classifier
                image: my-registry/iris-classifier:1.0
                command: ["seldon-core-microservice", "IrisClassifier", "--service-type", "MODEL"]
                env:
                  - name: CUSTOM_SERVICE_PORT
                    value: "{custom_port}"
      graph:
        name: classifier
        type: MODEL
        parameters:
          - {{name: multiplier, value: "2", type: FLOAT}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: raw-graph
spec:
  predictors:
    - name: default
      componentSpecs:
        - spec:
            containers:
              - name: doubler
                image: my-registry/raw-transformer:1.0
                env:
                  - {{name: MODEL_NAME, value: RawTransformer}}
                  - {{name: SERVICE_TYPE, value: TRANSFORMER}}
              - name: classifier
                image: my-registry/iris-classifier:1.0
                env:
                  - {{name: MODEL_NAME, value: IrisClassifier}}
                  - {{name: CUSTOM_SERVICE_PORT, value: "{custom_port_2}"}}
      graph:
        name: doubler
        type: TRANSFORMER
        children:
          - name: classifier
            type: MODEL
            children: []
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("seldon-core-user")
    for name in ("IrisClassifier.py", "RawTransformer.py"):
        shutil.copy(MODELS / name, folder / name)
    text = MANIFEST.format(custom_port=free_port(), custom_port_2=free_port())
    (folder / "deployments.yaml").write_text(text)
    running = Mesh(folder / "state", free_port()).start(folder / "deployments.yaml")
    try:
        running.wait_state("iris-compat", "Available")
        running.wait_state("raw-graph", "Available")
        yield running
    finally:
        running.stop()


def test_a_single_model_answers_through_the_gateway(mesh: Mesh) -> None:
    body = {"data": {"names": ["a", "b"], "ndarray": [[0.25, 3.0]]}}
    out = mesh.wait_serving("/seldon/default/iris-compat/api/v1.0/predictions", body).json()
    assert out["data"]["names"] == ["setosa", "versicolor"]
    assert out["data"]["ndarray"] == [[0.5, 0.5]]


def test_the_exception_status_and_reason_reach_the_gateway_client(mesh: Mesh) -> None:
    mesh.wait_serving("/seldon/default/iris-compat/api/v1.0/predictions", {"data": {"ndarray": [[0.1]]}})
    path = "/seldon/default/iris-compat/api/v1.0/predictions"
    response = httpx.post(mesh.gateway + path, json={"data": {"ndarray": [[-1.0, 2.0]]}}, timeout=10)
    assert response.status_code == 400
    status = response.json()["status"]
    assert (status["info"], status["reason"]) == ("negative measurements", "MY_REASON")


def test_a_graph_runs_the_raw_transformer_then_the_model(mesh: Mesh) -> None:
    path = "/seldon/default/raw-graph/api/v1.0/predictions"
    replies: list[httpx.Response] = []

    def answered() -> bool:
        replies.append(httpx.post(mesh.gateway + path, json={"data": {"ndarray": [[0.25, 1.0]]}}, timeout=30))
        return replies[-1].status_code == 200

    try:
        wait_for(answered, 120, "the graph to answer 200")
    except AssertionError as error:
        last = (replies[-1].status_code, replies[-1].text) if replies else None
        raise AssertionError(f"{error}; last reply {last}\n{mesh.log()[-3000:]}") from None
    out = replies[-1].json()
    assert out["data"]["names"] == ["setosa", "versicolor"]
    assert out["data"]["ndarray"] == [[0.5, 0.5]]  # doubled by the transformer, multiplier 1
    response = httpx.post(mesh.gateway + path, json={"data": {"ndarray": [[-1.0, 2.0]]}}, timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["status"]["reason"] == "MY_REASON"
