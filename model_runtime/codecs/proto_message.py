"""`seldon.protos` messages ↔ `Message`, `Feedback` and message lists (the gRPC wire form)."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from generated.seldon import prediction_pb2 as pb
from model_runtime.codecs.ndarray import decode_ndarray_proto, encode_ndarray_proto
from model_runtime.codecs.tensor import decode_tensor_proto, encode_tensor_proto
from model_runtime.codecs.tftensor import decode_tftensor_proto, encode_tftensor_proto
from model_runtime.errors import BadRequest, UserCodeError
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

_METRIC_TYPES = {"COUNTER": pb.Metric.COUNTER, "GAUGE": pb.Metric.GAUGE, "TIMER": pb.Metric.TIMER}


def decode_proto_message(message: pb.SeldonMessage) -> Message:
    out = Message(meta=decode_proto_meta(message.meta) if message.HasField("meta") else Meta())
    which = message.WhichOneof("data_oneof")
    if which == "data":
        out.payload = _decode_data(message.data)
    elif which == "binData":
        out.payload = BinData(message.binData)
    elif which == "strData":
        out.payload = StrData(message.strData)
    elif which == "jsonData":
        out.payload = JsonData(json_format.MessageToDict(message.jsonData))
    elif which == "customData":
        out.payload = CustomData(message.customData)
    if message.HasField("status"):
        status = message.status
        failed = status.status == pb.Status.FAILURE
        out.status = Status(status.code, status.info, status.reason, "FAILURE" if failed else "SUCCESS")
    return out


def encode_proto_message(message: Message) -> pb.SeldonMessage:
    out = pb.SeldonMessage()
    if message.status is not None:
        status = message.status
        out.status.code = status.code
        out.status.info = status.info
        out.status.reason = status.reason
        out.status.status = pb.Status.FAILURE if status.flag == "FAILURE" else pb.Status.SUCCESS
    encode_proto_meta(message.meta, out.meta)
    payload = message.payload
    if isinstance(payload, DefaultData):
        out.data.names.extend(payload.names)
        if payload.kind == "tensor":
            encode_tensor_proto(payload.array, out.data.tensor)
        elif payload.kind == "tftensor":
            encode_tftensor_proto(payload.array, out.data.tftensor)
        else:
            encode_ndarray_proto(payload.array, out.data.ndarray)
            out.data.ndarray.SetInParent()
    elif isinstance(payload, BinData):
        out.binData = payload.value
    elif isinstance(payload, StrData):
        out.strData = payload.value
    elif isinstance(payload, JsonData):
        _set_value(out.jsonData, payload.value)
    elif isinstance(payload, CustomData):
        if isinstance(payload.value, dict):
            json_format.ParseDict(payload.value, out.customData)
        else:
            out.customData.CopyFrom(payload.value)
    return out


def decode_proto_meta(meta: pb.Meta) -> Meta:
    return Meta(
        puid=meta.puid,
        tags={key: _value(value) for key, value in meta.tags.items()},
        routing=dict(meta.routing),
        request_path=dict(meta.requestPath),
        metrics=[
            {
                "key": metric.key,
                "type": pb.Metric.MetricType.Name(metric.type),
                "value": metric.value,
                "tags": dict(metric.tags),
            }
            for metric in meta.metrics
        ],
    )


def encode_proto_meta(meta: Meta, out: pb.Meta) -> None:
    out.SetInParent()
    out.puid = meta.puid
    for key, value in meta.tags.items():
        _set_value(out.tags[key], value)
    for key, route in meta.routing.items():
        out.routing[key] = route
    for key, image in meta.request_path.items():
        out.requestPath[key] = image
    for metric in meta.metrics:
        out.metrics.add(
            key=str(metric["key"]),
            type=_METRIC_TYPES[str(metric.get("type", "COUNTER"))],
            value=float(metric["value"]),
            tags={str(k): str(v) for k, v in (metric.get("tags") or {}).items()},
        )


def decode_proto_message_list(messages: pb.SeldonMessageList) -> list[Message]:
    return [decode_proto_message(message) for message in messages.seldonMessages]


def decode_proto_feedback(feedback: pb.Feedback) -> Feedback:
    return Feedback(
        request=decode_proto_message(feedback.request) if feedback.HasField("request") else None,
        response=decode_proto_message(feedback.response) if feedback.HasField("response") else None,
        reward=feedback.reward,
        truth=decode_proto_message(feedback.truth) if feedback.HasField("truth") else None,
    )


def _decode_data(data: pb.DefaultData) -> DefaultData:
    names = list(data.names)
    which = data.WhichOneof("data_oneof")
    if which == "tensor":
        return DefaultData("tensor", decode_tensor_proto(data.tensor), names)
    if which == "tftensor":
        return DefaultData("tftensor", decode_tftensor_proto(data.tftensor), names)
    if which == "ndarray":
        return DefaultData("ndarray", decode_ndarray_proto(data.ndarray), names)
    raise BadRequest("data must hold one of ndarray, tensor or tftensor")


def _value(value: struct_pb2.Value) -> Any:
    return json_format.MessageToDict(value)


def _set_value(out: struct_pb2.Value, value: Any) -> None:
    try:
        json_format.ParseDict(_plain(value), out)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise UserCodeError(f"value cannot be encoded as google.protobuf.Value: {exc}") from exc


def _plain(value: Any) -> Any:
    """numpy values and tuples into what `json_format` accepts."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
