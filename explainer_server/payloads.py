"""Requests and answers: Seldon v1 messages and V2 (Open Inference Protocol) tensors, as numpy.

Seldon's v1 explainer takes a prediction request (`data.ndarray`, `data.tensor` or `strData`) and answers
the explanation's own JSON (`meta`, `data`); the V2 one (MLServer's alibi-explain runtime) takes an infer
request and answers one BYTES output, `explanation`, holding that JSON as a string. Errors have the
protocol's shape: Seldon's `{"status": {...}}` or V2's `{"error": ...}`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from explainer_server.errors import BadRequest, ExplainerError

V2_DATATYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}  # fmt: skip


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"the request body is not JSON: {error}") from error


def decode_seldon(message: Any) -> np.ndarray:
    """The instances of a Seldon v1 message: `data.ndarray`, `data.tensor`, or `strData` (one text)."""
    if not isinstance(message, dict):
        raise BadRequest("a Seldon message is a JSON object with `data` or `strData`")
    if isinstance(message.get("strData"), str):
        return np.array([message["strData"]])
    data = message.get("data")
    if not isinstance(data, dict):
        raise BadRequest("the message has no `data` (`ndarray` or `tensor`) and no `strData`")
    try:
        if "ndarray" in data:
            return np.array(data["ndarray"])
        if "tensor" in data:
            tensor = data["tensor"]
            return np.array(tensor["values"], dtype=np.float64).reshape(tensor["shape"])
    except (TypeError, ValueError, KeyError) as error:
        raise BadRequest(f"`data` does not hold an array: {error}") from error
    raise BadRequest("`data` has neither `ndarray` nor `tensor`")


def decode_v2(request: Any) -> np.ndarray:
    """The first input of a V2 infer request, shaped; BYTES inputs become strings."""
    try:
        tensor = request["inputs"][0]
        shape, datatype, values = list(tensor["shape"]), str(tensor["datatype"]), tensor["data"]
    except (TypeError, KeyError, IndexError) as error:
        raise BadRequest("a V2 request has `inputs`: [{name, shape, datatype, data}]") from error
    try:
        if datatype == "BYTES":
            flat = np.array(_flatten(values), dtype=object).astype(str)
            return flat.reshape(shape) if flat.size == int(np.prod(shape)) else flat
        if datatype not in V2_DATATYPES:
            raise BadRequest(f"unknown datatype {datatype!r}")
        return np.array(_flatten(values), dtype=V2_DATATYPES[datatype]).reshape(shape)
    except (TypeError, ValueError, OverflowError) as error:
        raise BadRequest(f"the input does not hold {datatype} data of shape {shape}: {error}") from error


def _flatten(values: Any) -> list[Any]:
    if isinstance(values, list):
        return [item for value in values for item in _flatten(value)]
    return [values]


def encode_v2_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    """A V2 input for the model: numbers as FP64 (or their own integer type), text as BYTES."""
    if array.dtype.kind in "USO":
        return {"name": name, "shape": list(array.shape), "datatype": "BYTES", "data": array.ravel().tolist()}
    datatype = "INT64" if array.dtype.kind in "iu" else "BOOL" if array.dtype.kind == "b" else "FP64"
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.ravel().tolist()}


def v2_output(response: Any) -> np.ndarray:
    """The model's first V2 output, shaped."""
    try:
        output = response["outputs"][0]
        values = _flatten(output["data"])
        dtype = object if output["datatype"] == "BYTES" else V2_DATATYPES.get(output["datatype"], np.float64)
        return np.array(values, dtype=dtype).reshape(output["shape"])
    except (TypeError, KeyError, IndexError, ValueError) as error:
        raise ExplainerError(f"the model's V2 answer has no usable output: {error}") from error


def seldon_output(response: Any) -> np.ndarray:
    """The model's Seldon v1 answer as an array (`data.ndarray` or `data.tensor`)."""
    try:
        return decode_seldon(response)
    except BadRequest as error:
        raise ExplainerError(f"the model's answer holds no predictions: {error}") from error


def explanation_v2(model_name: str, explanation_json: str) -> dict[str, Any]:
    return {
        "model_name": model_name,
        "outputs": [
            {
                "name": "explanation",
                "shape": [1, 1],
                "datatype": "BYTES",
                "parameters": {"content_type": "str"},
                "data": [explanation_json],
            }
        ],
    }


def seldon_error(error: ExplainerError) -> dict[str, Any]:
    return {"status": {"code": error.status, "info": str(error), "reason": error.reason, "status": "FAILURE"}}


def v2_error(error: ExplainerError) -> dict[str, Any]:
    return {"error": str(error)}
