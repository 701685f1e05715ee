"""The payload of a logged request as the detector's input: a numpy batch, one row per instance.

The wire protocols are Seldon's alibi-detect server's (`--protocol`): `seldon.http` (a Seldon message:
`data.ndarray` or `data.tensor`), `tensorflow.http` (TF Serving's `instances`, or `inputs`) and
`kfserving.http` (the Open Inference Protocol V2: the first of `inputs`, reshaped to its `shape`). Without
`--protocol` the event's own `Ce-Protocol` (seldon, tensorflow, v2: what the payload logger says it sent)
chooses, else `tensorflow.http` as in Seldon. Pure: no I/O.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt


class Protocol(StrEnum):
    SELDON = "seldon.http"
    TENSORFLOW = "tensorflow.http"
    V2 = "kfserving.http"


# `Ce-Protocol` values our payload logger (and Seldon's executor) send
_FROM_CE = {"seldon": Protocol.SELDON, "tensorflow": Protocol.TENSORFLOW, "v2": Protocol.V2}


class PayloadError(ValueError):
    """The body is not a request of the protocol: the event is refused for good (HTTP 400)."""


def choose(configured: Protocol | None, ce_protocol: str | None) -> Protocol:
    if configured is not None:
        return configured
    return _FROM_CE.get((ce_protocol or "").strip().lower(), Protocol.TENSORFLOW)


def decode(body: bytes, protocol: Protocol) -> npt.NDArray[Any]:
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PayloadError(f"the body is not JSON: {error}") from error
    if not isinstance(message, dict):
        raise PayloadError("the body is not a JSON object")
    if protocol is Protocol.SELDON:
        values = _seldon(message)
    elif protocol is Protocol.V2:
        values = _v2(message)
    else:
        values = _tensorflow(message)
    try:
        batch = np.asarray(values)
    except (ValueError, TypeError) as error:
        raise PayloadError(f"the instances are not an array: {error}") from error
    if batch.dtype == object or batch.ndim == 0:
        raise PayloadError("the instances are not a rectangular array")
    return batch


def _seldon(message: dict[str, Any]) -> Any:
    data = message.get("data")
    if not isinstance(data, dict):
        raise PayloadError("a Seldon message needs `data` (ndarray or tensor)")
    if "ndarray" in data:
        return data["ndarray"]
    tensor = data.get("tensor")
    if isinstance(tensor, dict) and isinstance(tensor.get("values"), list):
        return _reshaped(tensor["values"], tensor.get("shape"))
    raise PayloadError("a Seldon message needs data.ndarray or data.tensor")


def _tensorflow(message: dict[str, Any]) -> Any:
    for key in ("instances", "inputs"):
        if key in message:
            return message[key]
    raise PayloadError("a TensorFlow request needs `instances` (or `inputs`)")


def _v2(message: dict[str, Any]) -> Any:
    inputs = message.get("inputs")
    if not isinstance(inputs, list) or not inputs or not isinstance(inputs[0], dict):
        raise PayloadError("a V2 request needs `inputs`, a non-empty list of tensors")
    first = inputs[0]
    if not isinstance(first.get("data"), list):
        raise PayloadError("a V2 input needs `data`")
    return _reshaped(first["data"], first.get("shape"))


def _reshaped(values: list[Any], shape: Any) -> Any:
    flat = np.asarray(values)
    if flat.dtype == object:
        raise PayloadError("tensor values are not numbers")
    if shape is None:
        return flat
    try:
        return flat.reshape([int(n) for n in shape])
    except (ValueError, TypeError) as error:
        raise PayloadError(f"tensor of {flat.size} values does not have shape {shape}") from error
