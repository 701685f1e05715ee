"""TENSORFLOW_SERVER through the real mesh (`seldon-mesh up`, Envoy, runtimes with TensorFlow workers):
a SavedModel the test builds answers TF Serving's REST API at Seldon's paths and its gRPC API by the
`seldon`/`namespace` headers (a grpc stub and grpcurl over the gateway's reflection) under
`protocol: tensorflow`, and Seldon v1 requests, translated as Seldon's tfserving proxy does, in a
two-node graph under `protocol: seldon`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from generated.tensorflow import tensor_pb2
from generated.tensorflow.serving import apis_pb2 as tfs
from model_runtime.codecs import decode_tftensor_proto, encode_tftensor_proto
from tests.helpers.grpc_clients import tf_model_client, tf_prediction_client
from tests.helpers.mesh import Mesh, free_port, wait_for
from tests.helpers.tensorflow import build_saved_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

M = TypeVar("M", bound=Message)
GRPCURL = Path(sys.executable).parent / "grpcurl"
TF_BASE = "/seldon/seldon/tf-model/v1/models"
TF_HEADERS = (("seldon", "tf-model"), ("namespace", "seldon"))
GRAPH = "/seldon/seldon/tf-graph/api/v1.0/predictions"

MANIFESTS = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: tf-model, namespace: seldon}
spec:
  protocol: tensorflow
  predictors:
    - name: default
      graph: {name: toy, implementation: TENSORFLOW_SERVER, modelUri: ./toy}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: tf-graph, namespace: seldon}
spec:
  predictors:
    - name: default
      graph:
        name: first
        implementation: TENSORFLOW_SERVER
        modelUri: ./toy
        parameters: [{name: signature_name, type: STRING, value: serving_default}]
        children:
          - name: second
            implementation: TENSORFLOW_SERVER
            modelUri: ./toy
            parameters: [{name: model_output, type: STRING, value: "y"}]
"""


@pytest.fixture(scope="module")
def tf_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("tf-mesh")
    build_saved_model(folder / "toy")  # builds TensorFlow's env first, if this machine has none yet
    (folder / "tf.yaml").write_text(MANIFESTS)
    running = Mesh(tmp_path_factory.mktemp("tf-state") / "state", free_port()).start(folder / "tf.yaml")
    try:
        running.wait_state("tf-model", "Available", timeout=240)
        running.wait_state("tf-graph", "Available", timeout=240)
        yield running
    finally:
        running.stop()


def _post(mesh: Mesh, path: str, body: Any) -> httpx.Response:
    return httpx.post(mesh.gateway + path, json=body, timeout=60)


def test_tf_serving_rest_through_the_gateway(tf_mesh: Mesh) -> None:
    predicted = tf_mesh.wait_serving(f"{TF_BASE}/toy:predict", {"instances": [[1.0, 2.0]]})
    assert predicted.json() == {"predictions": [[3.0, 5.0]]}
    assert predicted.headers["seldon-predictor"] == "default"
    columnar = _post(
        tf_mesh, f"{TF_BASE}/toy:predict", {"signature_name": "two", "inputs": {"a": [1.0], "b": [2.0]}}
    )
    assert columnar.json() == {"outputs": {"sum": [3.0], "product": [2.0]}}
    classified = _post(
        tf_mesh, f"{TF_BASE}/toy:classify", {"signature_name": "classify", "examples": [{"x": [0.5, 1.5]}]}
    )
    assert classified.json() == {"result": [[["neg", 0.5], ["pos", 1.5]]]}
    regressed = _post(
        tf_mesh, f"{TF_BASE}/toy:regress", {"signature_name": "regress", "examples": [{"x": [0.5, 1.5]}]}
    )
    assert regressed.json() == {"result": [2.0]}
    status = httpx.get(tf_mesh.gateway + f"{TF_BASE}/toy", timeout=30).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    metadata = httpx.get(tf_mesh.gateway + f"{TF_BASE}/toy/metadata", timeout=30).json()
    assert "serving_default" in metadata["metadata"]["signature_def"]["signature_def"]
    bad = _post(tf_mesh, f"{TF_BASE}/toy:predict", {"instances": [[1.0, 2.0, 3.0]]})
    assert bad.status_code == 400
    assert "shape" in bad.json()["error"]
    missing = _post(tf_mesh, f"{TF_BASE}/other:predict", {"instances": [[1.0, 2.0]]})
    assert missing.status_code == 404


def _tensor(array: np.ndarray[Any, Any]) -> tensor_pb2.TensorProto:
    out = tensor_pb2.TensorProto()
    encode_tftensor_proto(array, out)
    return out


def test_tf_serving_grpc_through_the_gateway(tf_mesh: Mesh) -> None:
    tf_mesh.wait_serving(f"{TF_BASE}/toy:predict", {"instances": [[1.0, 2.0]]})
    with grpc.insecure_channel(f"127.0.0.1:{tf_mesh.port}") as channel:
        stub = tf_prediction_client(channel)
        request = tfs.PredictRequest()
        request.model_spec.name = "toy"
        request.inputs["x"].CopyFrom(_tensor(np.array([[0.0, 1.0]], dtype=np.float32)))
        response = stub.Predict(request, metadata=TF_HEADERS, timeout=60)
        np.testing.assert_array_equal(decode_tftensor_proto(response.outputs["y"]), [[1.0, 3.0]])
        status_request = tfs.GetModelStatusRequest()
        status_request.model_spec.name = "toy"
        models = tf_model_client(channel)
        status = models.GetModelStatus(status_request, metadata=TF_HEADERS, timeout=60)
        assert status.model_version_status[0].state == tfs.ModelVersionStatus.AVAILABLE


def _grpcurl(mesh: Mesh, method: str, body: dict[str, Any], answer: M) -> M:
    """Call `method` with grpcurl (reflection through the gateway); its JSON answer parsed into `answer`."""
    headers = [arg for key, value in TF_HEADERS for arg in ("-H", f"{key}: {value}")]
    done = subprocess.run(
        [str(GRPCURL), "-plaintext", *headers, "-d", json.dumps(body), f"127.0.0.1:{mesh.port}", method],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json_format.Parse(done.stdout, answer)


def test_grpcurl_through_the_gateway_by_reflection(tf_mesh: Mesh) -> None:
    tf_mesh.wait_serving(f"{TF_BASE}/toy:predict", {"instances": [[1.0, 2.0]]})
    tensor = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": 1}, {"size": 2}]}, "float_val": [1, 1]}
    body = {"model_spec": {"name": "toy"}, "inputs": {"x": tensor}}
    predicted = _grpcurl(tf_mesh, "tensorflow.serving.PredictionService/Predict", body, tfs.PredictResponse())
    np.testing.assert_array_equal(decode_tftensor_proto(predicted.outputs["y"]), [[3.0, 3.0]])
    assert (predicted.model_spec.name, predicted.model_spec.version.value) == ("toy", 1)
    metadata = _grpcurl(
        tf_mesh,
        "tensorflow.serving.PredictionService/GetModelMetadata",
        {"model_spec": {"name": "toy"}, "metadata_field": ["signature_def"]},
        tfs.GetModelMetadataResponse(),
    )
    signature_map = tfs.SignatureDefMap()
    assert metadata.metadata["signature_def"].Unpack(signature_map)
    assert set(signature_map.signature_def["two"].inputs) == {"a", "b"}


def test_seldon_v1_through_a_tensorflow_graph(tf_mesh: Mesh) -> None:
    """first(x) = 2x + 1 feeds second: [[1, 2]] -> [[3, 5]] -> [[7, 11]], in the request's data kind."""
    answer = tf_mesh.wait_serving(GRAPH, {"data": {"ndarray": [[1.0, 2.0]]}}, timeout=120)
    assert answer.json()["data"]["ndarray"] == [[7.0, 11.0]]
    tensor = _post(tf_mesh, GRAPH, {"data": {"tensor": {"shape": [1, 2], "values": [0.0, 0.0]}}})
    assert tensor.json()["data"]["tensor"] == {"shape": [1, 2], "values": [3.0, 3.0]}
    bad = _post(tf_mesh, GRAPH, {"data": {"ndarray": [["a", "b"]]}})
    assert bad.status_code == 400
    assert bad.json()["status"]["status"] == "FAILURE"
    wait_for(
        lambda: _post(tf_mesh, GRAPH, {"data": {"ndarray": [[0.0, 1.0]]}}).status_code == 200, 30, "the graph"
    )
