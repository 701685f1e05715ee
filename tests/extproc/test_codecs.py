"""The pure codecs: Seldon v1 JSON <-> V2 JSON, and both protocols' protobufs, table-driven."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from extproc.codecs import (
    CodecError,
    Payload,
    decode_infer_request,
    decode_infer_response,
    decode_seldon_proto,
    decode_v2_request,
    decode_v2_tensors,
    encode_infer_request,
    encode_infer_response,
    encode_seldon_message,
    encode_v2_request,
    seldon_to_v2_inputs,
    v2_datatype_hint,
)
from generated.inference import dataplane_pb2

V1_TO_V2: list[tuple[str, dict[str, Any], str | None, dict[str, Any]]] = [
    (
        "float ndarray is FP64",
        {"data": {"ndarray": [[1.5, 2.0]]}},
        None,
        {"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1.5, 2.0]},
    ),
    (
        "int ndarray is INT64",
        {"data": {"ndarray": [[1, 2], [3, 4]]}},
        None,
        {"name": "input-0", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]},
    ),
    (
        "a hint keeps a V2 client's FP32",
        {"data": {"ndarray": [[1.5, 2.0]]}},
        "FP32",
        {"name": "input-0", "shape": [1, 2], "datatype": "FP32", "data": [1.5, 2.0]},
    ),
    (
        "bool ndarray is BOOL",
        {"data": {"ndarray": [True, False]}},
        None,
        {"name": "input-0", "shape": [2], "datatype": "BOOL", "data": [True, False]},
    ),
    (
        "strings are BYTES",
        {"data": {"ndarray": [["a", "b"]]}},
        None,
        {"name": "input-0", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]},
    ),
    (
        "a Seldon tensor is FP64 of its shape",
        {"data": {"tensor": {"shape": [2, 1], "values": [1, 2]}}},
        None,
        {"name": "input-0", "shape": [2, 1], "datatype": "FP64", "data": [1.0, 2.0]},
    ),
    (
        "a tftensor keeps its dtype",
        {
            "data": {
                "tftensor": {"dtype": "DT_INT32", "tensorShape": {"dim": [{"size": "2"}]}, "intVal": [7, 8]}
            }
        },
        None,
        {"name": "input-0", "shape": [2], "datatype": "INT32", "data": [7, 8]},
    ),
    (
        "a float tftensor stays FP32",
        {
            "data": {
                "tftensor": {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "1"}]}, "floatVal": [0.5]}
            }
        },
        None,
        {"name": "input-0", "shape": [1], "datatype": "FP32", "data": [0.5]},
    ),
    (
        "strData is one BYTES element",
        {"strData": "hello"},
        None,
        {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["hello"]},
    ),
    (
        "jsonData is its JSON text",
        {"jsonData": {"a": 1}},
        None,
        {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ['{"a":1}']},
    ),
]


@pytest.mark.parametrize(
    ("message", "hint", "expected"), [c[1:] for c in V1_TO_V2], ids=[c[0] for c in V1_TO_V2]
)
def test_seldon_to_v2(message: dict[str, Any], hint: str | None, expected: dict[str, Any]) -> None:
    assert seldon_to_v2_inputs(message, hint) == [expected]


V2_TO_V1: list[tuple[str, list[dict[str, Any]], dict[str, Any] | None, dict[str, Any]]] = [
    (
        "numbers become a nested ndarray",
        [{"name": "p", "shape": [2, 1], "datatype": "INT64", "data": [0, 2]}],
        None,
        {"data": {"ndarray": [[0], [2]]}},
    ),
    (
        "a tensor request gets a tensor back",
        [{"name": "p", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1.5]}],
        {"data": {"names": ["a", "b"], "tensor": {"shape": [1, 2], "values": [0, 0]}}},
        {"data": {"names": ["a", "b"], "tensor": {"shape": [1, 2], "values": [0.5, 1.5]}}},
    ),
    (
        "a tftensor request gets the V2 dtype as a tftensor",
        [{"name": "p", "shape": [2], "datatype": "FP32", "data": [0.5, 1.5]}],
        {"data": {"tftensor": {}}},
        {
            "data": {
                "tftensor": {
                    "dtype": "DT_FLOAT",
                    "tensorShape": {"dim": [{"size": "2"}]},
                    "floatVal": [0.5, 1.5],
                }
            }
        },
    ),
    (
        "one BYTES element is strData",
        [{"name": "s", "shape": [1], "datatype": "BYTES", "data": ["hi"]}],
        None,
        {"strData": "hi"},
    ),
    (
        "several tensors become jsonData by name",
        [
            {"name": "a", "shape": [1], "datatype": "INT32", "data": [1]},
            {"name": "b", "shape": [2], "datatype": "FP64", "data": [0.5, 1.0]},
        ],
        None,
        {"jsonData": {"a": [1], "b": [0.5, 1.0]}},
    ),
]


@pytest.mark.parametrize(
    ("tensors", "like", "expected"), [c[1:] for c in V2_TO_V1], ids=[c[0] for c in V2_TO_V1]
)
def test_v2_to_seldon(
    tensors: list[dict[str, Any]], like: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    assert decode_v2_tensors(tensors, like) == expected


@pytest.mark.parametrize(
    "message",
    [
        {"data": {"ndarray": [[1, 2], [3]]}},
        {"data": {"tensor": {"shape": [3], "values": [1, 2]}}},
        {"data": {"tftensor": {"dtype": "DT_VARIANT"}}},
        {"data": {}},
        {"meta": {}},
    ],
    ids=["ragged", "tensor shape mismatch", "unknown tf dtype", "empty data", "no payload"],
)
def test_untranslatable_seldon_messages_raise_codec_errors(message: dict[str, Any]) -> None:
    with pytest.raises(CodecError):
        seldon_to_v2_inputs(message)


def test_v2_request_round_trip_keeps_id_and_type() -> None:
    request = {"id": "r1", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT32", "data": [1, 2]}]}
    message = decode_v2_request(request)
    assert message == {"data": {"ndarray": [[1, 2]]}, "meta": {"puid": "r1"}}
    assert encode_v2_request(message, v2_datatype_hint(request)) == {
        "inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "INT32", "data": [1, 2]}],
        "id": "r1",
    }


def test_payload_translates_only_when_asked() -> None:
    v2 = Payload.v2([{"name": "x", "shape": [1], "datatype": "FP32", "data": [0.5]}], hint="FP32")
    assert v2.as_v2()[0]["datatype"] == "FP32"  # untouched
    assert v2.as_seldon() == {"data": {"ndarray": [0.5]}}
    seldon = Payload.seldon({"data": {"ndarray": [[1.0]]}, "meta": {"puid": "x"}}, hint="FP32")
    assert seldon.body == {"data": {"ndarray": [[1.0]]}}  # meta belongs to the executor
    assert seldon.as_v2()[0]["datatype"] == "FP32"


def test_v2_grpc_contents_and_raw_bytes_decode_the_same() -> None:
    values = np.array([[1.5, -2.0]], dtype=np.float32)
    typed = dataplane_pb2.ModelInferRequest(
        id="a",
        inputs=[
            dataplane_pb2.ModelInferRequest.InferInputTensor(
                name="x",
                datatype="FP32",
                shape=[1, 2],
                contents=dataplane_pb2.InferTensorContents(fp32_contents=[1.5, -2.0]),
            )
        ],
    )
    raw = dataplane_pb2.ModelInferRequest(
        id="a",
        inputs=[dataplane_pb2.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[1, 2])],
        raw_input_contents=[values.tobytes()],
    )
    expected = {
        "id": "a",
        "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.5, -2.0]}],
    }
    assert decode_infer_request(typed) == expected
    assert decode_infer_request(raw) == expected


def test_v2_grpc_bytes_and_round_trips() -> None:
    text = "héllo".encode()
    raw = dataplane_pb2.ModelInferResponse(
        model_name="m",
        outputs=[dataplane_pb2.ModelInferResponse.InferOutputTensor(name="s", datatype="BYTES", shape=[1])],
        raw_output_contents=[len(text).to_bytes(4, "little") + text],
    )
    decoded = decode_infer_response(raw)
    assert decoded["outputs"][0]["data"] == ["héllo"]
    assert decode_infer_response(encode_infer_response(decoded)) == decoded
    request = {"id": "q", "inputs": [{"name": "x", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}
    assert decode_infer_request(encode_infer_request(request, "m")) == request


def test_seldon_proto_round_trip_uses_the_v1_json_names() -> None:
    message = {
        "meta": {"puid": "p", "tags": {"a": 1.0}, "requestPath": {"n": "img"}, "routing": {"r": 1}},
        "data": {"names": ["c"], "ndarray": [[1.0, 2.0]]},
    }
    assert decode_seldon_proto(encode_seldon_message(message)) == message
    assert decode_seldon_proto(encode_seldon_message({"binData": "AAE="})) == {"binData": "AAE="}
    with pytest.raises(CodecError):
        encode_seldon_message({"data": {"tensor": {"shape": "x"}}})
