"""Pure tests of the V2 codecs, tensor helpers, input stacking and batch merging (no processes)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from generated.inference import dataplane_pb2 as v2
from model_runtime.batching import infer_batch
from model_runtime.codecs.v2_json import decode_v2_json_request, encode_v2_json_response
from model_runtime.codecs.v2_proto import decode_v2_proto_request, encode_v2_proto_response
from model_runtime.component import Component
from model_runtime.dataplane import DataPlane
from model_runtime.errors import BadRequest
from model_runtime.inference import InferenceCore, stack_inputs
from model_runtime.settings import ComponentSettings
from model_runtime.tensors import (
    InferRequest,
    InferResponse,
    RequestedOutput,
    Tensor,
    decode_length_prefixed,
    encode_length_prefixed,
    to_output,
)


def _binary_body(inputs: list[tuple[str, str, list[int], bytes]], **extra: Any) -> tuple[bytes, int]:
    header = json.dumps(
        {
            "inputs": [
                {"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(b)}}
                for n, d, s, b in inputs
            ],
            **extra,
        }
    ).encode()
    return header + b"".join(b for *_, b in inputs), len(header)


def test_binary_inputs_are_read_in_order_without_copies() -> None:
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    b = np.asarray([1, -1], dtype="<i8")
    body, length = _binary_body([("a", "FP32", [2, 3], a.tobytes()), ("b", "INT64", [2], b.tobytes())])
    request = decode_v2_json_request(body, length, "m", "")
    assert [t.name for t in request.inputs] == ["a", "b"]
    np.testing.assert_array_equal(request.inputs[0].data, a)
    np.testing.assert_array_equal(request.inputs[1].data, b)
    assert not request.inputs[0].data.flags.owndata  # a view over the request body


def test_binary_bytes_elements_carry_length_prefixes() -> None:
    items = np.asarray([b"x", b"", b"yz"], dtype=object)
    blob = encode_length_prefixed(items)
    assert decode_length_prefixed("s", blob).tolist() == [b"x", b"", b"yz"]
    with pytest.raises(BadRequest, match="past the end"):
        decode_length_prefixed("s", blob[:-1])


def test_binary_output_only_where_asked() -> None:
    request = InferRequest(
        "m", "", [], outputs=[RequestedOutput("a", {"binary_data": True}), RequestedOutput("b")]
    )
    a = to_output("a", np.asarray([1.5, 2.5], dtype=np.float32))
    b = to_output("b", np.asarray(["p", "q"]))
    body, length = encode_v2_json_response(InferResponse("m", "", "id", [a, b]), request)
    assert length is not None
    header = json.loads(body[:length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert header["outputs"][1]["data"] == ["p", "q"]
    assert np.frombuffer(body[length:], dtype="<f4").tolist() == [1.5, 2.5]


def test_typed_fp32_contents_are_read_from_packed_bytes() -> None:
    message = v2.ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype="FP32", shape=[2, 2]).contents.fp32_contents.extend([1, 2, 3, 4])
    request, raw = decode_v2_proto_request(message)
    assert not raw
    assert request.inputs[0].data.dtype == np.float32
    assert request.inputs[0].data.tolist() == [[1, 2], [3, 4]]


def test_fp16_outputs_force_raw_contents() -> None:
    out = to_output("h", np.asarray([0.5, 1.0], dtype=np.float16))
    reply = encode_v2_proto_response(InferResponse("m", "", "id", [out]), raw=False)
    assert not reply.outputs[0].HasField("contents")
    assert np.frombuffer(reply.raw_output_contents[0], dtype="<f2").tolist() == [0.5, 1.0]


def test_typed_fp64_output_contents() -> None:
    out = to_output("p", np.asarray([[0.25, 0.75]]))
    reply = encode_v2_proto_response(InferResponse("m", "", "id", [out]), raw=False)
    assert list(reply.outputs[0].contents.fp64_contents) == [0.25, 0.75]
    assert list(reply.outputs[0].shape) == [1, 2]


def test_several_single_column_inputs_stack_with_their_names() -> None:
    inputs = [
        Tensor("a", "FP64", [2, 1], np.asarray([[1.0], [2.0]])),
        Tensor("b", "FP64", [2], np.asarray([3.0, 4.0])),
    ]
    features, names = stack_inputs(inputs)
    assert features.tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert names == ["a", "b"]
    with pytest.raises(BadRequest, match="first dimensions"):
        stack_inputs([inputs[0], Tensor("c", "FP64", [3], np.zeros(3))])


class _RowSum:
    calls: list[int] = []

    def predict(self, X: Any, names: list[str]) -> Any:
        X = np.asarray(X)
        if (X < 0).any():
            raise BadRequest("negative")
        _RowSum.calls.append(len(X))
        return X.sum(axis=1)


def _core() -> InferenceCore:
    plane = DataPlane(ComponentSettings(name="m", class_path="x.RowSum"), lambda _: Component(_RowSum()))
    assert plane.load()
    return InferenceCore(plane)


def _request(*rows: list[float]) -> InferRequest:
    data = np.asarray(rows, dtype=np.float64)
    return InferRequest("m", "", [Tensor("x", "FP64", list(data.shape), data)])


def test_infer_batch_merges_one_call_and_splits_by_rows() -> None:
    _RowSum.calls = []
    outcomes = infer_batch(_core(), [_request([1, 2]), _request([3, 4], [5, 6]), _request([7, 8])])
    assert _RowSum.calls == [4]
    assert [o.outputs[0].data.tolist() for o in outcomes if isinstance(o, InferResponse)] == [
        [3],
        [7, 11],
        [15],
    ]


def test_infer_batch_keeps_an_error_with_its_request() -> None:
    _RowSum.calls = []
    outcomes = infer_batch(_core(), [_request([1, 2]), _request([-1, 2])])
    assert isinstance(outcomes[0], InferResponse)
    assert outcomes[0].outputs[0].data.tolist() == [3]
    assert isinstance(outcomes[1], BadRequest)
