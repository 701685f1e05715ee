"""TF Serving's REST JSON (`protocol: tensorflow`): predict bodies in the row (`instances`) and columnar
(`inputs`) formats and their answers (`predictions` / `outputs`), and the `examples` of classify and
regress as serialized `tensorflow.Example`s.

As TF Serving writes them: a string value is UTF-8 text or `{"b64": "..."}` for bytes; an output whose
alias ends in `_bytes` is answered as `{"b64": ...}`; in examples a JSON integer is an int64 feature,
a number with a fraction a float, a string (or b64) a bytes feature, and a list holds several values.
Pure: no I/O; every malformed body is a `BadRequest` (TF Serving's 400 with `{"error": ...}`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import numpy as np

from generated.tensorflow import example_pb2, signature_pb2, tensor_pb2
from model_runtime.errors import BadRequest

Array = np.ndarray[Any, Any]

# tensorflow.DataType -> numpy dtype of the arrays a signature takes and gives
NUMPY_DTYPES: dict[int, np.dtype[Any]] = {
    tensor_pb2.DT_FLOAT: np.dtype("float32"),
    tensor_pb2.DT_DOUBLE: np.dtype("float64"),
    tensor_pb2.DT_HALF: np.dtype("float16"),
    tensor_pb2.DT_INT8: np.dtype("int8"),
    tensor_pb2.DT_INT16: np.dtype("int16"),
    tensor_pb2.DT_INT32: np.dtype("int32"),
    tensor_pb2.DT_INT64: np.dtype("int64"),
    tensor_pb2.DT_UINT8: np.dtype("uint8"),
    tensor_pb2.DT_UINT16: np.dtype("uint16"),
    tensor_pb2.DT_UINT32: np.dtype("uint32"),
    tensor_pb2.DT_UINT64: np.dtype("uint64"),
    tensor_pb2.DT_BOOL: np.dtype("bool"),
    tensor_pb2.DT_STRING: np.dtype(object),
}


def numpy_dtype(dtype: int) -> np.dtype[Any]:
    try:
        return NUMPY_DTYPES[dtype]
    except KeyError:
        raise BadRequest(f"tensor dtype {tensor_pb2.DataType.Name(dtype)} is not supported") from None


@dataclass(frozen=True)
class PredictBody:
    signature_name: str
    value: Any  # the `instances` list or the `inputs` value
    row: bool  # `instances` (row format) rather than `inputs` (columnar)


def decode_predict_body(body: Any) -> PredictBody:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    signature = _signature_name(body)
    if "instances" in body and "inputs" in body:
        raise BadRequest("Not a valid JSON request: both 'instances' and 'inputs' are given; send one")
    if "instances" in body:
        if not isinstance(body["instances"], list):
            raise BadRequest("'instances' must be a JSON list")
        return PredictBody(signature, body["instances"], True)
    if "inputs" in body:
        return PredictBody(signature, body["inputs"], False)
    raise BadRequest("Missing 'inputs' or 'instances' key")


def decode_predict_inputs(body: PredictBody, definition: signature_pb2.SignatureDef) -> dict[str, Array]:
    aliases = sorted(definition.inputs)
    value = body.value
    if body.row:
        named = bool(value) and all(_is_object(v) for v in value)
        if not named:
            return {_only(aliases): _array(value, definition.inputs[_only(aliases)])}
        keys = set(value[0])
        if any(set(v) != keys for v in value):
            raise BadRequest("every instance must name the same inputs")
        return {key: _array([v[key] for v in value], _input(definition, key)) for key in sorted(keys)}
    if _is_object(value):
        return {key: _array(v, _input(definition, key)) for key, v in value.items()}
    return {_only(aliases): _array(value, definition.inputs[_only(aliases)])}


def encode_predict_outputs(outputs: dict[str, Array], row: bool) -> dict[str, Any]:
    values = {alias: _json(alias, np.asarray(array)) for alias, array in outputs.items()}
    if not row:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        alias, array = next(iter(outputs.items()))
        return {"predictions": values[alias] if np.ndim(array) else [values[alias]]}
    sizes = {alias: (np.shape(array)[0] if np.ndim(array) else None) for alias, array in outputs.items()}
    batch = next(iter(sizes.values()))
    for alias, size in sizes.items():
        if size is None or size != batch:
            raise BadRequest(f"Tensor name: {alias} has inconsistent batch size: {size} expecting: {batch}")
    return {"predictions": [{alias: values[alias][i] for alias in values} for i in range(batch or 0)]}


def decode_examples_body(body: Any) -> tuple[str, list[bytes]]:
    """(signature name, each example serialized, the `context` merged into it) of a classify/regress body."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    examples = body.get("examples")
    if not isinstance(examples, list):
        raise BadRequest("'examples' must be a JSON list of objects")
    context = _example(body["context"]).SerializeToString() if "context" in body else b""
    return _signature_name(body), [context + _example(e).SerializeToString() for e in examples]


def encode_classify_result(classes: list[list[tuple[str, float]]]) -> dict[str, Any]:
    return {"result": [[[label, score] for label, score in row] for row in classes]}


def encode_regress_result(values: list[float]) -> dict[str, Any]:
    return {"result": values}


def _signature_name(body: dict[str, Any]) -> str:
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise BadRequest("'signature_name' must be a string")
    return name


def _is_object(value: Any) -> bool:
    return isinstance(value, dict) and set(value) != {"b64"}


def _only(aliases: list[str]) -> str:
    if len(aliases) != 1:
        raise BadRequest(
            f"the signature has {len(aliases)} inputs ({', '.join(aliases)}): name them in each "
            "instance (or in 'inputs')"
        )
    return aliases[0]


def _input(definition: signature_pb2.SignatureDef, alias: str) -> signature_pb2.TensorInfo:
    info = definition.inputs.get(alias)
    if info is None:
        raise BadRequest(f"input {alias!r} is not in the signature (its inputs: {sorted(definition.inputs)})")
    return info


def _array(value: Any, info: signature_pb2.TensorInfo) -> Array:
    dtype = numpy_dtype(info.dtype)
    if dtype == np.dtype(object):
        flat, shape = _flatten(value)
        array = np.empty(len(flat), dtype=object)
        array[:] = [_bytes(v) for v in flat]
        return array.reshape(shape)
    flat, shape = _flatten(value)
    if any(not isinstance(v, int | float) for v in flat):
        raise BadRequest(f"a {dtype} input holds a value that is not a number")
    try:
        return np.asarray(flat, dtype=dtype).reshape(shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(f"the input is not a valid {dtype} tensor: {exc}") from exc


def _flatten(value: Any) -> tuple[list[Any], tuple[int, ...]]:
    """The leaves of a nested list and its shape (400 when the lists are ragged)."""
    if not isinstance(value, list):
        return [value], ()
    if not value:
        return [], (0,)
    parts = [_flatten(v) for v in value]
    inner = parts[0][1]
    if any(shape != inner for _, shape in parts):
        raise BadRequest("the input is a ragged list: every list at one depth must have the same length")
    return [leaf for flat, _ in parts for leaf in flat], (len(value), *inner)


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"invalid b64 value: {exc}") from exc
    raise BadRequest(f"a string input holds {type(value).__name__}, not a string or {{'b64': ...}}")


def _json(alias: str, array: Array) -> Any:
    if array.dtype.kind not in "OSU":
        return array.tolist()
    as_b64 = alias.endswith("_bytes")
    flat = [_text(v, as_b64) for v in array.reshape(-1)]
    return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]


def _text(value: Any, as_b64: bool) -> Any:
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if not as_b64:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(raw).decode()}


def _example(value: Any) -> example_pb2.Example:
    if not isinstance(value, dict):
        raise BadRequest("an example must be a JSON object of feature name to value(s)")
    example = example_pb2.Example()
    for name, raw in value.items():
        values = raw if isinstance(raw, list) else [raw]
        feature = example.features.feature[str(name)]
        if all(isinstance(v, str) or (isinstance(v, dict) and set(v) == {"b64"}) for v in values) and values:
            feature.bytes_list.value.extend(_bytes(v) for v in values)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            feature.int64_list.value.extend(values)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            feature.float_list.value.extend(float(v) for v in values)
        else:
            raise BadRequest(f"feature {name!r} must hold numbers or strings of one kind")
    return example
