"""Seldon v1 JSON messages <-> Open Inference Protocol (V2) JSON requests and responses.

Pure functions on JSON-shaped dicts, paired by direction. The rules:
- v1 `data.ndarray` -> one V2 tensor `input-0`, its datatype inferred (float FP64, int INT64, bool BOOL,
  str BYTES) unless the caller passes a `datatype` hint (the client's original V2 datatype), so a V2
  client's FP32 stays FP32 across a Seldon hop;
- v1 `data.tensor` -> FP64 (Seldon tensors are doubles); v1 `data.tftensor` -> its own dtype, exactly;
- v1 `strData` -> a one-element BYTES tensor; `jsonData` -> BYTES holding the JSON text;
- a single V2 tensor -> v1 in the shape the v1 side asked with (`like`: tensor, tftensor or ndarray),
  BYTES of one element -> `strData`; several V2 tensors -> `jsonData` `{name: nested data}`.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson

from extproc.codecs.dtypes import TF_TO_V2, V2_TO_NUMPY, V2_TO_TF, v2_datatype
from extproc.codecs.errors import CodecError

Json = dict[str, Any]
DEFAULT_INPUT = "input-0"
DEFAULT_OUTPUT = "output-0"


# -- v1 -> V2 -----------------------------------------------------------------------------------------
def encode_v2_tensor(name: str, array: np.ndarray, datatype: str | None = None) -> Json:
    kind = datatype or v2_datatype(array)
    if kind == "BYTES":
        data: list[Any] = [str(x) for x in array.ravel().tolist()]
    else:
        data = array.astype(V2_TO_NUMPY[kind], copy=False).ravel().tolist()
    return {"name": name, "shape": list(array.shape), "datatype": kind, "data": data}


def _ndarray(values: Any, datatype: str | None) -> np.ndarray:
    try:
        array = np.asarray(values)
    except ValueError as error:
        raise CodecError(f"ragged ndarray: {error}") from None
    if array.dtype.kind == "O":
        raise CodecError("ndarray rows must all have the same length and element type")
    if datatype is not None and datatype != "BYTES" and array.dtype.kind in "biuf":
        return array.astype(V2_TO_NUMPY[datatype])
    if datatype is None and array.dtype.kind == "f":
        return array.astype(np.float64)
    return array


def _tftensor(tf: Json) -> tuple[np.ndarray, str]:
    found = TF_TO_V2.get(str(tf.get("dtype", "")))
    if found is None:
        raise CodecError(f"tftensor dtype {tf.get('dtype')!r} has no V2 datatype")
    datatype, field = found
    shape = [int(d.get("size", 0)) for d in tf.get("tensorShape", {}).get("dim", [])]
    values = tf.get(field, [])
    if datatype == "BYTES":
        decoded = [base64.b64decode(v).decode("utf-8", "replace") for v in values]
        return np.asarray(decoded, dtype=object).reshape(shape), datatype
    try:
        array = np.asarray([float(v) if datatype.startswith("FP") else int(v) for v in values])
        return array.astype(V2_TO_NUMPY[datatype]).reshape(shape), datatype
    except (ValueError, TypeError, OverflowError) as error:
        raise CodecError(f"tftensor values do not fill its shape: {error}") from None


def seldon_to_v2_inputs(message: Json, datatype: str | None = None) -> list[Json]:
    """The V2 `inputs` (or `outputs`) equivalent to a v1 message's payload."""
    if "data" in message:
        data = message["data"]
        if not isinstance(data, dict):
            raise CodecError("data must be an object")
        if "ndarray" in data:
            return [encode_v2_tensor(DEFAULT_INPUT, _ndarray(data["ndarray"], datatype), datatype)]
        if "tensor" in data:
            tensor = data["tensor"]
            try:
                array = np.asarray(tensor.get("values", []), dtype=np.float64).reshape(
                    tensor.get("shape", [])
                )
            except (ValueError, TypeError, AttributeError) as error:
                raise CodecError(f"bad tensor: {error}") from None
            return [encode_v2_tensor(DEFAULT_INPUT, array, datatype if datatype != "BYTES" else None)]
        if "tftensor" in data:
            array, kind = _tftensor(data["tftensor"])
            return [encode_v2_tensor(DEFAULT_INPUT, array, kind)]
        raise CodecError("data needs one of ndarray, tensor or tftensor")
    if "strData" in message:
        return [{"name": DEFAULT_INPUT, "shape": [1], "datatype": "BYTES", "data": [message["strData"]]}]
    if "jsonData" in message:
        text = orjson.dumps(message["jsonData"]).decode()
        return [{"name": DEFAULT_INPUT, "shape": [1], "datatype": "BYTES", "data": [text]}]
    if "binData" in message:
        try:
            raw = base64.b64decode(message["binData"]).decode("utf-8", "replace")
        except (ValueError, TypeError) as error:
            raise CodecError(f"binData is not base64: {error}") from None
        return [{"name": DEFAULT_INPUT, "shape": [1], "datatype": "BYTES", "data": [raw]}]
    raise CodecError("the message has no data, strData, jsonData or binData")


def encode_v2_request(message: Json, datatype: str | None = None) -> Json:
    request: Json = {"inputs": seldon_to_v2_inputs(message, datatype)}
    puid = message.get("meta", {}).get("puid")
    if puid:
        request["id"] = puid
    return request


def encode_v2_response(message: Json, model_name: str, datatype: str | None = None) -> Json:
    outputs = seldon_to_v2_inputs(message, datatype)
    if len(outputs) == 1:
        outputs[0]["name"] = DEFAULT_OUTPUT
    response: Json = {"model_name": model_name, "outputs": outputs}
    puid = message.get("meta", {}).get("puid")
    if puid:
        response["id"] = puid
    return response


# -- V2 -> v1 -----------------------------------------------------------------------------------------
def decode_v2_tensor(tensor: Json) -> np.ndarray:
    """A V2 JSON tensor as a numpy array of its shape (BYTES as an object array of str)."""
    try:
        datatype = str(tensor["datatype"])
        shape = [int(d) for d in tensor["shape"]]
        data = tensor["data"]
    except (KeyError, TypeError, ValueError) as error:
        raise CodecError(
            f"tensor {tensor.get('name', '?')!r} needs name, shape, datatype and data"
        ) from error
    try:
        if datatype == "BYTES":
            flat = np.asarray(data, dtype=object).ravel()
            return flat.reshape(shape)
        dtype = V2_TO_NUMPY.get(datatype)
        if dtype is None:
            raise CodecError(f"unknown datatype {datatype!r}")
        return np.asarray(data, dtype=dtype).reshape(shape)
    except (ValueError, TypeError, OverflowError) as error:  # ragged, wrong type, out of the dtype's range
        raise CodecError(f"tensor {tensor.get('name', '?')!r}: {error}") from None


def _to_tftensor(array: np.ndarray, datatype: str) -> Json:
    tf_name, field = V2_TO_TF[datatype]
    flat = array.ravel().tolist()
    if datatype == "BYTES":
        flat = [base64.b64encode(str(v).encode()).decode() for v in flat]
    elif datatype in ("INT64", "UINT64"):
        flat = [str(v) for v in flat]
    return {
        "dtype": tf_name,
        "tensorShape": {"dim": [{"size": str(d)} for d in array.shape]},
        field: flat,
    }


def decode_v2_tensors(tensors: list[Json], like: Json | None = None) -> Json:
    """V2 tensors (`inputs` or `outputs`) as a v1 message payload, shaped like the v1 message `like`."""
    if not tensors:
        raise CodecError("no tensors")
    if len(tensors) > 1:
        return {
            "jsonData": {str(t.get("name", i)): decode_v2_tensor(t).tolist() for i, t in enumerate(tensors)}
        }
    tensor = tensors[0]
    array = decode_v2_tensor(tensor)
    datatype = str(tensor["datatype"])
    if datatype == "BYTES" and array.size == 1:
        value = array.ravel()[0]
        return {"strData": value.decode() if isinstance(value, bytes) else str(value)}
    like_data = like.get("data", {}) if like else {}
    wanted = next((k for k in ("tftensor", "tensor") if k in like_data), "ndarray")
    names = list(like.get("data", {}).get("names", [])) if like else []
    data: Json = {"names": names} if names else {}
    if wanted == "tftensor":
        data["tftensor"] = _to_tftensor(array, datatype)
    elif wanted == "tensor" and datatype != "BYTES":
        data["tensor"] = {"shape": list(array.shape), "values": array.astype(np.float64).ravel().tolist()}
    else:
        data["ndarray"] = array.tolist()
    return {"data": data}


def decode_v2_request(request: Json) -> Json:
    """A V2 inference request as the v1 message a Seldon node takes (id becomes meta.puid)."""
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise CodecError("a V2 inference request needs a non-empty inputs list")
    message = decode_v2_tensors(inputs)
    if request.get("id"):
        message["meta"] = {"puid": str(request["id"])}
    return message


def decode_v2_response(response: Json, like: Json | None = None) -> Json:
    outputs = response.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise CodecError("a V2 inference response needs a non-empty outputs list")
    return decode_v2_tensors(outputs, like)


def v2_datatype_hint(request: Json) -> str | None:
    """The datatype of a single-input V2 request, to give it back on the way out."""
    inputs = request.get("inputs") or []
    if len(inputs) == 1 and isinstance(inputs[0], dict):
        found = inputs[0].get("datatype")
        return str(found) if found in V2_TO_NUMPY else None
    return None
