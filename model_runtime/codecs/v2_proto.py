"""V2 gRPC messages (`inference.ModelInferRequest`/`Response`) ↔ `tensors` values.

`raw_input_contents` are viewed with `np.frombuffer` (no copy beyond the one upb makes when handing out
the bytes). FP32/FP64 `contents` are read and written as packed bytes, never element by element in
Python; other typed contents go through one C-level list conversion. A request that came raw is answered
raw (`raw_output_contents`), as Triton does; otherwise outputs go in typed `contents`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from generated.inference import dataplane_pb2 as v2
from model_runtime.codecs.wire import read_varint, write_varint
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

# datatype -> InferTensorContents field (FP16 has none: it must be sent raw)
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_PACKED_FIELD_NUMBER = {"FP32": 6, "FP64": 7}


def decode_v2_proto_request(request: v2.ModelInferRequest) -> tuple[InferRequest, bool]:
    """The request, and whether it came with `raw_input_contents` (then the reply goes raw too)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    inputs: list[Tensor] = []
    for index, item in enumerate(request.inputs):
        name, datatype = item.name, item.datatype
        check_datatype(name, datatype)
        shape = check_shape(name, list(item.shape))
        if raw:
            if item.HasField("contents"):
                raise BadRequest(f"input {name!r} sets contents while raw_input_contents is used")
            data = from_buffer(name, datatype, shape, raw[index])
        else:
            data = _from_contents(name, datatype, shape, item.contents)
        inputs.append(Tensor(name, datatype, shape, data, decode_parameters(item.parameters)))
    outputs = (
        [RequestedOutput(o.name, decode_parameters(o.parameters)) for o in request.outputs]
        if request.outputs
        else None
    )
    decoded = InferRequest(
        model_name=request.model_name,
        model_version=request.model_version,
        inputs=inputs,
        id=request.id,
        parameters=decode_parameters(request.parameters),
        outputs=outputs,
    )
    return decoded, bool(raw)


def encode_v2_proto_response(response: InferResponse, raw: bool) -> v2.ModelInferResponse:
    out = v2.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    encode_parameters(response.parameters, out.parameters)
    for tensor in response.outputs:
        item = out.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        encode_parameters(tensor.parameters, item.parameters)
        if raw or tensor.datatype == "FP16":
            raw = True
        else:
            _to_contents(tensor, item.contents)
    if raw:
        for item in out.outputs:
            item.ClearField("contents")
        out.raw_output_contents.extend(_raw_bytes(t) for t in response.outputs)
    return out


def decode_parameters(parameters: Any) -> dict[str, Any]:
    if not parameters:
        return {}
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        which = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, which) if which else None
    return out


def encode_parameters(values: dict[str, Any], out: Any) -> None:
    for key, value in values.items():
        target = out[key]
        if isinstance(value, bool):
            target.bool_param = value
        elif isinstance(value, int):
            if value >= 1 << 63:
                target.uint64_param = value
            else:
                target.int64_param = value
        elif isinstance(value, float):
            target.double_param = value
        else:
            target.string_param = str(value)


def _from_contents(name: str, datatype: str, shape: list[int], contents: v2.InferTensorContents) -> Array:
    if datatype == "FP16":
        raise BadRequest(f"input {name!r}: FP16 data must be sent in raw_input_contents")
    field = CONTENTS_FIELD[datatype]
    present = [descriptor.name for descriptor, _ in contents.ListFields()]
    if any(p != field for p in present):
        raise BadRequest(f"input {name!r}: a {datatype} tensor needs {field}, got {', '.join(present)}")
    if datatype == BYTES:
        return shaped(name, bytes_array(list(contents.bytes_contents)), shape)
    if datatype in _PACKED_FIELD_NUMBER:
        flat = _packed(contents.SerializeToString(), DTYPES[datatype])
    else:
        try:
            flat = np.array(getattr(contents, field), dtype=DTYPES[datatype])
        except OverflowError as exc:  # e.g. 70000 in the int_contents of an INT16 tensor
            raise BadRequest(f"input {name!r}: a value is out of the range of {datatype}: {exc}") from None
    return shaped(name, flat, shape)


def _packed(blob: bytes, dtype: np.dtype[Any]) -> Array:
    """The one packed field of a serialised `InferTensorContents`, as a numpy view."""
    pos = 0
    while pos < len(blob):
        tag, pos = read_varint(blob, pos)
        length, pos = read_varint(blob, pos)
        if tag & 7 == 2:
            return np.frombuffer(blob, dtype=dtype, count=length // dtype.itemsize, offset=pos)
        pos += length
    return np.empty(0, dtype=dtype)


def _to_contents(tensor: Tensor, out: v2.InferTensorContents) -> None:
    datatype = tensor.datatype
    if datatype == BYTES:
        out.bytes_contents.extend(encode_length_prefixed_items(tensor.data))
        return
    number = _PACKED_FIELD_NUMBER.get(datatype)
    if number is not None:
        data = np.ascontiguousarray(tensor.data, dtype=DTYPES[datatype]).tobytes()
        out.MergeFromString(bytes([number << 3 | 2]) + write_varint(len(data)) + data)
        return
    getattr(out, CONTENTS_FIELD[datatype]).extend(tensor.data.reshape(-1).tolist())


def encode_length_prefixed_items(array: Array) -> list[bytes]:
    return [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1).tolist()]


def _raw_bytes(tensor: Tensor) -> bytes:
    if tensor.datatype == BYTES:
        return encode_length_prefixed(tensor.data)
    return np.ascontiguousarray(tensor.data, dtype=DTYPES[tensor.datatype]).tobytes()
