"""`data.ndarray`: nested JSON lists (REST) or a `google.protobuf.ListValue` (gRPC) ↔ numpy arrays.

Like Seldon's wrapper, integer-only JSON becomes an integer array and strings stay strings; gRPC numbers
are always doubles because `google.protobuf.Value` has no integers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import struct_pb2

from model_runtime.errors import BadRequest, UserCodeError
from model_runtime.message import ArrayLike

Array = np.ndarray[Any, Any]


def decode_ndarray(value: Any) -> Array:
    if not isinstance(value, list):
        raise BadRequest(f"data.ndarray must be a JSON array, got {type(value).__name__}")
    try:
        return np.asarray(value)
    except ValueError:
        # ragged rows: keep the outer dimension, one object per row, as Seldon users expect
        ragged = np.empty(len(value), dtype=object)
        ragged[:] = value
        return ragged


def encode_ndarray(array: ArrayLike) -> Any:
    """The JSON value for `data.ndarray`; numeric numpy arrays are left for orjson to write natively."""
    if isinstance(array, np.ndarray):
        if array.dtype.kind in "biuf" and array.flags.c_contiguous:
            return array
        return array.tolist()
    return array


def decode_ndarray_proto(value: struct_pb2.ListValue) -> Array:
    return decode_ndarray(_list_from_proto(value))


def encode_ndarray_proto(array: ArrayLike, out: struct_pb2.ListValue) -> None:
    rows = array.tolist() if isinstance(array, np.ndarray) else array
    out.Clear()
    try:
        out.extend(rows)
    except (TypeError, ValueError):
        out.Clear()
        try:
            out.extend(_jsonable(rows))
        except (TypeError, ValueError) as exc:
            raise UserCodeError(f"output cannot be encoded as data.ndarray: {exc}") from exc


def _list_from_proto(value: struct_pb2.ListValue) -> list[Any]:
    out: list[Any] = []
    for item in value:
        if isinstance(item, struct_pb2.ListValue):
            out.append(_list_from_proto(item))
        elif isinstance(item, struct_pb2.Struct):
            out.append(_struct_from_proto(item))
        else:
            out.append(item)
    return out


def _struct_from_proto(value: struct_pb2.Struct) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, struct_pb2.ListValue):
            out[key] = _list_from_proto(item)
        elif isinstance(item, struct_pb2.Struct):
            out[key] = _struct_from_proto(item)
        else:
            out[key] = item
    return out


def _jsonable(value: Any) -> Any:
    """Make `tolist()` output acceptable to ListValue: bytes become text, numpy scalars Python numbers."""
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value
