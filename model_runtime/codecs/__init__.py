"""Pure codecs between the Seldon v1 wire forms (JSON, protobuf) and the runtime's `Message` values.

Array codecs (`ndarray`, `tensor`, `tftensor`) come in `encode_*`/`decode_*` pairs per wire form; the
message codecs build on them. Nothing here does I/O or knows about HTTP or gRPC.
"""

from model_runtime.codecs.json_message import (
    decode_json_feedback,
    decode_json_message,
    decode_json_message_list,
    dumps,
    encode_json_message,
    encode_json_status,
    loads,
)
from model_runtime.codecs.ndarray import (
    decode_ndarray,
    decode_ndarray_proto,
    encode_ndarray,
    encode_ndarray_proto,
)
from model_runtime.codecs.proto_message import (
    decode_proto_feedback,
    decode_proto_message,
    decode_proto_message_list,
    encode_proto_message,
)
from model_runtime.codecs.tensor import (
    decode_tensor,
    decode_tensor_proto,
    encode_tensor,
    encode_tensor_proto,
)
from model_runtime.codecs.tftensor import (
    decode_tftensor,
    decode_tftensor_proto,
    encode_tftensor,
    encode_tftensor_proto,
)

__all__ = [
    "decode_json_feedback",
    "decode_json_message",
    "decode_json_message_list",
    "decode_ndarray",
    "decode_ndarray_proto",
    "decode_proto_feedback",
    "decode_proto_message",
    "decode_proto_message_list",
    "decode_tensor",
    "decode_tensor_proto",
    "decode_tftensor",
    "decode_tftensor_proto",
    "dumps",
    "encode_json_message",
    "encode_json_status",
    "encode_ndarray",
    "encode_ndarray_proto",
    "encode_proto_message",
    "encode_tensor",
    "encode_tensor_proto",
    "encode_tftensor",
    "encode_tftensor_proto",
    "loads",
]
