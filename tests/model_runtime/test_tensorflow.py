"""TENSORFLOW_SERVER in a real runtime process: a SavedModel built by the test (tests/helpers/tensorflow.py)
answering TF Serving's REST and gRPC API and Seldon's, with TensorFlow in its own environment."""

from __future__ import annotations

import base64
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import json_format

from generated.seldon import prediction_pb2 as pb
from generated.seldon import prediction_pb2_grpc as pb_grpc
from generated.tensorflow import signature_pb2, tensor_pb2
from generated.tensorflow.serving import apis_pb2 as tfs
from generated.tensorflow.serving import apis_pb2_grpc as tfs_grpc
from model_runtime.codecs import decode_tftensor_proto, encode_tftensor_proto
from tests.helpers.ports import free_port
from tests.helpers.runtime import RunningRuntime, start_runtime
from tests.helpers.tensorflow import build_saved_model

pytestmark = pytest.mark.timeout(900)
METRICS_PORT = free_port()  # the first run builds TensorFlow's environment


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_saved_model(tmp_path_factory.mktemp("tf") / "toy")


@pytest.fixture(scope="module")
def runtime(model_dir: Path) -> Iterator[RunningRuntime]:
    args = ["--implementation", "TENSORFLOW_SERVER", "--model-uri", str(model_dir), "--name", "toy"]
    args += ["--gateway-facing", "--metrics-port", str(METRICS_PORT)]
    with start_runtime(args, timeout=300) as running:
        yield running


@pytest.fixture(scope="module")
def client(runtime: RunningRuntime) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=runtime.http_url, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def channel(runtime: RunningRuntime) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(runtime.grpc_target) as opened:
        yield opened


def test_rest_status_and_metadata(client: httpx.Client) -> None:
    status = client.get("/v1/models/toy")
    assert status.status_code == 200
    assert status.json() == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert client.get("/v1/models/toy/versions/1").status_code == 200
    meta = client.get("/v1/models/toy/metadata").json()
    assert meta["model_spec"] == {"name": "toy", "signature_name": "", "version": "1"}
    signatures = meta["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "two", "text", "classify", "regress"}
    x = signatures["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in x["tensor_shape"]["dim"]] == ["-1", "2"]
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"


def test_rest_unknown_model_and_version_are_404(client: httpx.Client) -> None:
    missing = client.get("/v1/models/other")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Servable not found for request: Latest(other)"}
    version = client.post("/v1/models/toy/versions/7:predict", json={"instances": [[1.0, 2.0]]})
    assert version.status_code == 404
    assert "Specific(toy, 7)" in version.json()["error"]


def test_rest_predict_row_and_columnar(client: httpx.Client) -> None:
    row = client.post("/v1/models/toy:predict", json={"instances": [[1.0, 2.0], [3.0, 4.0]]})
    assert row.status_code == 200, row.text
    assert row.json() == {"predictions": [[3.0, 5.0], [7.0, 9.0]]}
    columnar = client.post("/v1/models/toy:predict", json={"inputs": {"x": [[0.5, 0.0]]}})
    assert columnar.json() == {"outputs": [[2.0, 1.0]]}
    named_rows = client.post(
        "/v1/models/toy:predict",
        json={"signature_name": "two", "instances": [{"a": 2.0, "b": 3.0}, {"a": 1.0, "b": -1.0}]},
    )
    assert named_rows.json() == {"predictions": [{"sum": 5.0, "product": 6.0}, {"sum": 0.0, "product": -1.0}]}
    named_columns = client.post(
        "/v1/models/toy:predict", json={"signature_name": "two", "inputs": {"a": [2.0], "b": [4.0]}}
    )
    assert named_columns.json() == {"outputs": {"sum": [6.0], "product": [8.0]}}
    # Seldon's executor paths: `<m>/:predict`, and `/v1/models/:predict` for the whole graph
    for path in ("/v1/models/toy/:predict", "/v1/models/:predict", "/v1/models/toy/versions/1:predict"):
        assert client.post(path, json={"instances": [[0.0, 0.0]]}).json() == {"predictions": [[1.0, 1.0]]}


def test_rest_strings_and_b64(client: httpx.Client) -> None:
    body = {"signature_name": "text", "instances": ["ab", {"b64": base64.b64encode(b"xyz").decode()}]}
    answer = client.post("/v1/models/toy:predict", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "predictions": [
            {"length": 2, "upper_bytes": {"b64": base64.b64encode(b"AB").decode()}},
            {"length": 3, "upper_bytes": {"b64": base64.b64encode(b"XYZ").decode()}},
        ]
    }


def test_rest_classify_and_regress(client: httpx.Client) -> None:
    examples = {"signature_name": "classify", "examples": [{"x": [0.25, 0.75]}, {"x": [1.0, 0.0]}]}
    classified = client.post("/v1/models/toy:classify", json=examples)
    assert classified.status_code == 200, classified.text
    assert classified.json() == {"result": [[["neg", 0.25], ["pos", 0.75]], [["neg", 1.0], ["pos", 0.0]]]}
    regressed = client.post(
        "/v1/models/toy:regress",
        json={"signature_name": "regress", "context": {"x": [1.0, 2.0]}, "examples": [{}]},
    )
    assert regressed.json() == {"result": [3.0]}
    wrong = client.post("/v1/models/toy:classify", json={"examples": [{"x": [1.0, 2.0]}]})
    assert wrong.status_code == 400
    assert "classify" in wrong.json()["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"instances": [[1.0, 2.0, 3.0]]}, "shape"),
        ({"instances": [[1.0], [1.0, 2.0]]}, "ragged"),
        ({"instances": [["a", "b"]]}, "number"),
        ({"signature_name": "nope", "instances": [[1.0, 2.0]]}, "not found in signature def"),
        ({"inputs": {"y": [[1.0, 2.0]]}}, "input"),
        ({"instances": [[1.0, 2.0]], "inputs": [[1.0, 2.0]]}, "both"),
        ({}, "Missing 'inputs' or 'instances' key"),
        ([1, 2], "JSON object"),
    ],
)
def test_rest_bad_predict_is_400(client: httpx.Client, body: object, words: str) -> None:
    answer = client.post("/v1/models/toy:predict", json=body)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"]


def test_rest_not_json_is_400(client: httpx.Client) -> None:
    answer = client.post("/v1/models/toy:predict", content=b"{nope")
    assert answer.status_code == 400
    assert "error" in answer.json()


def _stub(cls: Any, channel: grpc.Channel) -> Any:  # the generated stubs are untyped
    return cls(channel)


def _tensor(array: np.ndarray[Any, Any]) -> tensor_pb2.TensorProto:
    out = tensor_pb2.TensorProto()
    encode_tftensor_proto(array, out)
    return out


def test_grpc_predict_metadata_status(channel: grpc.Channel) -> None:
    prediction = _stub(tfs_grpc.PredictionServiceStub, channel)
    request = tfs.PredictRequest()
    request.model_spec.name = "toy"
    request.inputs["x"].CopyFrom(_tensor(np.array([[1.0, 1.0]], dtype=np.float32)))
    response = prediction.Predict(request)
    assert response.model_spec.name == "toy"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    np.testing.assert_array_equal(decode_tftensor_proto(response.outputs["y"]), [[3.0, 3.0]])

    filtered = tfs.PredictRequest()
    filtered.model_spec.name = "toy"
    filtered.model_spec.signature_name = "two"
    filtered.inputs["a"].CopyFrom(_tensor(np.array([2.0], dtype=np.float32)))
    filtered.inputs["b"].CopyFrom(_tensor(np.array([5.0], dtype=np.float32)))
    filtered.output_filter.append("product")
    assert list(prediction.Predict(filtered).outputs) == ["product"]

    meta_request = tfs.GetModelMetadataRequest(metadata_field=["signature_def"])
    meta_request.model_spec.name = "toy"
    meta = prediction.GetModelMetadata(meta_request)
    signature_map = tfs.SignatureDefMap()
    assert meta.metadata["signature_def"].Unpack(signature_map)
    assert isinstance(signature_map.signature_def["two"], signature_pb2.SignatureDef)
    assert set(signature_map.signature_def["two"].inputs) == {"a", "b"}

    status_request = tfs.GetModelStatusRequest()
    status_request.model_spec.name = "toy"
    status = _stub(tfs_grpc.ModelServiceStub, channel).GetModelStatus(status_request)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, tfs.ModelVersionStatus.AVAILABLE)
    ]


def test_grpc_classify_regress_and_errors(channel: grpc.Channel) -> None:
    prediction = _stub(tfs_grpc.PredictionServiceStub, channel)
    request = tfs.ClassificationRequest()
    request.model_spec.name = "toy"
    request.model_spec.signature_name = "classify"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([0.5, 0.25])
    result = prediction.Classify(request).result
    assert [[(c.label, c.score) for c in row.classes] for row in result.classifications] == [
        [("neg", 0.5), ("pos", 0.25)]
    ]
    regress = tfs.RegressionRequest()
    regress.model_spec.name = "toy"
    regress.model_spec.signature_name = "regress"
    regress.input.example_list_with_context.context.features.feature["x"].float_list.value.extend([2.0, 3.0])
    regress.input.example_list_with_context.examples.add()
    assert [r.value for r in prediction.Regress(regress).result.regressions] == [5.0]

    unknown = tfs.PredictRequest()
    unknown.model_spec.name = "other"
    with pytest.raises(grpc.RpcError) as missing:
        prediction.Predict(unknown)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    bad = tfs.PredictRequest()
    bad.model_spec.name = "toy"
    bad.inputs["x"].CopyFrom(_tensor(np.array([[1.0, 2.0, 3.0]], dtype=np.float32)))
    with pytest.raises(grpc.RpcError) as shaped:
        prediction.Predict(bad)
    assert shaped.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_seldon_v1_is_translated_to_predict(client: httpx.Client, channel: grpc.Channel) -> None:
    """As Seldon's tfserving proxy: the array is the predict call's instances, the answer its output."""
    ndarray = client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1.0, 2.0]]}})
    assert ndarray.status_code == 200, ndarray.text
    assert ndarray.json()["data"]["ndarray"] == [[3.0, 5.0]]
    tensor = client.post(
        "/api/v1.0/predictions", json={"data": {"tensor": {"shape": [1, 2], "values": [0.0, 1.0]}}}
    )
    assert tensor.json()["data"]["tensor"] == {"shape": [1, 2], "values": [1.0, 3.0]}
    as_json = client.post("/api/v1.0/predictions", json={"jsonData": {"instances": [[1.0, 1.0]]}})
    assert as_json.json()["jsonData"] == {"predictions": [[3.0, 3.0]]}
    bad = client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1.0, 2.0, 3.0]]}})
    assert bad.status_code == 400
    assert bad.json()["status"]["status"] == "FAILURE"

    seldon = _stub(pb_grpc.SeldonStub, channel)
    reply = seldon.Predict(json_format.ParseDict({"data": {"ndarray": [[2.0, 2.0]]}}, pb.SeldonMessage()))
    answer: Any = json_format.MessageToDict(reply.data.ndarray)
    assert answer == [[5.0, 5.0]]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def test_a_killed_worker_is_started_again(runtime: RunningRuntime, client: httpx.Client) -> None:
    """The TensorFlow worker dies: that request is a 503 (no hang, the runtime lives), the next is served."""
    workers = [
        p
        for p in _children(runtime.process.pid)
        if "tensorflow_worker" in Path(f"/proc/{p}/cmdline").read_text()
    ]
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGKILL)
    failed = client.post("/v1/models/toy:predict", json={"instances": [[1.0, 2.0]]})
    assert failed.status_code == 503
    assert "TensorFlow worker stopped" in failed.json()["error"]
    again = client.post("/v1/models/toy:predict", json={"instances": [[1.0, 2.0]]})
    assert again.status_code == 200, again.text
    assert again.json() == {"predictions": [[3.0, 5.0]]}
    assert runtime.is_running()


def _predictions_counted() -> float:
    scrape = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/prometheus", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in scrape.splitlines()
        if line.startswith("seldon_api_executor_server_requests_seconds_count{")
        and 'service="predictions"' in line
    )


def test_tf_serving_requests_are_counted_as_predictions(client: httpx.Client, channel: grpc.Channel) -> None:
    before = _predictions_counted()
    assert client.post("/v1/models/toy:predict", json={"instances": [[1.0, 2.0]]}).status_code == 200
    request = tfs.PredictRequest()
    request.model_spec.name = "toy"
    request.inputs["x"].CopyFrom(_tensor(np.array([[1.0, 1.0]], dtype=np.float32)))
    _stub(tfs_grpc.PredictionServiceStub, channel).Predict(request)
    assert _predictions_counted() == before + 2
