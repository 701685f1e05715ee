"""Protocol translation for the graph executor: small pure codecs, Seldon v1 <-> V2, JSON <-> protobuf."""

from extproc.codecs.errors import CodecError
from extproc.codecs.payload import Payload
from extproc.codecs.translate import (
    decode_v2_request,
    decode_v2_response,
    decode_v2_tensor,
    decode_v2_tensors,
    encode_v2_request,
    encode_v2_response,
    encode_v2_tensor,
    seldon_to_v2_inputs,
    v2_datatype_hint,
)
from extproc.codecs.wire import (
    decode_infer_request,
    decode_infer_response,
    decode_seldon_proto,
    encode_feedback,
    encode_infer_request,
    encode_infer_response,
    encode_seldon_list,
    encode_seldon_message,
)

__all__ = [
    "CodecError",
    "Payload",
    "decode_infer_request",
    "decode_infer_response",
    "decode_seldon_proto",
    "decode_v2_request",
    "decode_v2_response",
    "decode_v2_tensor",
    "decode_v2_tensors",
    "encode_feedback",
    "encode_infer_request",
    "encode_infer_response",
    "encode_seldon_list",
    "encode_seldon_message",
    "encode_v2_request",
    "encode_v2_response",
    "encode_v2_tensor",
    "seldon_to_v2_inputs",
    "v2_datatype_hint",
]
