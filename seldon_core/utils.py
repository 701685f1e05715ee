"""The conversions `predict_raw` code written for Seldon most often imports: SeldonMessage JSON <-> proto,
the payload of a message as numpy, and `getenv_as_bool`."""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np
from google.protobuf import json_format

from generated.seldon import prediction_pb2

_TRUE = ("1", "true", "t", "yes", "y", "on")


def getenv_as_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in _TRUE


def json_to_seldon_message(message_json: dict[str, Any] | None) -> prediction_pb2.SeldonMessage:
    message = prediction_pb2.SeldonMessage()
    json_format.ParseDict(message_json or {}, message)
    return message


def seldon_message_to_json(message: prediction_pb2.SeldonMessage) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def json_to_feedback(message_json: dict[str, Any]) -> prediction_pb2.Feedback:
    feedback = prediction_pb2.Feedback()
    json_format.ParseDict(message_json, feedback)
    return feedback


def get_data_from_proto(message: prediction_pb2.SeldonMessage) -> Any:
    """The payload as Seldon hands it to `predict`: numpy for tensor/ndarray/tftensor, else bytes/str/dict."""
    kind = message.WhichOneof("data_oneof")
    if kind == "data":
        data = message.data
        which = data.WhichOneof("data_oneof")
        if which == "tensor":
            return np.array(data.tensor.values).reshape(tuple(data.tensor.shape))
        if which == "ndarray":
            return np.array(json_format.MessageToDict(data.ndarray))
        if which == "tftensor":
            tf = importlib.import_module("tensorflow")  # only for tftensor payloads, as in Seldon
            return tf.make_ndarray(data.tftensor)
        return np.array([])
    if kind == "binData":
        return message.binData
    if kind == "strData":
        return message.strData
    if kind == "jsonData":
        return json_format.MessageToDict(message.jsonData)
    if kind == "customData":
        return message.customData
    raise ValueError("the message has no data")
