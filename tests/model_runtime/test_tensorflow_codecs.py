"""TF Serving's REST JSON codec, the worker's frames and the SavedModel version layout, without TensorFlow."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest

from generated.tensorflow import example_pb2, signature_pb2, tensor_pb2
from model_runtime.codecs.tf_json import (
    decode_examples_body,
    decode_predict_body,
    decode_predict_inputs,
    encode_predict_outputs,
)
from model_runtime.errors import BadRequest, LoadError
from model_runtime.runtimes.tensorflow import saved_model_version
from model_runtime.runtimes.tensorflow_worker import read_frame, write_frame
from model_runtime.tfserving import check_inputs


def _signature(**inputs: tensor_pb2.DataType) -> signature_pb2.SignatureDef:
    definition = signature_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for alias, dtype in inputs.items():
        info = definition.inputs[alias]
        info.dtype = dtype
        info.tensor_shape.dim.add(size=-1)
    return definition


def test_row_format_single_and_named_inputs() -> None:
    one = _signature(x=tensor_pb2.DT_FLOAT)
    inputs = decode_predict_inputs(decode_predict_body({"instances": [1, 2.5]}), one)
    assert inputs["x"].dtype == np.float32 and inputs["x"].tolist() == [1.0, 2.5]
    two = _signature(a=tensor_pb2.DT_INT64, s=tensor_pb2.DT_STRING)
    body = {
        "instances": [{"a": 1, "s": "hi"}, {"a": 2, "s": {"b64": base64.b64encode(b"\x00\xff").decode()}}]
    }
    named = decode_predict_inputs(decode_predict_body(body), two)
    assert named["a"].tolist() == [1, 2]
    assert named["s"].tolist() == [b"hi", b"\x00\xff"]


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [[1, 2], [3]]},  # ragged
        {"instances": [{"a": 1}, {"b": 2}]},  # instances naming different inputs
        {"inputs": {"x": [True, "x"]}},  # not numbers
        {"instances": "nope"},
        {"signature_name": 3, "instances": [1]},
    ],
)
def test_bad_predict_bodies(body: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        decode_predict_inputs(decode_predict_body(body), _signature(x=tensor_pb2.DT_FLOAT))


def test_check_inputs_names_missing_and_extra() -> None:
    with pytest.raises(BadRequest, match=r"Sent extra: \{y\}. Missing but required: \{x\}"):
        check_inputs(_signature(x=tensor_pb2.DT_FLOAT), {"y": np.zeros(1)})


def test_outputs_rows_columns_and_bytes() -> None:
    outputs = {
        "score": np.array([0.5, 1.0], dtype=np.float32),
        "label_bytes": np.array([b"a", b"b"], dtype=object),
    }
    rows = encode_predict_outputs(outputs, row=True)
    assert rows == {
        "predictions": [
            {"score": 0.5, "label_bytes": {"b64": base64.b64encode(b"a").decode()}},
            {"score": 1.0, "label_bytes": {"b64": base64.b64encode(b"b").decode()}},
        ]
    }
    assert encode_predict_outputs({"t": np.array([b"ok"], dtype=object)}, row=False) == {"outputs": ["ok"]}
    with pytest.raises(BadRequest, match="inconsistent batch size"):
        encode_predict_outputs({"a": np.zeros(2), "b": np.zeros(3)}, row=True)


def test_examples_have_typed_features_and_the_context() -> None:
    body = {"context": {"c": "ctx"}, "examples": [{"i": [1, 2], "f": 0.5, "s": "x"}]}
    _, serialized = decode_examples_body(body)
    example = example_pb2.Example.FromString(serialized[0])
    features = example.features.feature
    assert list(features["i"].int64_list.value) == [1, 2]
    assert list(features["f"].float_list.value) == [0.5]
    assert list(features["s"].bytes_list.value) == [b"x"]
    assert list(features["c"].bytes_list.value) == [b"ctx"]
    with pytest.raises(BadRequest):
        decode_examples_body({"examples": [{"bad": [1, "a"]}]})


def test_frames_round_trip_numbers_and_bytes_with_nul() -> None:
    stream = io.BytesIO()
    strings = np.empty(2, dtype=object)
    strings[:] = [b"a\x00", b""]
    write_frame(stream, {"op": "run"}, {"x": np.arange(6, dtype=np.int32).reshape(2, 3), "s": strings})
    stream.seek(0)
    header, arrays = read_frame(stream)
    assert header == {"op": "run"}
    assert arrays["x"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert arrays["s"].tolist() == [b"a\x00", b""]


def test_saved_model_versions(tmp_path: Path) -> None:
    for version in ("1", "10", "2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    (tmp_path / "tmp").mkdir()
    assert saved_model_version(tmp_path) == (tmp_path / "10", 10)
    assert saved_model_version(tmp_path / "2") == (tmp_path / "2", 1)
    with pytest.raises(LoadError, match="no SavedModel"):
        saved_model_version(tmp_path / "tmp")
