"""`data.ndarray`: nested JSON lists (REST) or a `google.protobuf.ListValue` (gRPC) ↔ numpy arrays.

Like Seldon's wrapper, integer-only JSON becomes an integer array and strings stay strings; gRPC numbers
are always doubles because `google.protobuf.Value` has no integers.

Walking a ListValue in Python costs microseconds per element, so numeric 1-D and 2-D arrays take a fast
path on the serialised bytes instead: every number is an 11-byte record (`0A 09 11` + a little-endian
double) and every row of a rectangular matrix has the same header, so numpy can check and read (or
write) the whole array with a few vectorised operations. Anything else takes the general path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import struct_pb2

from model_runtime.codecs.wire import read_varint, write_varint
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
    if len(value) * _RECORD >= _FAST_BYTES or (len(value) and isinstance(value[0], struct_pb2.ListValue)):
        blob = value.SerializeToString()
        if len(blob) >= _FAST_BYTES:
            fast = _decode_numeric(blob)
            if fast is not None:
                return fast
    return decode_ndarray(_list_from_proto(value))


def encode_ndarray_proto(array: ArrayLike, out: struct_pb2.ListValue) -> None:
    out.Clear()
    if (
        isinstance(array, np.ndarray)
        and array.size >= _FAST_ELEMENTS
        and array.dtype.kind in "iuf"
        and array.ndim in (1, 2)
    ):
        out.MergeFromString(_encode_numeric(array))
        return
    rows = array.tolist() if isinstance(array, np.ndarray) else array
    try:
        out.extend(rows)
    except (TypeError, ValueError):
        out.Clear()
        try:
            out.extend(_jsonable(rows))
        except (TypeError, ValueError) as exc:
            raise UserCodeError(f"output cannot be encoded as data.ndarray: {exc}") from exc


_NUMBER = np.frombuffer(b"\x0a\x09\x11", dtype=np.uint8)  # list element, length 9, number_value tag
_RECORD = 11
# below this many numbers the fixed cost of the numpy path is more than walking the list (measured)
_FAST_ELEMENTS = 16
_FAST_BYTES = _FAST_ELEMENTS * _RECORD
_LIST_VALUE_TAG = 0x32  # Value.list_value: field 6, length-delimited


def _decode_numeric(blob: bytes) -> Array | None:
    """The array, if `blob` is a ListValue of numbers or of equal-length lists of numbers; else None."""
    size = len(blob)
    if size == 0 or blob[0] != 0x0A:
        return None
    raw = np.frombuffer(blob, dtype=np.uint8)
    if blob[1:3] == b"\x09\x11":  # flat: every element a number
        if size % _RECORD:
            return None
        records = raw.reshape(-1, _RECORD)
        if not (records[:, :3] == _NUMBER).all():
            return None
        return records[:, 3:].copy().view("<f8").reshape(-1)
    # a matrix: element header (0A len), Value header (32 len), then `columns` number records
    value_len, pos = read_varint(blob, 1)
    if pos >= size or blob[pos] != _LIST_VALUE_TAG:
        return None
    inner_len, header = read_varint(blob, pos + 1)
    if inner_len == 0 or inner_len % _RECORD or header + inner_len != pos + value_len:
        return None
    row_len = header + inner_len
    if size % row_len:
        return None
    rows = raw.reshape(-1, row_len)
    if not (rows[:, :header] == rows[0, :header]).all():
        return None
    cells = rows[:, header:].reshape(rows.shape[0], -1, _RECORD)
    if not (cells[:, :, :3] == _NUMBER).all():
        return None
    return cells[:, :, 3:].copy().view("<f8").reshape(cells.shape[0], cells.shape[1])


def _encode_numeric(array: Array) -> bytes:
    values = np.ascontiguousarray(array, dtype="<f8")
    matrix = values.reshape(values.shape[0], -1) if values.ndim == 2 else values.reshape(1, -1)
    rows, columns = matrix.shape
    cells = np.empty((rows, columns, _RECORD), dtype=np.uint8)
    cells[:, :, :3] = _NUMBER
    cells[:, :, 3:] = matrix.view(np.uint8).reshape(rows, columns, 8)
    if values.ndim == 1:
        return cells.tobytes()
    inner_len = columns * _RECORD
    value = bytes([_LIST_VALUE_TAG]) + write_varint(inner_len)
    header = np.frombuffer(b"\x0a" + write_varint(len(value) + inner_len) + value, dtype=np.uint8)
    out = np.empty((rows, len(header) + inner_len), dtype=np.uint8)
    out[:, : len(header)] = header
    out[:, len(header) :] = cells.reshape(rows, inner_len)
    return out.tobytes()


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
