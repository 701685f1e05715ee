"""V2 REST bodies ↔ `tensors` values, including the binary tensor extension.

With the extension, the body is a JSON header of `Inference-Header-Content-Length` bytes followed by the
raw tensors, in input order, each as long as its `parameters.binary_data_size`; numeric tensors are
viewed in place with `np.frombuffer` (no copy), BYTES elements carry 4-byte little-endian lengths.
An output goes back binary when its requested `parameters.binary_data` is true, or when the request's
`parameters.binary_data_output` is true and the output names no preference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model_runtime.codecs.json_message import dumps, loads
from model_runtime.errors import BadRequest
from model_runtime.tensors import (
    BYTES,
    DTYPES,
    Array,
    InferRequest,
    InferResponse,
    RequestedOutput,
    Tensor,
    bytes_array,
    check_datatype,
    check_shape,
    encode_length_prefixed,
    from_buffer,
    shaped,
)

BINARY_SIZE = "binary_data_size"


def decode_v2_json_request(
    body: bytes, header_length: int | None, model_name: str, model_version: str
) -> InferRequest:
    """`header_length` is the `Inference-Header-Content-Length` header (None without the extension)."""
    header: bytes | memoryview
    if header_length is None:
        header, binary = body, memoryview(b"")
    else:
        if header_length < 0 or header_length > len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length {header_length} is outside the {len(body)} byte body"
            )
        view = memoryview(body)
        header, binary = view[:header_length], view[header_length:]
    value = loads(bytes(header) if isinstance(header, memoryview) else header)
    if not isinstance(value, dict):
        raise BadRequest("the inference request must be a JSON object")
    raw_inputs = value.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("the inference request needs a non-empty inputs list")
    inputs: list[Tensor] = []
    offset = 0
    for raw in raw_inputs:
        tensor, offset = _decode_input(raw, binary, offset)
        inputs.append(tensor)
    if offset != len(binary):
        raise BadRequest(f"{len(binary) - offset} bytes of binary data follow the last input")
    return InferRequest(
        model_name=model_name,
        model_version=model_version,
        inputs=inputs,
        id=_string(value.get("id", ""), "id"),
        parameters=_parameters(value.get("parameters"), "parameters"),
        outputs=_requested(value.get("outputs")),
    )


def encode_v2_json_response(
    response: InferResponse, request: InferRequest | None = None
) -> tuple[bytes, int | None]:
    """The body, and the JSON header length when some output went binary (for the response header)."""
    binary_default = bool(request and request.parameters.get("binary_data_output"))
    wanted = {o.name: o for o in request.outputs} if request and request.outputs else {}
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor in response.outputs:
        requested = wanted.get(tensor.name)
        binary = requested.parameters.get("binary_data", binary_default) if requested else binary_default
        parameters = dict(tensor.parameters)
        out: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if binary:
            blob = _tensor_bytes(tensor)
            parameters[BINARY_SIZE] = len(blob)
            blobs.append(blob)
        else:
            out["data"] = _json_data(tensor)
        if parameters:
            out["parameters"] = parameters
        outputs.append(out)
    body: dict[str, Any] = {"model_name": response.model_name, "id": response.id}
    if response.model_version:
        body["model_version"] = response.model_version
    if response.parameters:
        body["parameters"] = response.parameters
    body["outputs"] = outputs
    header = dumps(body)
    if not blobs:
        return header, None
    return b"".join((header, *blobs)), len(header)


def _decode_input(raw: Any, binary: memoryview, offset: int) -> tuple[Tensor, int]:
    if not isinstance(raw, dict):
        raise BadRequest("each input must be an object with name, shape, datatype and data")
    name = raw.get("name")
    if not isinstance(name, str):
        raise BadRequest("an input has no name")
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise BadRequest(f"input {name!r} has no datatype")
    check_datatype(name, datatype)
    shape = check_shape(name, raw.get("shape"))
    parameters = _parameters(raw.get("parameters"), f"input {name!r} parameters")
    size = parameters.get(BINARY_SIZE)
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"input {name!r}: binary_data_size must be a non-negative integer")
        if offset + size > len(binary):
            raise BadRequest(f"input {name!r}: binary_data_size {size} runs past the end of the body")
        if "data" in raw:
            raise BadRequest(f"input {name!r} has both data and binary_data_size")
        data = from_buffer(name, datatype, shape, binary[offset : offset + size])
        return Tensor(name, datatype, shape, data, parameters), offset + size
    if "data" not in raw:
        raise BadRequest(f"input {name!r} has no data")
    return Tensor(name, datatype, shape, _from_json(name, datatype, shape, raw["data"]), parameters), offset


def _from_json(name: str, datatype: str, shape: list[int], data: Any) -> Array:
    if datatype == BYTES:
        items = _flat_bytes(name, data)
        return shaped(name, bytes_array(items), shape)
    dtype = DTYPES[datatype]
    try:
        array = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"input {name!r}: data is not {datatype}: {exc}") from exc
    if dtype.kind in "iu" and array.dtype.kind in "fO":
        array = _big_integers(name, datatype, data, array)
    if array.size and array.dtype.kind not in _ACCEPTED_KINDS[dtype.kind]:
        got = "strings" if array.dtype.kind in "USO" else str(array.dtype)
        raise BadRequest(f"input {name!r}: data is not {datatype} (got {got})")
    if dtype.kind in "iu" and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise BadRequest(f"input {name!r}: values out of range for {datatype}")
    return shaped(name, array.astype(dtype, copy=False).reshape(-1), shape)


def _big_integers(name: str, datatype: str, data: Any, inferred: Array) -> Array:
    """Integers past int64 (UINT64's upper half) make numpy infer float or object: check and keep them."""
    flat = np.asarray(data, dtype=object).reshape(-1)
    if not all(type(v) is int for v in flat.tolist()):
        return inferred
    try:
        return np.asarray(flat.tolist(), dtype=DTYPES[datatype])
    except OverflowError as exc:
        raise BadRequest(f"input {name!r}: values out of range for {datatype}") from exc


# which inferred numpy kinds each V2 kind accepts from JSON: no strings, no silent float truncation
_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}


def _flat_bytes(name: str, data: Any) -> list[bytes]:
    out: list[bytes] = []
    stack = [data] if not isinstance(data, list) else list(reversed(data))
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            out.append(item.encode())
        else:
            raise BadRequest(f"input {name!r}: BYTES data must be strings, got {type(item).__name__}")
    return out


def _json_data(tensor: Tensor) -> Any:
    array = tensor.data
    if tensor.datatype == BYTES:
        return [_text(v) for v in array.reshape(-1).tolist()]
    if tensor.datatype == "FP16":
        array = array.astype(np.float32)
    return np.ascontiguousarray(array).reshape(-1)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _tensor_bytes(tensor: Tensor) -> bytes:
    if tensor.datatype == BYTES:
        return encode_length_prefixed(tensor.data)
    return np.ascontiguousarray(tensor.data, dtype=DTYPES[tensor.datatype]).tobytes()


def _requested(raw: Any) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadRequest("outputs must be a list of {name, parameters}")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest("each requested output needs a name")
        out.append(RequestedOutput(item["name"], _parameters(item.get("parameters"), "output parameters")))
    return out


def _parameters(raw: Any, what: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest(f"{what} must be an object")
    return raw


def _string(raw: Any, what: str) -> str:
    if not isinstance(raw, str):
        raise BadRequest(f"{what} must be a string")
    return raw
