"""Open Inference Protocol (V2) values: tensors, requests and responses, and the datatype table.

The V2 codecs (`codecs.v2_json`, `codecs.v2_proto`) decode into these and encode from them, so the V2
core (`inference`) never sees JSON or protobuf. Tensor data is always a numpy array already in the
tensor's shape; BYTES tensors are object arrays of `bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_runtime.errors import BadRequest, UserCodeError

Array = np.ndarray[Any, Any]

# V2 datatype -> little-endian numpy dtype (BYTES is handled apart: object arrays of bytes)
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
BYTES = "BYTES"
DATATYPES = (*DTYPES, BYTES)
_BY_KIND = {dtype.newbyteorder("="): name for name, dtype in DTYPES.items()}

MAX_ELEMENTS = 1 << 31  # a shape asking for more elements than this is bad data, not an allocation


@dataclass(slots=True)
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: Array
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InferRequest:
    model_name: str
    model_version: str
    inputs: list[Tensor]
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None


@dataclass(slots=True)
class InferResponse:
    model_name: str
    model_version: str
    id: str
    outputs: list[Tensor]
    parameters: dict[str, Any] = field(default_factory=dict)


def check_datatype(name: str, datatype: str) -> None:
    if datatype not in DTYPES and datatype != BYTES:
        raise BadRequest(f"input {name!r}: unknown datatype {datatype!r} (one of {', '.join(DATATYPES)})")


def check_shape(name: str, shape: Any) -> list[int]:
    """The shape as ints; negative, non-integer or absurdly large shapes are bad data."""
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in shape
    ):
        raise BadRequest(f"input {name!r}: shape must be a list of integers, got {shape!r}")
    if any(d < 0 for d in shape):
        raise BadRequest(f"input {name!r}: shape {list(shape)} has a negative dimension")
    dims = list(shape)
    if element_count(dims) > MAX_ELEMENTS:
        raise BadRequest(f"input {name!r}: shape {dims} is too large")
    return dims


def element_count(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def shaped(name: str, flat: Array, shape: list[int]) -> Array:
    expected = element_count(shape)
    if flat.size != expected:
        raise BadRequest(f"input {name!r}: {flat.size} values do not fill shape {shape} ({expected} needed)")
    return flat.reshape(shape)


def from_buffer(name: str, datatype: str, shape: list[int], blob: bytes | memoryview) -> Array:
    """A tensor over raw little-endian bytes (no copy for numeric types)."""
    if datatype == BYTES:
        return shaped(name, decode_length_prefixed(name, blob), shape)
    dtype = DTYPES[datatype]
    if len(blob) != element_count(shape) * dtype.itemsize:
        raise BadRequest(
            f"input {name!r}: {len(blob)} raw bytes do not fill shape {shape} of {datatype} "
            f"({element_count(shape) * dtype.itemsize} needed)"
        )
    return np.frombuffer(blob, dtype=dtype).reshape(shape)


def decode_length_prefixed(name: str, blob: bytes | memoryview) -> Array:
    """BYTES elements, each after a 4-byte little-endian length."""
    view = memoryview(blob)
    items: list[bytes] = []
    pos, end = 0, len(view)
    while pos < end:
        if pos + 4 > end:
            raise BadRequest(f"input {name!r}: truncated BYTES element length")
        length = int.from_bytes(view[pos : pos + 4], "little")
        pos += 4
        if pos + length > end:
            raise BadRequest(f"input {name!r}: BYTES element runs past the end of its data")
        items.append(bytes(view[pos : pos + length]))
        pos += length
    return bytes_array(items)


def encode_length_prefixed(array: Array) -> bytes:
    parts: list[bytes] = []
    for item in array.reshape(-1):
        value = as_bytes(item)
        parts.append(len(value).to_bytes(4, "little"))
        parts.append(value)
    return b"".join(parts)


def bytes_array(items: list[bytes]) -> Array:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, bytearray | memoryview):
        return bytes(item)
    return str(item).encode()


def to_output(name: str, value: Any) -> Tensor:
    """A model's return value (array, list, scalar, strings) as an output tensor."""
    array = value if isinstance(value, np.ndarray) else _as_array(name, value)
    if array.ndim == 0:
        array = array.reshape(1)
    datatype = datatype_of(array)
    if datatype is None:
        raise UserCodeError(f"output {name!r} has dtype {array.dtype}, which has no V2 datatype")
    if datatype == BYTES and array.dtype != object:
        array = bytes_array([as_bytes(v) for v in array.reshape(-1).tolist()]).reshape(array.shape)
    return Tensor(name, datatype, list(array.shape), array)


def datatype_of(array: Array) -> str | None:
    kind = array.dtype.kind
    if kind in "OSU":
        return BYTES
    return _BY_KIND.get(array.dtype.newbyteorder("="))


def _as_array(name: str, value: Any) -> Array:
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise UserCodeError(f"output {name!r} cannot be encoded as a tensor: {exc}") from exc
