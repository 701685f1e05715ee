"""`data.tftensor`: TensorFlow's `TensorProto`, as the proto itself (gRPC) or its proto3 JSON (REST).

Numeric arrays go out in `tensor_content` on the wire (one memcpy each way) and as typed `*Val` lists in
JSON (readable with curl); decoding accepts both forms, and a single value broadcast over the shape as
TensorFlow does.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from generated.tensorflow import tensor_pb2
from model_runtime.errors import BadRequest, UserCodeError
from model_runtime.message import ArrayLike

Array = np.ndarray[Any, Any]

# one value broadcast over a shape is how TF writes constants; a request may not make us allocate more
_MAX_BROADCAST = 1 << 24

# DataType name → (numpy dtype, repeated field in TensorProto, its JSON name)
_TYPES: dict[str, tuple[np.dtype[Any], str, str]] = {
    "DT_FLOAT": (np.dtype("<f4"), "float_val", "floatVal"),
    "DT_DOUBLE": (np.dtype("<f8"), "double_val", "doubleVal"),
    "DT_INT32": (np.dtype("<i4"), "int_val", "intVal"),
    "DT_UINT8": (np.dtype("u1"), "int_val", "intVal"),
    "DT_INT16": (np.dtype("<i2"), "int_val", "intVal"),
    "DT_INT8": (np.dtype("i1"), "int_val", "intVal"),
    "DT_UINT16": (np.dtype("<u2"), "int_val", "intVal"),
    "DT_INT64": (np.dtype("<i8"), "int64_val", "int64Val"),
    "DT_UINT32": (np.dtype("<u4"), "uint32_val", "uint32Val"),
    "DT_UINT64": (np.dtype("<u8"), "uint64_val", "uint64Val"),
    "DT_BOOL": (np.dtype("bool"), "bool_val", "boolVal"),
    "DT_HALF": (np.dtype("<f2"), "half_val", "halfVal"),
    "DT_STRING": (np.dtype(object), "string_val", "stringVal"),
}
_BY_KIND: dict[np.dtype[Any], str] = {
    np.dtype("<f4"): "DT_FLOAT",
    np.dtype("<f8"): "DT_DOUBLE",
    np.dtype("<i4"): "DT_INT32",
    np.dtype("u1"): "DT_UINT8",
    np.dtype("<i2"): "DT_INT16",
    np.dtype("i1"): "DT_INT8",
    np.dtype("<u2"): "DT_UINT16",
    np.dtype("<i8"): "DT_INT64",
    np.dtype("<u4"): "DT_UINT32",
    np.dtype("<u8"): "DT_UINT64",
    np.dtype("bool"): "DT_BOOL",
    np.dtype("<f2"): "DT_HALF",
}


def decode_tftensor(value: Any) -> Array:
    if not isinstance(value, dict):
        raise BadRequest("data.tftensor must be an object (TensorProto JSON)")
    dtype_name = value.get("dtype", "DT_INVALID")
    if isinstance(dtype_name, int):
        dtype_name = tensor_pb2.DataType.Name(dtype_name)
    dtype, _, json_field = _lookup(dtype_name)
    shape = _shape(value.get("tensorShape", {}).get("dim", []))
    try:
        if "tensorContent" in value:
            raw = base64.b64decode(value["tensorContent"])
            return _from_content(raw, dtype, shape)
        values = value.get(json_field, [])
        if dtype_name == "DT_STRING":
            flat = np.array([base64.b64decode(v) for v in values] or [], dtype=object)
        elif dtype_name == "DT_HALF":
            flat = np.asarray(values, dtype=np.uint16).view(np.float16)
        else:
            flat = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"data.tftensor is invalid: {exc}") from exc
    return _fill(flat, shape)


def encode_tftensor(array: ArrayLike) -> dict[str, Any]:
    arr, dtype_name = _typed(array)
    out: dict[str, Any] = {
        "dtype": dtype_name,
        "tensorShape": {"dim": [{"size": int(d)} for d in arr.shape]},
    }
    _, _, json_field = _TYPES[dtype_name]
    if dtype_name == "DT_STRING":
        out[json_field] = [base64.b64encode(_as_bytes(v)).decode() for v in arr.reshape(-1)]
    elif dtype_name == "DT_HALF":
        out[json_field] = np.ascontiguousarray(arr).reshape(-1).view(np.uint16).astype(np.int32)
    else:
        out[json_field] = np.ascontiguousarray(arr).reshape(-1)
    return out


def decode_tftensor_proto(tensor: tensor_pb2.TensorProto) -> Array:
    dtype_name = tensor_pb2.DataType.Name(tensor.dtype)
    dtype, field, _ = _lookup(dtype_name)
    shape = _checked([int(d.size) for d in tensor.tensor_shape.dim])
    try:
        if tensor.tensor_content:
            return _from_content(tensor.tensor_content, dtype, shape)
        values = getattr(tensor, field)
        if dtype_name == "DT_STRING":
            flat = np.array(list(values), dtype=object)
        elif dtype_name == "DT_HALF":
            flat = np.asarray(values, dtype=np.uint16).view(np.float16)
        else:
            flat = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"data.tftensor is invalid: {exc}") from exc
    return _fill(flat, shape)


def encode_tftensor_proto(array: ArrayLike, out: tensor_pb2.TensorProto) -> None:
    arr, dtype_name = _typed(array)
    out.Clear()
    out.dtype = tensor_pb2.DataType.Value(dtype_name)  # type: ignore[assignment]
    out.tensor_shape.SetInParent()
    for dim in arr.shape:
        out.tensor_shape.dim.add(size=int(dim))
    if dtype_name == "DT_STRING":
        out.string_val.extend(_as_bytes(v) for v in arr.reshape(-1))
    else:
        out.tensor_content = np.ascontiguousarray(arr).tobytes()


def _lookup(dtype_name: str) -> tuple[np.dtype[Any], str, str]:
    try:
        return _TYPES[dtype_name]
    except KeyError:
        raise BadRequest(f"data.tftensor dtype {dtype_name!r} is not supported") from None


def _shape(dims: Any) -> list[int]:
    try:
        shape = [int(d.get("size", 0)) for d in dims]
    except (AttributeError, TypeError, ValueError) as exc:
        raise BadRequest(f"data.tftensor tensorShape is invalid: {exc}") from exc
    return _checked(shape)


def _checked(shape: list[int]) -> list[int]:
    if any(d < 0 for d in shape):
        raise BadRequest(f"data.tftensor shape {shape} has a negative dimension")
    return shape


def _from_content(raw: bytes, dtype: np.dtype[Any], shape: list[int]) -> Array:
    if dtype == np.dtype(object):
        raise BadRequest("data.tftensor DT_STRING cannot use tensorContent")
    if len(raw) % dtype.itemsize:
        raise BadRequest("data.tftensor tensorContent length does not match its dtype")
    flat = np.frombuffer(raw, dtype=dtype).copy()
    return _fill(flat, shape)


def _fill(flat: Array, shape: list[int]) -> Array:
    size = int(np.prod(shape)) if shape else 1
    if flat.size == size:
        return flat.reshape(shape)
    if flat.size == 1:
        if size > _MAX_BROADCAST:
            raise BadRequest(f"data.tftensor shape {shape} is too large to fill from one value")
        return np.full(shape, flat[0], dtype=flat.dtype)
    raise BadRequest(f"data.tftensor has {flat.size} values but shape {shape} needs {size}")


def _typed(array: ArrayLike) -> tuple[Array, str]:
    arr = np.asarray(array)
    if arr.dtype.kind in "USO":
        return arr.astype(object), "DT_STRING"
    dtype_name = _BY_KIND.get(arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype)
    if dtype_name is None:
        raise UserCodeError(f"output dtype {arr.dtype} cannot be encoded as data.tftensor")
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False), dtype_name


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")
