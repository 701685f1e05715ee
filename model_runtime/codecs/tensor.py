"""`data.tensor`: Seldon's `{shape, values}` with flat float64 values, as JSON or as the `Tensor` proto.

The proto path never walks `values` in Python: the message is serialised (a copy inside upb), and the
packed doubles are viewed with `np.frombuffer`; encoding builds the packed bytes and lets upb parse them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from generated.seldon import prediction_pb2
from model_runtime.codecs.wire import read_varint, write_varint
from model_runtime.errors import BadRequest, UserCodeError
from model_runtime.message import ArrayLike

Array = np.ndarray[Any, Any]

_SHAPE_TAG = 0x0A  # field 1, length-delimited (packed int32)
_VALUES_TAG = 0x12  # field 2, length-delimited (packed double)
_F64 = np.dtype("<f8")


def decode_tensor(value: Any) -> Array:
    if not isinstance(value, dict):
        raise BadRequest("data.tensor must be an object with shape and values")
    shape = value.get("shape", [])
    values = value.get("values", [])
    try:
        flat = np.asarray(values, dtype=np.float64)
        return _reshape(flat, [int(d) for d in shape])
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"data.tensor is invalid: {exc}") from exc


def encode_tensor(array: ArrayLike) -> dict[str, Any]:
    arr = _as_float64(array)
    return {"shape": list(arr.shape), "values": np.ascontiguousarray(arr).reshape(-1)}


def decode_tensor_proto(tensor: prediction_pb2.Tensor) -> Array:
    shape = list(tensor.shape)
    flat = _packed_values(tensor.SerializeToString())
    return _reshape(flat, shape)


def encode_tensor_proto(array: ArrayLike, out: prediction_pb2.Tensor) -> None:
    arr = _as_float64(array)
    shape = bytearray()
    for dim in arr.shape:
        shape += write_varint(dim)
    data = np.ascontiguousarray(arr, dtype=_F64).tobytes()
    blob = bytes([_SHAPE_TAG]) + write_varint(len(shape)) + bytes(shape)
    blob += bytes([_VALUES_TAG]) + write_varint(len(data)) + data
    out.Clear()
    out.SetInParent()
    out.MergeFromString(blob)


def _as_float64(array: ArrayLike) -> Array:
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UserCodeError(f"output cannot be encoded as data.tensor: {exc}") from exc


def _reshape(flat: Array, shape: list[int]) -> Array:
    if not shape:
        return flat
    if any(d < 0 for d in shape):
        raise BadRequest(f"data.tensor shape {shape} has a negative dimension")
    expected = int(np.prod(shape))
    if expected != flat.size:
        raise BadRequest(f"data.tensor has {flat.size} values but shape {shape} needs {expected}")
    return flat.reshape(shape)


def _packed_values(blob: bytes) -> Array:
    """The `values` field of a serialised canonical (packed) `Tensor`, as float64."""
    pos = 0
    while pos < len(blob):
        tag, pos = read_varint(blob, pos)
        if tag & 7 != 2:  # upb always re-serialises repeated scalars packed
            raise BadRequest("data.tensor is not packed")
        length, pos = read_varint(blob, pos)
        if tag >> 3 == 2:
            # a copy, so user code may write to its input as it can with JSON
            return np.frombuffer(blob, dtype=_F64, count=length // 8, offset=pos).copy()
        pos += length
    return np.empty(0, dtype=np.float64)
