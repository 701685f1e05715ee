"""The V2 binary tensor data extension (Triton's and KServe's) on graph routes: body <-> plain V2 JSON.

A request with the `Inference-Header-Content-Length` header is a JSON header of that many bytes followed
by raw tensors, in input order, each `parameters.binary_data_size` long: numbers little-endian, BYTES
elements each after a 4-byte little-endian length. An output goes back raw when its requested
`parameters.binary_data` is true, or when the request's `parameters.binary_data_output` is true and the
output says nothing; the answer then carries the header too. The executor only ever sees plain V2 JSON
(`data` lists), so nodes get the graph's input in whatever protocol they speak.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from extproc.codecs.dtypes import V2_TO_NUMPY
from extproc.codecs.errors import CodecError

Json = dict[str, Any]
HEADER = "inference-header-content-length"
BINARY_SIZE = "binary_data_size"


def decode_binary_request(body: bytes, header_length: int) -> Json:
    """The request as plain V2 JSON: each input with `binary_data_size` gets its `data` from the bytes."""
    if header_length < 0 or header_length > len(body):
        raise CodecError(
            f"Inference-Header-Content-Length {header_length} is outside the {len(body)} byte body"
        )
    try:
        request = orjson.loads(body[:header_length])
    except orjson.JSONDecodeError as error:
        raise CodecError(f"invalid JSON header: {error}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise CodecError("a V2 inference request needs a non-empty inputs list")
    view, offset = memoryview(body)[header_length:], 0
    inputs: list[Json] = []
    for tensor in request["inputs"]:
        raw_parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        parameters: Json = raw_parameters if isinstance(raw_parameters, dict) else {}
        size = parameters.get(BINARY_SIZE)
        if size is None:
            inputs.append(tensor)
            continue
        name = tensor.get("name")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(view):
            raise CodecError(f"input {name!r}: binary_data_size {size!r} does not fit the body")
        if "data" in tensor:
            raise CodecError(f"input {name!r} has both data and binary_data_size")
        rest = {k: v for k, v in parameters.items() if k != BINARY_SIZE}
        data = _values(str(name), str(tensor.get("datatype", "")), bytes(view[offset : offset + size]))
        decoded = {**tensor, "data": data}
        if rest:
            decoded["parameters"] = rest
        else:
            decoded.pop("parameters")
        inputs.append(decoded)
        offset += size
    if offset != len(view):
        raise CodecError(f"{len(view) - offset} bytes of binary data follow the last input")
    return {**request, "inputs": inputs}


def wants_binary(request: Json) -> bool:
    """Does the request ask for any output in binary?"""
    outputs = request.get("outputs")
    return _binary_default(request) or (isinstance(outputs, list) and any(_asked(o) is True for o in outputs))


def encode_binary_response(response: Json, request: Json) -> tuple[bytes, int | None]:
    """The answer's body, and its JSON header length when some output went raw (None: plain JSON)."""
    default = _binary_default(request)
    asked = {o.get("name"): _asked(o) for o in request.get("outputs") or () if isinstance(o, dict)}
    outputs: list[Json] = []
    blobs: list[bytes] = []
    for output in response.get("outputs", []):
        wanted = asked.get(output.get("name"))
        if not (default if wanted is None else wanted):
            outputs.append(output)
            continue
        blob = tensor_bytes(output)
        encoded = {k: v for k, v in output.items() if k != "data"}
        encoded["parameters"] = {**(output.get("parameters") or {}), BINARY_SIZE: len(blob)}
        outputs.append(encoded)
        blobs.append(blob)
    header = orjson.dumps({**response, "outputs": outputs}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join((header, *blobs)), len(header)


def _binary_default(request: Json) -> bool:
    parameters = request.get("parameters")
    return isinstance(parameters, dict) and parameters.get("binary_data_output") is True


def _asked(output: Any) -> bool | None:
    parameters = output.get("parameters") if isinstance(output, dict) else None
    value = parameters.get("binary_data") if isinstance(parameters, dict) else None
    return value if isinstance(value, bool) else None


def _values(name: str, datatype: str, raw: bytes) -> list[Any]:
    if datatype == "BYTES":
        values, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise CodecError(f"input {name!r}: a BYTES element's length prefix is cut off")
            length = int.from_bytes(raw[offset : offset + 4], "little")
            if offset + 4 + length > len(raw):
                raise CodecError(f"input {name!r}: a BYTES element runs past its binary_data_size")
            values.append(raw[offset + 4 : offset + 4 + length].decode("utf-8", "replace"))
            offset += 4 + length
        return values
    dtype = V2_TO_NUMPY.get(datatype)
    if dtype is None:
        raise CodecError(f"input {name!r}: unknown datatype {datatype!r}")
    if len(raw) % dtype.itemsize:
        raise CodecError(f"input {name!r}: {len(raw)} bytes do not hold whole {datatype}s")
    numbers: list[Any] = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).tolist()
    return numbers


def tensor_bytes(output: Json) -> bytes:
    """A V2 JSON tensor's `data` as the extension's raw bytes (also gRPC's `raw_output_contents`)."""
    datatype, name = str(output.get("datatype", "")), output.get("name")
    data = output.get("data", [])
    if datatype == "BYTES":
        flat = np.asarray(data, dtype=object).ravel().tolist()
        items = [v if isinstance(v, bytes) else str(v).encode() for v in flat]
        return b"".join(len(v).to_bytes(4, "little") + v for v in items)
    dtype = V2_TO_NUMPY.get(datatype)
    if dtype is None:
        raise CodecError(f"output {name!r}: unknown datatype {datatype!r}")
    try:
        array = np.asarray(data, dtype=dtype.newbyteorder("<")).ravel()
    except (TypeError, ValueError, OverflowError) as error:
        raise CodecError(f"output {name!r}: data is not {datatype}: {error}") from None
    shape = output.get("shape")
    if isinstance(shape, list) and all(isinstance(d, int) for d in shape) and math.prod(shape) != array.size:
        raise CodecError(f"output {name!r}: {array.size} values for shape {shape}")
    return array.tobytes()
