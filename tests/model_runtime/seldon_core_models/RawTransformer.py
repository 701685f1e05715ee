"""predict_raw / transform_input_raw get the whole SeldonMessage (a dict over REST, a proto over gRPC)
and return one, as Seldon's docs describe."""

from seldon_core.proto import prediction_pb2
from seldon_core.user_model import SeldonComponent


class RawTransformer(SeldonComponent):
    def transform_input_raw(self, request):
        if isinstance(request, dict):
            values = request["data"]["ndarray"]
            return {"data": {"names": ["doubled"], "ndarray": [[v * 2 for v in row] for row in values]}}
        message = prediction_pb2.SeldonMessage()
        message.strData = "raw grpc transform"
        return message

    def predict_raw(self, request):
        if isinstance(request, dict):
            return {"jsonData": {"raw": True, "keys": sorted(request)}}
        message = prediction_pb2.SeldonMessage()
        message.strData = "raw grpc predict"
        return message
