"""What Seldon's executor answers at a deployment, through the real gateway, for single models and graphs:
the probes and health endpoints (`/ready`, `/live`, `/health/ping`, `/api/v1.0/health/status`,
`/api/v1.0/status/<model>`, V2 `/v2/health/*` and model readiness over REST and gRPC), the graph
metadata (`/api/v1.0/metadata`, per model, gRPC GraphMetadata), the V2 binary tensor extension with
tritonclient, and the Swagger UI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import empty_pb2

from generated.inference import dataplane_pb2 as v2_pb
from tests.helpers.grpc_clients import seldon_client, v2_client
from tests.helpers.iris_mesh import IRIS_MODEL, IRIS_V2, average_pair, iris_mesh, manifests
from tests.helpers.mesh import Mesh

ROOT = Path(__file__).resolve().parents[2]

# A node whose health Seldon's wrapper asks through `health_status()`; it reports what it was given.
HEALTH = """
from seldon_core.flask_utils import SeldonMicroserviceException


class Health:
    def __init__(self, healthy="yes"):
        self.healthy = healthy

    def transform_input(self, X, features_names=None):
        return X

    def health_status(self):
        if self.healthy != "yes":
            raise SeldonMicroserviceException("the disk is full", status_code=500, reason="UNHEALTHY")
        return {"healthy": self.healthy}
"""
NODE = """
              - name: {name}
                image: example/health:0.1
                env: [{{name: MODEL_NAME, value: Health}}, {{name: SERVICE_TYPE, value: TRANSFORMER}}]"""
GRAPH = """
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: {name}, namespace: seldon}}
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:{container}
      graph:
        name: gate
        type: TRANSFORMER
        parameters: [{{name: healthy, value: "{healthy}", type: STRING}}]
        children:
          - {{name: classifier, implementation: SKLEARN_SERVER, modelUri: ./model}}
"""
MANIFESTS = (
    manifests(IRIS_MODEL, IRIS_V2, average_pair("pair-v2", v2=True))
    + GRAPH.format(name="gated", container=NODE.format(name="gate"), healthy="yes")
    + GRAPH.format(name="sick", container=NODE.format(name="gate"), healthy="no")
)
DEPLOYMENTS = ("iris-model", "iris-v2", "pair-v2", "gated", "sick")
IRIS = {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("api")
    with iris_mesh(folder, MANIFESTS, DEPLOYMENTS, timeout=90, files={"Health.py": HEALTH}) as running:
        running.wait_serving("/seldon/seldon/gated/api/v1.0/predictions", IRIS)
        yield running


def _get(mesh: Mesh, deployment: str, path: str) -> httpx.Response:
    return httpx.get(f"{mesh.gateway}/seldon/seldon/{deployment}{path}", timeout=30)


@pytest.mark.parametrize("deployment", ["iris-model", "gated"])
def test_probes_answer_as_seldons_executor(mesh: Mesh, deployment: str) -> None:
    assert _get(mesh, deployment, "/live").status_code == 200
    assert _get(mesh, deployment, "/ready").status_code == 200
    ping = _get(mesh, deployment, "/health/ping")
    assert (ping.status_code, ping.text) == (200, "pong")


def test_a_graph_is_ready_only_when_every_node_is_healthy(mesh: Mesh) -> None:
    sick = _get(mesh, "sick", "/ready")
    assert sick.status_code == 503, sick.text
    assert "gate" in sick.json()["status"]["info"] and "the disk is full" in sick.json()["status"]["info"]
    assert _get(mesh, "sick", "/live").status_code == 200  # alive all the same
    assert _get(mesh, "sick", "/api/v1.0/health/status").status_code == 503
    # the classifier below it is fine, and asked alone says so
    assert _get(mesh, "sick", "/api/v1.0/status/classifier").status_code == 200


def test_status_of_a_graph_node_is_its_health_status(mesh: Mesh) -> None:
    status = _get(mesh, "gated", "/api/v1.0/status/gate")
    assert status.status_code == 200, status.text
    assert status.json()["jsonData"] == {"healthy": "yes"}  # what health_status() returned
    assert _get(mesh, "gated", "/api/v1.0/health/status").json()["jsonData"] == {"healthy": "yes"}
    assert _get(mesh, "gated", "/api/v0.1/status/classifier").status_code == 200
    missing = _get(mesh, "gated", "/api/v1.0/status/nobody")
    assert missing.status_code == 404 and missing.json()["status"]["status"] == "FAILURE"


def test_status_of_a_single_model(mesh: Mesh) -> None:
    status = _get(mesh, "iris-model", "/api/v1.0/status/classifier")
    assert status.status_code == 200, status.text
    assert status.json()["status"]["status"] == "SUCCESS"
    assert _get(mesh, "iris-model", "/api/v1.0/health/status").status_code == 200
    assert _get(mesh, "iris-model", "/api/v1.0/status/nobody").status_code == 404


@pytest.mark.parametrize("deployment", ["iris-v2", "pair-v2"])
def test_v2_health_over_rest_and_grpc(mesh: Mesh, deployment: str) -> None:
    model = "left" if deployment == "pair-v2" else "classifier"  # a graph node, or the single model
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{model}/ready"):
        assert _get(mesh, deployment, path).status_code == 200, path
    with grpc.insecure_channel(mesh.gateway.removeprefix("http://")) as channel:
        stub = v2_client(channel)
        metadata = (("seldon", deployment), ("namespace", "seldon"))
        assert stub.ServerLive(v2_pb.ServerLiveRequest(), metadata=metadata, timeout=30).live
        assert stub.ServerReady(v2_pb.ServerReadyRequest(), metadata=metadata, timeout=30).ready
        request = v2_pb.ModelReadyRequest(name=model)
        assert stub.ModelReady(request, metadata=metadata, timeout=30).ready


def test_graph_metadata_at_a_graph_and_per_model(mesh: Mesh) -> None:
    graph = _get(mesh, "gated", "/api/v1.0/metadata")
    assert graph.status_code == 200, graph.text
    body = graph.json()
    assert set(body) == {"name", "models", "graphinputs", "graphoutputs"}
    assert body["name"] == "main" and set(body["models"]) == {"gate", "classifier"}
    model = _get(mesh, "gated", "/api/v1.0/metadata/classifier")
    assert model.status_code == 200 and model.json() == body["models"]["classifier"]


def test_graph_metadata_at_a_single_model(mesh: Mesh) -> None:
    graph = _get(mesh, "iris-model", "/api/v1.0/metadata")
    assert graph.status_code == 200, graph.text
    body = graph.json()
    assert set(body) == {"name", "models", "graphinputs", "graphoutputs"}
    assert body["name"] == "default" and set(body["models"]) == {"classifier"}
    model = _get(mesh, "iris-model", "/api/v1.0/metadata/classifier")
    assert model.status_code == 200 and model.json() == body["models"]["classifier"]


def test_graph_metadata_over_grpc_at_a_single_model(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.gateway.removeprefix("http://")) as channel:
        stub = seldon_client(channel)
        metadata = (("seldon", "iris-model"), ("namespace", "seldon"))
        graph = stub.GraphMetadata(empty_pb2.Empty(), metadata=metadata, timeout=30)
    assert graph.name == "default" and list(graph.models) == ["classifier"]


TRITON_CLIENT = ROOT / "tests/v2/triton_client.py"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]


def _graph_v2(mesh: Mesh, deployment: str, model: str) -> dict[str, Any]:
    body = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [3, 4], "data": ROWS}]}
    url = f"{mesh.gateway}/seldon/seldon/{deployment}/v2/models/{model}/infer"
    answer = httpx.post(url, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["outputs"][0])


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize(("deployment", "model"), [("pair-v2", "average"), ("iris-v2", "classifier")])
def test_tritonclient_with_binary_data(mesh: Mesh, transport: str, deployment: str, model: str) -> None:
    plain = _graph_v2(mesh, deployment, model)
    url = f"127.0.0.1:{mesh.port}" + (f"/seldon/seldon/{deployment}" if transport == "http" else "")
    spec = {
        "transport": transport,
        "url": url,
        "headers": {"seldon": deployment, "namespace": "seldon"},
        "model": model,
        "rows": ROWS,
        "output": plain["name"],
    }
    result = subprocess.run(
        [sys.executable, str(TRITON_CLIENT), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["ready"] and answer["id"] == f"triton-{transport}"
    numbers = np.asarray(answer["output"])
    assert list(numbers.shape) == plain["shape"]
    np.testing.assert_allclose(numbers.ravel(), np.asarray(plain["data"], dtype=float).ravel(), rtol=1e-5)


def test_binary_request_and_answer_at_a_graph_by_hand(mesh: Mesh) -> None:
    header = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [3, 4], "parameters": {"binary_data_size": 48}}
        ],
        "parameters": {"binary_data_output": True},
    }
    head = json.dumps(header).encode()
    url = f"{mesh.gateway}/seldon/seldon/pair-v2/v2/models/average/infer"
    headers = {"inference-header-content-length": str(len(head)), "content-type": "application/octet-stream"}
    answer = httpx.post(url, content=head + np.asarray(ROWS, dtype="<f4").tobytes(), headers=headers)
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    output = json.loads(answer.content[:length])["outputs"][0]
    assert "data" not in output and output["parameters"]["binary_data_size"] == len(answer.content) - length
    dtype = {"FP32": "<f4", "FP64": "<f8"}[output["datatype"]]
    raw = np.frombuffer(answer.content[length:], dtype=dtype).reshape(output["shape"])
    np.testing.assert_allclose(raw.ravel(), np.asarray(_graph_v2(mesh, "pair-v2", "average")["data"]).ravel())
    short = httpx.post(url, content=head + b"\0" * 47, headers=headers)  # one byte less than it says
    assert short.status_code == 400 and "binary_data_size" in short.json()["error"]


@pytest.mark.parametrize("deployment", ["gated", "iris-model"])
def test_swagger_ui_of_a_graph_and_a_single_model(mesh: Mesh, deployment: str) -> None:
    page_url = f"{mesh.gateway}/seldon/seldon/{deployment}/api/v1.0/doc/"
    page = httpx.get(page_url, timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # every asset and the document the page loads come from the mesh itself (the page works offline)
    assets = re.findall(r'(?:href|src)="([^"]+)"', page.text)
    (document,) = re.findall(r'url: "([^"]+)"', page.text)
    assert assets and not [a for a in [*assets, document] if "//" in a], assets
    for asset in assets:
        loaded = httpx.get(urljoin(page_url, asset), timeout=30)
        assert loaded.status_code == 200 and len(loaded.content) > 10_000, asset
    spec = httpx.get(urljoin(page_url, document), timeout=30).json()
    assert spec["openapi"].startswith("3.") and "/api/v1.0/predictions" in spec["paths"]
    redirect = httpx.get(page_url.rstrip("/"), timeout=30)
    assert (
        redirect.status_code == 307
        and urljoin(page_url.rstrip("/"), redirect.headers["location"]) == page_url
    )
