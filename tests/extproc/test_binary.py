"""The V2 binary tensor data extension at graph routes: raw inputs become V2 JSON, outputs raw if asked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from extproc.codecs import CodecError
from extproc.codecs.binary import decode_binary_request, encode_binary_response, wants_binary
from extproc.codecs.wire import encode_infer_response


def _body(header: dict[str, object], *blobs: bytes) -> tuple[bytes, int]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), len(head)


def test_raw_inputs_numbers_and_bytes_decode_to_data() -> None:
    words = b"".join(len(w).to_bytes(4, "little") + w for w in (b"hi", b"there"))
    header = {
        "id": "r1",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
            {"name": "w", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(words)}},
            {"name": "j", "datatype": "INT64", "shape": [1], "data": [7]},
        ],
    }
    body, length = _body(header, np.asarray([1.5, -2], dtype="<f4").tobytes(), words)
    request = decode_binary_request(body, length)
    assert request["id"] == "r1"
    assert [t.get("data") for t in request["inputs"]] == [[1.5, -2.0], ["hi", "there"], [7]]
    assert "parameters" not in request["inputs"][0]


@pytest.mark.parametrize(
    ("size", "extra", "message"),
    [(8, b"\0" * 7, "does not fit"), (4, b"\0" * 8, "follow the last input"), (6, b"\0" * 6, "whole FP32s")],
)
def test_bad_binary_sizes_are_codec_errors(size: int, extra: bytes, message: str) -> None:
    header = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": size}}]
    }
    body, length = _body(header, extra)
    with pytest.raises(CodecError, match=message):
        decode_binary_request(body, length)
    with pytest.raises(CodecError, match="outside"):
        decode_binary_request(body, len(body) + 1)


def test_outputs_go_raw_when_asked_per_output_or_for_all() -> None:
    response = {
        "model_name": "g",
        "outputs": [
            {"name": "a", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]},
            {"name": "b", "datatype": "INT32", "shape": [1], "data": [3]},
        ],
    }
    request = {"outputs": [{"name": "a", "parameters": {"binary_data": True}}, {"name": "b"}]}
    assert wants_binary(request) and not wants_binary({"inputs": []})
    body, length = encode_binary_response(response, request)
    assert length is not None
    header = json.loads(body[:length])
    assert (
        header["outputs"][0]["parameters"] == {"binary_data_size": 16} and "data" not in header["outputs"][0]
    )
    assert header["outputs"][1]["data"] == [3]
    assert np.frombuffer(body[length:], dtype="<f8").tolist() == [1.0, 2.0]
    everything, length = encode_binary_response(response, {"parameters": {"binary_data_output": True}})
    assert length is not None and len(everything) == length + 16 + 4
    assert all("data" not in o for o in json.loads(everything[:length])["outputs"])


def test_a_raw_grpc_request_is_answered_raw() -> None:
    response = {
        "model_name": "g",
        "outputs": [{"name": "a", "datatype": "FP32", "shape": [2], "data": [1, 2]}],
    }
    proto = encode_infer_response(response, raw=True)
    assert not proto.outputs[0].HasField("contents")
    assert np.frombuffer(proto.raw_output_contents[0], dtype="<f4").tolist() == [1.0, 2.0]
    assert list(encode_infer_response(response).outputs[0].contents.fp32_contents) == [1.0, 2.0]
