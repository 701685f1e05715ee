"""The Seldon v1 codecs, in process: every array codec round-trips on both wire forms."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
import pytest
from google.protobuf import json_format, struct_pb2

from generated.seldon import prediction_pb2 as pb
from generated.tensorflow import tensor_pb2
from model_runtime.codecs import (
    decode_json_feedback,
    decode_json_message,
    decode_json_message_list,
    decode_ndarray,
    decode_ndarray_proto,
    decode_proto_feedback,
    decode_proto_message,
    decode_tensor,
    decode_tensor_proto,
    decode_tftensor,
    decode_tftensor_proto,
    dumps,
    encode_json_message,
    encode_ndarray,
    encode_ndarray_proto,
    encode_proto_message,
    encode_tensor,
    encode_tensor_proto,
    encode_tftensor,
    encode_tftensor_proto,
    loads,
)
from model_runtime.errors import BadRequest, UserCodeError
from model_runtime.message import BinData, DefaultData, JsonData, Message, Meta, StrData

ARRAYS = [
    pytest.param(np.arange(6, dtype=np.float64).reshape(2, 3), id="float64-2d"),
    pytest.param(np.array([[0.5, -1.25]], dtype=np.float32), id="float32"),
    pytest.param(np.arange(4, dtype=np.int64).reshape(2, 2), id="int64"),
    pytest.param(np.array([1, 2, 3], dtype=np.int32), id="int32-1d"),
    pytest.param(np.array([[True, False]]), id="bool"),
    pytest.param(np.zeros((0, 4)), id="empty"),
    pytest.param(np.arange(24, dtype=np.float64).reshape(2, 3, 4), id="3d"),
]


def _json_roundtrip(value: Any) -> Any:
    return orjson.loads(dumps(value))


@pytest.mark.parametrize("array", ARRAYS)
def test_ndarray_json_roundtrip(array: np.ndarray[Any, Any]) -> None:
    decoded = decode_ndarray(_json_roundtrip(encode_ndarray(array)))
    np.testing.assert_array_equal(decoded.reshape(array.shape), array)


@pytest.mark.parametrize("array", ARRAYS)
def test_ndarray_proto_roundtrip(array: np.ndarray[Any, Any]) -> None:
    out = struct_pb2.ListValue()
    encode_ndarray_proto(array, out)
    decoded = decode_ndarray_proto(struct_pb2.ListValue.FromString(out.SerializeToString()))
    np.testing.assert_array_equal(decoded.reshape(array.shape).astype(array.dtype), array)


@pytest.mark.parametrize("array", ARRAYS)
def test_tensor_roundtrips_as_float64(array: np.ndarray[Any, Any]) -> None:
    as_json = decode_tensor(_json_roundtrip(encode_tensor(array)))
    proto = pb.Tensor()
    encode_tensor_proto(array, proto)
    as_proto = decode_tensor_proto(pb.Tensor.FromString(proto.SerializeToString()))
    for decoded in (as_json, as_proto):
        assert decoded.dtype == np.float64
        assert decoded.shape == array.shape
        np.testing.assert_array_equal(decoded, array.astype(np.float64))
    assert list(proto.shape) == list(array.shape)
    assert list(proto.values) == array.astype(np.float64).reshape(-1).tolist()


def test_tensor_proto_decode_is_writable_and_reads_packed_values_written_by_protobuf() -> None:
    tensor = pb.Tensor(shape=[2, 2], values=[1.0, 2.0, 3.0, 4.0])
    decoded = decode_tensor_proto(tensor)
    decoded[0, 0] = 9.0
    assert decoded.tolist() == [[9.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize("array", [*ARRAYS, pytest.param(np.array([[1.5]], dtype=np.float16), id="half")])
def test_tftensor_roundtrips_keep_dtype(array: np.ndarray[Any, Any]) -> None:
    as_json = decode_tftensor(_json_roundtrip(encode_tftensor(array)))
    proto = tensor_pb2.TensorProto()
    encode_tftensor_proto(array, proto)
    as_proto = decode_tftensor_proto(tensor_pb2.TensorProto.FromString(proto.SerializeToString()))
    # the JSON form is what protobuf's own JSON mapping accepts
    parsed = json_format.ParseDict(_json_roundtrip(encode_tftensor(array)), tensor_pb2.TensorProto())
    for decoded in (as_json, as_proto, decode_tftensor_proto(parsed)):
        assert decoded.dtype == array.dtype
        np.testing.assert_array_equal(decoded, array)


def test_tftensor_strings_and_broadcast() -> None:
    strings = np.array([b"a", b"bc"], dtype=object)
    proto = tensor_pb2.TensorProto()
    encode_tftensor_proto(strings, proto)
    assert list(decode_tftensor_proto(proto)) == [b"a", b"bc"]
    assert list(decode_tftensor(encode_tftensor(strings))) == [b"a", b"bc"]
    broadcast = {"dtype": "DT_INT32", "tensorShape": {"dim": [{"size": "2"}, {"size": "2"}]}, "intVal": [7]}
    assert decode_tftensor(broadcast).tolist() == [[7, 7], [7, 7]]
    content = {
        "dtype": "DT_FLOAT",
        "tensorShape": {"dim": [{"size": 2}]},
        "tensorContent": base64.b64encode(np.array([1, 2], dtype="<f4").tobytes()).decode(),
    }
    assert decode_tftensor(content).tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("decode", "value", "message"),
    [
        (decode_ndarray, {"not": "a list"}, "must be a JSON array"),
        (decode_tensor, {"shape": [2, 2], "values": [1, 2, 3]}, "has 3 values but shape [2, 2] needs 4"),
        (decode_tensor, {"shape": [1], "values": ["x"]}, "data.tensor is invalid"),
        (decode_tensor, [1, 2], "must be an object"),
        (decode_tftensor, {"dtype": "DT_COMPLEX64"}, "is not supported"),
        (
            decode_tftensor,
            {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": 3}]}, "floatVal": [1, 2]},
            "needs 3",
        ),
        (decode_tensor, {"shape": [-2, -2], "values": [1, 2, 3, 4]}, "negative dimension"),
        (
            decode_tftensor,
            {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": -1}]}},
            "negative dimension",
        ),
        (
            decode_tftensor,
            {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "100000000000"}]}, "floatVal": [1]},
            "too large to fill",
        ),
        (decode_json_message, [1], "must be a JSON object"),
        (decode_json_message, {"binData": "***"}, "not valid base64"),
        (decode_json_message, {"strData": 5}, "strData must be a string"),
        (decode_json_message, {"data": {"names": "x", "ndarray": []}}, "data.names"),
        (decode_json_message, {"data": {}}, "one of ndarray, tensor or tftensor"),
        (decode_json_message, {"meta": {"routing": {"a": "x"}}}, "meta is invalid"),
        (decode_json_message_list, {"messages": []}, "seldonMessages"),
        (decode_json_feedback, {"reward": "lots"}, "reward must be a number"),
        (loads, b"{", "invalid JSON"),
    ],
)
def test_bad_input_is_a_bad_request(decode: Any, value: Any, message: str) -> None:
    with pytest.raises(BadRequest) as error:
        decode(value)
    assert message in error.value.info


def test_ragged_ndarray_becomes_an_object_array() -> None:
    decoded = decode_ndarray([[1, 2], [3]])
    assert decoded.dtype == object
    assert decoded.shape == (2,)


def test_integer_only_json_is_an_integer_array_like_seldon() -> None:
    assert decode_ndarray([[1, 2]]).dtype.kind == "i"
    assert decode_ndarray([["a", "b"]]).dtype.kind == "U"


MESSAGES = [
    pytest.param(Message(DefaultData("ndarray", np.array([[1.0, 2.0]]), ["a", "b"])), id="ndarray"),
    pytest.param(Message(DefaultData("tensor", np.array([[1.0, 2.0]]), ["a", "b"])), id="tensor"),
    pytest.param(Message(DefaultData("tftensor", np.array([[1.0, 2.0]], dtype=np.float32))), id="tftensor"),
    pytest.param(Message(BinData(b"\x00\x01binary")), id="binData"),
    pytest.param(Message(StrData("hello")), id="strData"),
    pytest.param(Message(JsonData({"a": [1, 2], "b": {"c": None}})), id="jsonData"),
    pytest.param(
        Message(
            StrData("x"),
            Meta(
                puid="p",
                tags={"k": "v", "n": 1.5},
                routing={"router": 1},
                request_path={"m": "img"},
                metrics=[{"key": "c", "type": "COUNTER", "value": 1.0, "tags": {"a": "b"}}],
            ),
        ),
        id="meta",
    ),
]


def _same(left: Message, right: Message) -> None:
    assert left.meta == right.meta
    if isinstance(left.payload, DefaultData):
        assert isinstance(right.payload, DefaultData)
        assert (left.payload.kind, left.payload.names) == (right.payload.kind, right.payload.names)
        np.testing.assert_array_equal(np.asarray(left.payload.array), np.asarray(right.payload.array))
    else:
        assert left.payload == right.payload


@pytest.mark.parametrize("message", MESSAGES)
def test_message_json_roundtrip(message: Message) -> None:
    _same(decode_json_message(_json_roundtrip(encode_json_message(message))), message)


@pytest.mark.parametrize("message", MESSAGES)
def test_message_proto_roundtrip(message: Message) -> None:
    wire = encode_proto_message(message).SerializeToString()
    _same(decode_proto_message(pb.SeldonMessage.FromString(wire)), message)


@pytest.mark.parametrize("message", MESSAGES)
def test_json_and_proto_forms_agree_through_protobufs_json_mapping(message: Message) -> None:
    """What we write as JSON parses into the same proto we write on the wire (int64 sizes aside)."""
    ours = _json_roundtrip(encode_json_message(message))
    parsed = json_format.ParseDict(ours, pb.SeldonMessage())
    _same(decode_proto_message(parsed), decode_proto_message(encode_proto_message(message)))


def test_feedback_proto() -> None:
    feedback = pb.Feedback(reward=0.5)
    feedback.request.strData = "req"
    decoded = decode_proto_feedback(feedback)
    assert decoded.reward == 0.5
    assert decoded.request is not None and decoded.request.payload == StrData("req")
    assert decoded.truth is None


def test_unencodable_output_is_a_user_code_error() -> None:
    with pytest.raises(UserCodeError):
        encode_tensor(np.array(["a"], dtype=object))
    with pytest.raises(UserCodeError):
        encode_ndarray_proto([object()], struct_pb2.ListValue())


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([1.5, -2.0, 0.0], id="flat"),
        pytest.param([[1.0, 2.0], [3.0, 4.0]], id="matrix"),
        pytest.param([[0.5] * 300] * 3, id="wide-rows-multibyte-lengths"),
        pytest.param([float(i) for i in range(40)], id="flat-fast-path"),
        pytest.param([[1.0, -2.5, 3.0, 4.0]] * 10, id="matrix-fast-path"),
        pytest.param([[1.0] * 20, [2.0] * 19 + ["x"]], id="fast-path-rejects-a-string"),
        pytest.param([[1.0, 2.0], [3.0]], id="ragged"),
        pytest.param([[1.0, "a"]], id="mixed"),
        pytest.param([[[1.0], [2.0]]], id="3d"),
        pytest.param([[1.0, None]], id="null"),
        pytest.param([[True, False]], id="bool"),
        pytest.param([], id="empty"),
        pytest.param([[]], id="empty-row"),
    ],
)
def test_ndarray_proto_fast_path_matches_protobuf(rows: list[Any]) -> None:
    """Byte-level encoding equals protobuf's own; decoding agrees with walking the ListValue."""
    reference = struct_pb2.ListValue()
    reference.extend(rows)
    ours = struct_pb2.ListValue()
    try:
        array = np.asarray(rows)
    except ValueError:
        array = None
    if array is not None and array.dtype.kind in "iuf":
        encode_ndarray_proto(array, ours)
        assert ours.SerializeToString() == reference.SerializeToString()
    decoded = decode_ndarray_proto(reference)
    expected = decode_ndarray(json_format.MessageToDict(reference))
    assert decoded.dtype == expected.dtype
    assert decoded.shape == expected.shape
    assert decoded.tolist() == expected.tolist()


def test_ndarray_proto_large_matrix() -> None:
    array = np.random.default_rng(0).normal(size=(2000, 50))
    out = struct_pb2.ListValue()
    encode_ndarray_proto(array, out)
    np.testing.assert_array_equal(
        decode_ndarray_proto(struct_pb2.ListValue.FromString(out.SerializeToString())), array
    )
