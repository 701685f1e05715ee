"""Protobuf messages <-> the JSON-shaped dicts the executor works on, for both protocols.

Seldon v1 uses protobuf's own JSON mapping (it is the v1 REST format: `binData`, `jsonData`,
`meta.requestPath`), so `json_format` does it exactly. V2 gRPC differs from V2 JSON: tensor contents are
typed repeated fields or raw little-endian bytes (`raw_input_contents`), decoded here with numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import Message

from extproc.codecs.binary import tensor_bytes
from extproc.codecs.dtypes import V2_CONTENTS_FIELD, V2_TO_NUMPY
from extproc.codecs.errors import CodecError
from generated.inference import dataplane_pb2 as v2_pb
from generated.seldon import prediction_pb2 as v1_pb

Json = dict[str, Any]


# -- Seldon v1 ----------------------------------------------------------------------------------------
def decode_seldon_proto(message: Message) -> Json:
    decoded: Json = json_format.MessageToDict(message)
    return decoded


def encode_seldon_message(message: Json) -> v1_pb.SeldonMessage:
    try:
        return json_format.ParseDict(message, v1_pb.SeldonMessage(), ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise CodecError(f"not a SeldonMessage: {error}") from None


def encode_seldon_list(messages: list[Json]) -> v1_pb.SeldonMessageList:
    return v1_pb.SeldonMessageList(seldonMessages=[encode_seldon_message(m) for m in messages])


def encode_feedback(feedback: Json) -> v1_pb.Feedback:
    try:
        return json_format.ParseDict(feedback, v1_pb.Feedback(), ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise CodecError(f"not a Feedback: {error}") from None


# -- V2 -----------------------------------------------------------------------------------------------
def _parameters(params: Any) -> Json:
    out: Json = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(value, which)
    return out


def _set_parameters(target: Any, params: Json) -> None:
    for key, value in params.items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        else:
            target[key].string_param = str(value)


def _tensor_from_proto(tensor: Any, raw: bytes | None) -> Json:
    datatype = tensor.datatype
    shape = [int(d) for d in tensor.shape]
    data: list[Any]
    if raw is not None:
        if datatype == "BYTES":
            data, offset = [], 0
            while offset < len(raw):
                length = int.from_bytes(raw[offset : offset + 4], "little")
                data.append(raw[offset + 4 : offset + 4 + length].decode("utf-8", "replace"))
                offset += 4 + length
        elif datatype in V2_TO_NUMPY:
            dtype = V2_TO_NUMPY[datatype].newbyteorder("<")
            if len(raw) % dtype.itemsize:
                raise CodecError(
                    f"tensor {tensor.name!r}: {len(raw)} raw bytes do not hold whole {datatype}s"
                )
            data = np.frombuffer(raw, dtype=dtype).tolist()
        else:
            raise CodecError(f"tensor {tensor.name!r}: unknown datatype {datatype!r}")
    else:
        field = V2_CONTENTS_FIELD.get(datatype)
        if field is None:
            raise CodecError(f"tensor {tensor.name!r}: datatype {datatype!r} must be sent raw")
        values = list(getattr(tensor.contents, field))
        data = [v.decode("utf-8", "replace") for v in values] if datatype == "BYTES" else values
    out: Json = {"name": tensor.name, "shape": shape, "datatype": datatype, "data": data}
    if tensor.parameters:
        out["parameters"] = _parameters(tensor.parameters)
    return out


def _tensors_from_proto(tensors: Any, raw: Any) -> list[Json]:
    if raw and len(raw) != len(tensors):
        raise CodecError(f"{len(raw)} raw contents for {len(tensors)} tensors")
    return [_tensor_from_proto(t, raw[i] if raw else None) for i, t in enumerate(tensors)]


def _fill_tensor(target: Any, tensor: Json) -> None:
    target.name = str(tensor.get("name", ""))
    datatype = str(tensor.get("datatype", ""))
    target.datatype = datatype
    target.shape.extend(int(d) for d in tensor.get("shape", []))
    field = V2_CONTENTS_FIELD.get(datatype)
    if field is None:
        raise CodecError(f"tensor {target.name!r}: datatype {datatype!r} cannot be sent as contents")
    flat = np.asarray(tensor.get("data", []), dtype=object if datatype == "BYTES" else None).ravel().tolist()
    if datatype == "BYTES":
        flat = [v if isinstance(v, bytes) else str(v).encode() for v in flat]
    getattr(target.contents, field).extend(flat)
    if tensor.get("parameters"):
        _set_parameters(target.parameters, tensor["parameters"])


def decode_infer_request(request: v2_pb.ModelInferRequest) -> Json:
    out: Json = {"inputs": _tensors_from_proto(request.inputs, request.raw_input_contents)}
    if request.id:
        out["id"] = request.id
    if request.parameters:
        out["parameters"] = _parameters(request.parameters)
    if request.outputs:
        out["outputs"] = [{"name": o.name} for o in request.outputs]
    return out


def encode_infer_request(request: Json, model_name: str) -> v2_pb.ModelInferRequest:
    proto = v2_pb.ModelInferRequest(model_name=model_name, id=str(request.get("id", "")))
    for tensor in request.get("inputs", []):
        _fill_tensor(proto.inputs.add(), tensor)
    if request.get("parameters"):
        _set_parameters(proto.parameters, request["parameters"])
    return proto


def decode_infer_response(response: v2_pb.ModelInferResponse) -> Json:
    out: Json = {
        "model_name": response.model_name,
        "outputs": _tensors_from_proto(response.outputs, response.raw_output_contents),
    }
    if response.model_version:
        out["model_version"] = response.model_version
    if response.id:
        out["id"] = response.id
    if response.parameters:
        out["parameters"] = _parameters(response.parameters)
    return out


def encode_infer_response(response: Json, raw: bool = False) -> v2_pb.ModelInferResponse:
    """`raw`: the outputs go in `raw_output_contents`, as Triton answers a request that came raw
    (tritonclient reads nothing else); else in typed `contents`."""
    proto = v2_pb.ModelInferResponse(
        model_name=str(response.get("model_name", "")),
        model_version=str(response.get("model_version", "")),
        id=str(response.get("id", "")),
    )
    for tensor in response.get("outputs", []):
        if raw:
            _fill_shape(proto.outputs.add(), tensor)
            proto.raw_output_contents.append(tensor_bytes(tensor))
        else:
            _fill_tensor(proto.outputs.add(), tensor)
    if response.get("parameters"):
        _set_parameters(proto.parameters, response["parameters"])
    return proto


def _fill_shape(target: Any, tensor: Json) -> None:
    target.name = str(tensor.get("name", ""))
    target.datatype = str(tensor.get("datatype", ""))
    target.shape.extend(int(d) for d in tensor.get("shape", []))
    if tensor.get("parameters"):
        _set_parameters(target.parameters, tensor["parameters"])
