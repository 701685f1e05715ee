"""`seldon_core.proto.prediction_pb2` and `prediction_pb2_grpc`: Seldon's protocol messages, for
`predict_raw` code that builds or reads `SeldonMessage` protos (the same generated modules the runtime
uses, so a message made here is one the runtime accepts)."""

import sys

from generated.seldon import prediction_pb2, prediction_pb2_grpc

sys.modules[f"{__name__}.prediction_pb2"] = prediction_pb2
sys.modules[f"{__name__}.prediction_pb2_grpc"] = prediction_pb2_grpc

__all__ = ["prediction_pb2", "prediction_pb2_grpc"]
