"""SKLEARN_SERVER over gRPC: the Seldon and Model services, health, metadata and reflection."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import empty_pb2, json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from generated.seldon import prediction_pb2 as pb
from tests.helpers.runtime import RunningRuntime, start_runtime
from tests.model_runtime.conftest import IRIS_ROW, Stubs, stubs_for

GRPCURL = Path(sys.executable).parent / "grpcurl"


@pytest.fixture(scope="module")
def stubs(sklearn_runtime: RunningRuntime) -> Iterator[Stubs]:
    channel, stubs = stubs_for(sklearn_runtime)
    with channel:
        yield stubs


def _ndarray_request(rows: list[list[float]]) -> pb.SeldonMessage:
    return json_format.ParseDict({"data": {"ndarray": rows}}, pb.SeldonMessage())


def test_seldon_predict_ndarray(stubs: Stubs) -> None:
    response = stubs.seldon.Predict(_ndarray_request([IRIS_ROW, [6.7, 3.0, 5.2, 2.3]]))
    assert list(response.data.names) == ["t:0", "t:1", "t:2"]
    probabilities = np.asarray(json_format.MessageToDict(response.data.ndarray))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities.argmax(axis=1).tolist() == [0, 2]


def test_model_predict_tensor(stubs: Stubs) -> None:
    request = pb.SeldonMessage()
    request.data.tensor.shape.extend([2, 4])
    request.data.tensor.values.extend(IRIS_ROW * 2)
    response = stubs.model.Predict(request)
    assert response.data.WhichOneof("data_oneof") == "tensor"
    assert list(response.data.tensor.shape) == [2, 3]
    assert sum(response.data.tensor.values) == pytest.approx(2.0)


def test_predict_tftensor_uses_tensor_content(stubs: Stubs) -> None:
    request = pb.SeldonMessage()
    tensor = request.data.tftensor
    tensor.dtype = 1  # DT_FLOAT
    tensor.tensor_shape.dim.add(size=1)
    tensor.tensor_shape.dim.add(size=4)
    tensor.tensor_content = np.asarray([IRIS_ROW], dtype="<f4").tobytes()
    response = stubs.seldon.Predict(request)
    out = response.data.tftensor
    assert [d.size for d in out.tensor_shape.dim] == [1, 3]
    assert np.frombuffer(out.tensor_content, dtype="<f8").sum() == pytest.approx(1.0)


def test_puid_metadata_is_echoed(stubs: Stubs) -> None:
    response, call = stubs.seldon.Predict.with_call(
        _ndarray_request([IRIS_ROW]), metadata=(("seldon-puid", "grpc-puid-1"),)
    )
    assert response.meta.puid == "grpc-puid-1"
    assert ("seldon-puid", "grpc-puid-1") in tuple(call.initial_metadata())


def test_wrong_feature_count_is_invalid_argument(stubs: Stubs) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stubs.seldon.Predict(_ndarray_request([[1.0, 2.0]]))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expecting 4" in str(error.value.details())


def test_empty_message_is_invalid_argument(stubs: Stubs) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stubs.model.Predict(pb.SeldonMessage())
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_metadata_rpcs(stubs: Stubs) -> None:
    model = stubs.seldon.ModelMetadata(pb.SeldonModelMetadataRequest(name="model"))
    assert model.platform == "sklearn"
    assert model.custom["method"] == "predict_proba"
    assert stubs.model.Metadata(empty_pb2.Empty()).platform == "sklearn"
    graph = stubs.seldon.GraphMetadata(empty_pb2.Empty())
    assert graph.models["model"].platform == "sklearn"
    assert json_format.MessageToDict(graph.inputs[0].schema) == {"shape": [4]}
    with pytest.raises(grpc.RpcError) as error:
        stubs.seldon.ModelMetadata(pb.SeldonModelMetadataRequest(name="other"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_service_serving(sklearn_runtime: RunningRuntime) -> None:
    with grpc.insecure_channel(sklearn_runtime.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "seldon.protos.Seldon", "seldon.protos.Model"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_grpcurl_needs_no_proto_files(sklearn_runtime: RunningRuntime) -> None:
    target = sklearn_runtime.grpc_target
    listed = subprocess.run(
        [str(GRPCURL), "-plaintext", target, "list"], capture_output=True, text=True, timeout=60, check=True
    )
    services = set(listed.stdout.split())
    assert {
        "seldon.protos.Seldon",
        "seldon.protos.Model",
        "seldon.protos.Combiner",
        "grpc.health.v1.Health",
    } <= services
    body = json.dumps({"data": {"ndarray": [IRIS_ROW]}})
    called = subprocess.run(
        [str(GRPCURL), "-plaintext", "-d", body, target, "seldon.protos.Seldon/Predict"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(called.stdout)["data"]["names"] == ["t:0", "t:1", "t:2"]


def test_grpc_message_size_limit(iris_dir: Path) -> None:
    args = [
        "--implementation",
        "SKLEARN_SERVER",
        "--model-uri",
        str(iris_dir),
        "--grpc-max-message-bytes",
        "4096",
    ]
    with start_runtime(args) as runtime:
        channel, stubs = stubs_for(runtime)
        with channel:
            with pytest.raises(grpc.RpcError) as error:
                stubs.seldon.Predict(_ndarray_request([IRIS_ROW] * 500))
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert len(stubs.seldon.Predict(_ndarray_request([IRIS_ROW] * 10)).data.names) == 3
