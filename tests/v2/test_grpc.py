"""V2 over gRPC (`inference.GRPCInferenceService`) against real runtime processes: health, metadata, typed
and raw contents for every datatype, the repository extension, and the bad-input table as status codes."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from generated.inference import dataplane_pb2 as v2
from generated.inference import dataplane_pb2_grpc as v2_grpc
from tests.helpers.runtime import RunningRuntime

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]

NUMPY = {
    "BOOL": "?",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}
VALUES = {
    "BOOL": [True, False, True, False],
    "UINT8": [0, 1, 200, 255],
    "UINT16": [0, 1, 60000, 2],
    "UINT32": [0, 1, 4000000000, 3],
    "UINT64": [0, 1, 2**63, 4],
    "INT8": [-128, 0, 5, 127],
    "INT16": [-30000, 0, 5, 30000],
    "INT32": [-(2**31), 0, 5, 2**31 - 1],
    "INT64": [-(2**63), 0, 5, 2**63 - 1],
    "FP16": [0.5, -1.0, 2.0, 0.25],
    "FP32": [0.5, -1.5, 3.25, 0.125],
    "FP64": [0.1, -1.5, 3.25, 1e300],
}


@pytest.fixture(scope="module")
def echo_stub(echo: RunningRuntime) -> Iterator[v2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(echo.grpc_target) as channel:
        yield v2_grpc.GRPCInferenceServiceStub(channel)


@pytest.fixture(scope="module")
def iris_stub(iris: RunningRuntime) -> Iterator[v2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(iris.grpc_target) as channel:
        yield v2_grpc.GRPCInferenceServiceStub(channel)


def test_health_and_metadata(echo_stub: v2_grpc.GRPCInferenceServiceStub) -> None:
    assert echo_stub.ServerLive(v2.ServerLiveRequest()).live
    assert echo_stub.ServerReady(v2.ServerReadyRequest()).ready
    assert echo_stub.ModelReady(v2.ModelReadyRequest(name="echo", version="7")).ready
    meta = echo_stub.ServerMetadata(v2.ServerMetadataRequest())
    assert "model_repository" in meta.extensions
    with pytest.raises(grpc.RpcError) as error:
        echo_stub.ModelReady(v2.ModelReadyRequest(name="nope"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_model_metadata(iris_stub: v2_grpc.GRPCInferenceServiceStub) -> None:
    meta = iris_stub.ModelMetadata(v2.ModelMetadataRequest(name="iris"))
    assert meta.platform == "sklearn"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("input-0", "FP64", [-1, 4])]
    assert [t.name for t in meta.outputs] == ["predict_proba"]


@pytest.mark.parametrize("datatype", list(FIELD))
def test_typed_contents_round_trip(echo_stub: v2_grpc.GRPCInferenceServiceStub, datatype: str) -> None:
    request = v2.ModelInferRequest(model_name="echo", id="q")
    item = request.inputs.add(name="x", datatype=datatype, shape=[2, 2])
    getattr(item.contents, FIELD[datatype]).extend(VALUES[datatype])
    reply = echo_stub.ModelInfer(request)
    assert (reply.model_name, reply.model_version, reply.id) == ("echo", "7", "q")
    output = reply.outputs[0]
    assert (output.datatype, list(output.shape)) == (datatype, [2, 2])
    assert list(getattr(output.contents, FIELD[datatype])) == VALUES[datatype]


def test_bytes_contents_round_trip(echo_stub: v2_grpc.GRPCInferenceServiceStub) -> None:
    request = v2.ModelInferRequest(model_name="echo")
    request.inputs.add(name="x", datatype="BYTES", shape=[3]).contents.bytes_contents.extend(
        [b"a", b"", b"\xff"]
    )
    output = echo_stub.ModelInfer(request).outputs[0]
    assert list(output.contents.bytes_contents) == [b"a", b"", b"\xff"]


@pytest.mark.parametrize("datatype", list(NUMPY))
def test_raw_contents_round_trip(echo_stub: v2_grpc.GRPCInferenceServiceStub, datatype: str) -> None:
    blob = np.asarray(VALUES[datatype], dtype=NUMPY[datatype]).tobytes()
    request = v2.ModelInferRequest(model_name="echo")
    request.inputs.add(name="x", datatype=datatype, shape=[4])
    request.raw_input_contents.append(blob)
    reply = echo_stub.ModelInfer(request)
    assert reply.outputs[0].datatype == datatype
    assert not reply.outputs[0].HasField("contents")
    assert reply.raw_output_contents[0] == blob


def test_raw_bytes_are_length_prefixed(echo_stub: v2_grpc.GRPCInferenceServiceStub) -> None:
    blob = b"\x01\0\0\0a\0\0\0\0\x02\0\0\0bc"
    request = v2.ModelInferRequest(model_name="echo")
    request.inputs.add(name="x", datatype="BYTES", shape=[3])
    request.raw_input_contents.append(blob)
    assert echo_stub.ModelInfer(request).raw_output_contents[0] == blob


def test_same_numbers_as_v1(iris: RunningRuntime, iris_stub: v2_grpc.GRPCInferenceServiceStub) -> None:
    import httpx

    v1 = httpx.post(iris.http_url + "/predict", json={"data": {"ndarray": [IRIS_ROW]}}).json()
    request = v2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="x", datatype="FP64", shape=[1, 4]).contents.fp64_contents.extend(IRIS_ROW)
    output = iris_stub.ModelInfer(request).outputs[0]
    assert list(output.contents.fp64_contents) == v1["data"]["ndarray"][0]


def _iris_request(
    datatype: str = "FP32", shape: tuple[int, ...] = (1, 4), model: str = "iris"
) -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name=model)
    item = request.inputs.add(name="x", datatype=datatype, shape=list(shape))
    if datatype == "FP32":
        item.contents.fp32_contents.extend(IRIS_ROW)
    elif datatype == "BYTES":
        item.contents.bytes_contents.extend([b"a", b"b", b"c", b"d"])
    return request


def _mismatched_field() -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 4]).contents.fp64_contents.extend(IRIS_ROW)
    return request


def _raw_count() -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.extend([b"\0" * 16, b"\0" * 16])
    return request


def _raw_short() -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(b"\0" * 12)
    return request


def _versioned() -> v2.ModelInferRequest:
    request = _iris_request()
    request.model_version = "3"
    return request


def _oversize() -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="x", datatype="FP32", shape=[100_000, 4])
    request.raw_input_contents.append(b"\0" * 1_600_000)
    return request


BAD: list[tuple[str, v2.ModelInferRequest, grpc.StatusCode]] = [
    ("unknown datatype", _iris_request("FLOAT"), grpc.StatusCode.INVALID_ARGUMENT),
    ("data does not fill shape", _iris_request(shape=(1, 5)), grpc.StatusCode.INVALID_ARGUMENT),
    ("contents field does not match datatype", _mismatched_field(), grpc.StatusCode.INVALID_ARGUMENT),
    ("BYTES to a numeric model", _iris_request("BYTES"), grpc.StatusCode.INVALID_ARGUMENT),
    ("FP16 not raw", _iris_request("FP16"), grpc.StatusCode.INVALID_ARGUMENT),
    ("raw count differs from inputs", _raw_count(), grpc.StatusCode.INVALID_ARGUMENT),
    ("raw bytes do not fill shape", _raw_short(), grpc.StatusCode.INVALID_ARGUMENT),
    ("unknown model", _iris_request(model="nope"), grpc.StatusCode.NOT_FOUND),
    ("unknown version", _versioned(), grpc.StatusCode.NOT_FOUND),
    ("oversize message", _oversize(), grpc.StatusCode.RESOURCE_EXHAUSTED),
]


@pytest.mark.parametrize(("request_", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gets_a_status_and_the_server_keeps_serving(
    iris_stub: v2_grpc.GRPCInferenceServiceStub, request_: v2.ModelInferRequest, code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        iris_stub.ModelInfer(request_)
    assert error.value.code() == code, error.value.details()
    assert error.value.details()
    assert iris_stub.ModelInfer(_iris_request()).outputs[0].name == "predict_proba"


def test_repository_extension(pair: RunningRuntime) -> None:
    with grpc.insecure_channel(pair.grpc_target) as channel:
        stub = v2_grpc.GRPCInferenceServiceStub(channel)
        index = stub.RepositoryIndex(v2.RepositoryIndexRequest())
        assert [(m.name, m.state) for m in index.models] == [("pair", "READY")]
        stub.RepositoryModelUnload(v2.RepositoryModelUnloadRequest(model_name="pair"))
        assert not stub.ModelReady(v2.ModelReadyRequest(name="pair")).ready
        assert not stub.ServerReady(v2.ServerReadyRequest()).ready
        stub.RepositoryModelLoad(v2.RepositoryModelLoadRequest(model_name="pair"))
        assert stub.ModelReady(v2.ModelReadyRequest(name="pair")).ready
        with pytest.raises(grpc.RpcError) as error:
            stub.RepositoryModelLoad(v2.RepositoryModelLoadRequest(model_name="other"))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
