"""Seldon v1 JSON ↔ `Message`, `Feedback` and message lists (the REST wire form).

Encoding leaves numeric numpy arrays in place: `dumps` writes them with orjson's native numpy support,
so a large prediction is never turned into Python floats.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import orjson

from model_runtime.codecs.ndarray import decode_ndarray, encode_ndarray
from model_runtime.codecs.tensor import decode_tensor, encode_tensor
from model_runtime.codecs.tftensor import decode_tftensor, encode_tftensor
from model_runtime.errors import BadRequest
from model_runtime.message import (
    BinData,
    CustomData,
    DefaultData,
    Feedback,
    JsonData,
    Message,
    Meta,
    Status,
    StrData,
)

_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON: {exc}") from exc


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_DUMPS_OPTIONS, default=_default)


def decode_json_message(value: Any) -> Message:
    if not isinstance(value, dict):
        raise BadRequest(f"a SeldonMessage must be a JSON object, got {type(value).__name__}")
    message = Message(meta=decode_json_meta(value.get("meta")))
    if "data" in value:
        message.payload = _decode_data(value["data"])
    elif "binData" in value:
        try:
            message.payload = BinData(base64.b64decode(value["binData"], validate=True))
        except (binascii.Error, TypeError, ValueError) as exc:
            raise BadRequest(f"binData is not valid base64: {exc}") from exc
    elif "strData" in value:
        if not isinstance(value["strData"], str):
            raise BadRequest("strData must be a string")
        message.payload = StrData(value["strData"])
    elif "jsonData" in value:
        message.payload = JsonData(value["jsonData"])
    elif "customData" in value:
        message.payload = CustomData(value["customData"])
    if "status" in value and isinstance(value["status"], dict):
        message.status = _decode_status(value["status"])
    return message


def encode_json_message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if message.status is not None:
        status = message.status
        out["status"] = {"code": status.code, "info": status.info, "reason": status.reason}
        out["status"]["status"] = status.flag
    out["meta"] = encode_json_meta(message.meta)
    payload = message.payload
    if isinstance(payload, DefaultData):
        out["data"] = _encode_data(payload)
    elif isinstance(payload, BinData):
        out["binData"] = base64.b64encode(payload.value).decode("ascii")
    elif isinstance(payload, StrData):
        out["strData"] = payload.value
    elif isinstance(payload, JsonData):
        out["jsonData"] = payload.value
    elif isinstance(payload, CustomData):
        out["customData"] = payload.value
    return out


def decode_json_meta(value: Any) -> Meta:
    if value is None:
        return Meta()
    if not isinstance(value, dict):
        raise BadRequest("meta must be a JSON object")
    try:
        return Meta(
            puid=str(value.get("puid", "")),
            tags=dict(value.get("tags") or {}),
            routing={str(k): _route(k, v) for k, v in (value.get("routing") or {}).items()},
            request_path={str(k): str(v) for k, v in (value.get("requestPath") or {}).items()},
            metrics=list(value.get("metrics") or []),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise BadRequest(f"meta is invalid: {exc}") from exc


_INT32 = range(-(2**31), 2**31)


def _route(node: Any, value: Any) -> int:
    """A routing entry is the branch a router took: an int32 in Seldon's proto, so a larger number is the
    client's error (it used to reach the answer and fail orjson's 64-bit limit there, a 500)."""
    route = int(value)
    if route not in _INT32:
        raise BadRequest(f"meta.routing[{str(node)!r}] must be a 32-bit integer, got {value!r}")
    return route


def encode_json_meta(meta: Meta) -> dict[str, Any]:
    out: dict[str, Any] = {"puid": meta.puid, "tags": meta.tags}
    if meta.routing:
        out["routing"] = meta.routing
    out["requestPath"] = meta.request_path
    if meta.metrics:
        out["metrics"] = meta.metrics
    return out


def decode_json_message_list(value: Any) -> list[Message]:
    items = value.get("seldonMessages") if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise BadRequest("expected {'seldonMessages': [SeldonMessage, ...]}")
    return [decode_json_message(item) for item in items]


def decode_json_feedback(value: Any) -> Feedback:
    if not isinstance(value, dict):
        raise BadRequest("feedback must be a JSON object")
    try:
        reward = float(value.get("reward", 0.0))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"feedback reward must be a number: {exc}") from exc
    return Feedback(
        request=_optional_message(value.get("request")),
        response=_optional_message(value.get("response")),
        reward=reward,
        truth=_optional_message(value.get("truth")),
    )


def encode_json_status(code: int, info: str, reason: str, flag: str = "FAILURE") -> dict[str, Any]:
    return {"status": {"code": code, "info": info, "reason": reason, "status": flag}}


def _optional_message(value: Any) -> Message | None:
    return None if value is None else decode_json_message(value)


def _decode_data(value: Any) -> DefaultData:
    if not isinstance(value, dict):
        raise BadRequest("data must be a JSON object")
    names = value.get("names") or []
    if not isinstance(names, list):
        raise BadRequest("data.names must be a list of strings")
    names = [str(n) for n in names]
    if "ndarray" in value:
        return DefaultData("ndarray", decode_ndarray(value["ndarray"]), names)
    if "tensor" in value:
        return DefaultData("tensor", decode_tensor(value["tensor"]), names)
    if "tftensor" in value:
        return DefaultData("tftensor", decode_tftensor(value["tftensor"]), names)
    raise BadRequest("data must hold one of ndarray, tensor or tftensor")


def _encode_data(data: DefaultData) -> dict[str, Any]:
    if data.kind == "tensor":
        return {"names": data.names, "tensor": encode_tensor(data.array)}
    if data.kind == "tftensor":
        return {"names": data.names, "tftensor": encode_tftensor(data.array)}
    return {"names": data.names, "ndarray": encode_ndarray(data.array)}


def _decode_status(value: dict[str, Any]) -> Status:
    failed = value.get("status") in ("FAILURE", 1)
    try:
        code = int(value.get("code", 0) or 0)
    except (TypeError, ValueError):
        raise BadRequest(f"status.code must be an integer, got {value.get('code')!r}") from None
    info, reason = str(value.get("info", "")), str(value.get("reason", ""))
    return Status(code, info, reason, "FAILURE" if failed else "SUCCESS")


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _jsonable_array(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, set | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _jsonable_array(value: np.ndarray[Any, Any]) -> Any:
    if value.dtype.kind == "S":
        return np.char.decode(value, "utf-8", errors="replace").tolist()
    return value.tolist()
