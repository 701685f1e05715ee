"""predict_raw gets the wire message itself: a dict over REST, a SeldonMessage proto over gRPC."""

from generated.seldon import prediction_pb2


class RawModel:
    def predict_raw(self, request):
        if isinstance(request, dict):
            return {"jsonData": {"transport": "rest", "keys": sorted(request)}}
        message = prediction_pb2.SeldonMessage()
        message.strData = f"grpc:{request.WhichOneof('data_oneof')}"
        return message
