"""HUGGINGFACE_SERVER's codecs, without a model: how V2 inputs become a pipeline call (MLServer's rules:
per-input content types, `args` spread, `array_inputs` first) and how an answer becomes `hg_jsonlist`."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from model_runtime.errors import BadRequest
from model_runtime.runtimes.huggingface_codecs import decode_call, decode_input, encode_predictions
from model_runtime.tensors import Tensor, bytes_array


def text(name: str, *items: str, content_type: str | None = "str") -> Tensor:
    data = bytes_array([item.encode() for item in items])
    parameters = {"content_type": content_type} if content_type else {}
    return Tensor(name, "BYTES", [len(items)], data, parameters)


def numbers(name: str, values: list[Any], datatype: str = "INT64", **parameters: Any) -> Tensor:
    array = np.asarray(values)
    return Tensor(name, datatype, list(array.shape), array, parameters)


def test_args_are_positional_array_inputs_first_and_the_rest_keywords() -> None:
    args, kwargs = decode_call(
        [
            text("args", "second"),
            text("array_inputs", "a", "b"),
            text("candidate_labels", "x", "y"),
            numbers("top_k", [2], content_type="raw"),
        ]
    )
    assert args == [["a", "b"], "second"]
    assert kwargs == {"candidate_labels": ["x", "y"], "top_k": 2}


def test_bytes_without_a_content_type_are_strings_and_numbers_are_lists() -> None:
    assert decode_input(text("q", "what?", content_type=None)) == ["what?"]
    assert decode_input(numbers("m", [[1, 2], [3, 4]])) == [[1, 2], [3, 4]]


def test_json_content_types() -> None:
    document = {"question": "who?", "context": "me"}
    assert decode_input(text("d", json.dumps(document), content_type="hg_json")) == document
    listed = text("l", json.dumps({"a": 1}), json.dumps([2]), content_type="hg_jsonlist")
    assert decode_input(listed) == [{"a": 1}, [2]]


def test_numpy_content_types_and_base64() -> None:
    matrix = numbers("m", [[1.0, 2.0], [3.0, 4.0]], "FP64", content_type="nplist")
    rows = decode_input(matrix)
    assert [row.tolist() for row in rows] == [[1.0, 2.0], [3.0, 4.0]]
    assert decode_input(numbers("m", [1, 2], content_type="np")).tolist() == [1, 2]
    audio = text("a", base64.b64encode(b"\x00\x01").decode(), content_type="base64")
    assert decode_input(audio) == [b"\x00\x01"]


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (text("x", "a", content_type="zzz"), "unknown content_type 'zzz'"),
        (text("x", "{not json", content_type="hg_json"), "is not JSON"),
        (text("x", content_type="hg_json"), "needs one JSON document"),
        (text("x", "!!", content_type="base64"), "not base64"),
        (numbers("x", [1], content_type="str"), "needs BYTES data"),
        (text("x", "a", content_type="np"), "needs numeric data"),
        (Tensor("x", "BYTES", [1], bytes_array([b"\xff\xfe"]), {}), "not UTF-8"),
    ],
)
def test_undecodable_inputs_are_bad_requests(tensor: Tensor, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        decode_input(tensor)


def test_predictions_are_one_hg_jsonlist_output() -> None:
    output = encode_predictions([{"label": "POSITIVE", "score": np.float32(0.5)}, [1, 2]])
    assert (output.name, output.datatype, output.shape) == ("output", "BYTES", [2, 1])
    assert output.parameters == {"content_type": "hg_jsonlist"}
    assert [json.loads(item) for item in output.data.reshape(-1)] == [
        {"label": "POSITIVE", "score": 0.5},
        [1, 2],
    ]
    single = encode_predictions({"answer": "me", "embedding": np.zeros(2)})
    assert single.shape == [1, 1]
    assert json.loads(single.data[0, 0]) == {"answer": "me", "embedding": [0.0, 0.0]}
