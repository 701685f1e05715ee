"""Typed clients for the gRPC stubs that grpcio-tools generates without annotations.

`generated/*_pb2_grpc.py` come from `grpc_tools.protoc --grpc_python_out`, which writes no types (the
messages have `.pyi` files, the stubs none: mypy-protobuf is not a dependency), so a strict mypy calls
`SeldonStub(channel)` an untyped call and every method on it `Any`. Each Protocol here names one service's
methods with grpc-stubs' typed multi-callables, and each constructor is the generated class bound once to a
typed name: the tests call `seldon_client(channel).Predict(...)` and get a checked request and answer type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import grpc
from google.protobuf import empty_pb2

from generated.inference import dataplane_pb2 as v2
from generated.inference import dataplane_pb2_grpc as v2_grpc
from generated.seldon import prediction_pb2 as pb
from generated.seldon import prediction_pb2_grpc
from generated.tensorflow.serving import apis_pb2 as tfs
from generated.tensorflow.serving import apis_pb2_grpc as tfs_grpc


class SeldonClient(Protocol):
    """Seldon's executor API (`seldon.protos.Seldon`)."""

    Predict: grpc.UnaryUnaryMultiCallable[pb.SeldonMessage, pb.SeldonMessage]
    SendFeedback: grpc.UnaryUnaryMultiCallable[pb.Feedback, pb.SeldonMessage]
    ModelMetadata: grpc.UnaryUnaryMultiCallable[pb.SeldonModelMetadataRequest, pb.SeldonModelMetadata]
    GraphMetadata: grpc.UnaryUnaryMultiCallable[empty_pb2.Empty, pb.SeldonGraphMetadata]


class V2Client(Protocol):
    """The V2 (Open Inference Protocol) `inference.GRPCInferenceService`."""

    ServerLive: grpc.UnaryUnaryMultiCallable[v2.ServerLiveRequest, v2.ServerLiveResponse]
    ServerReady: grpc.UnaryUnaryMultiCallable[v2.ServerReadyRequest, v2.ServerReadyResponse]
    ModelReady: grpc.UnaryUnaryMultiCallable[v2.ModelReadyRequest, v2.ModelReadyResponse]
    ServerMetadata: grpc.UnaryUnaryMultiCallable[v2.ServerMetadataRequest, v2.ServerMetadataResponse]
    ModelMetadata: grpc.UnaryUnaryMultiCallable[v2.ModelMetadataRequest, v2.ModelMetadataResponse]
    ModelInfer: grpc.UnaryUnaryMultiCallable[v2.ModelInferRequest, v2.ModelInferResponse]
    RepositoryIndex: grpc.UnaryUnaryMultiCallable[v2.RepositoryIndexRequest, v2.RepositoryIndexResponse]
    RepositoryModelLoad: grpc.UnaryUnaryMultiCallable[
        v2.RepositoryModelLoadRequest, v2.RepositoryModelLoadResponse
    ]
    RepositoryModelUnload: grpc.UnaryUnaryMultiCallable[
        v2.RepositoryModelUnloadRequest, v2.RepositoryModelUnloadResponse
    ]


class TFPredictionClient(Protocol):
    """TF Serving's `tensorflow.serving.PredictionService`."""

    Classify: grpc.UnaryUnaryMultiCallable[tfs.ClassificationRequest, tfs.ClassificationResponse]
    Regress: grpc.UnaryUnaryMultiCallable[tfs.RegressionRequest, tfs.RegressionResponse]
    Predict: grpc.UnaryUnaryMultiCallable[tfs.PredictRequest, tfs.PredictResponse]
    GetModelMetadata: grpc.UnaryUnaryMultiCallable[tfs.GetModelMetadataRequest, tfs.GetModelMetadataResponse]


class TFModelClient(Protocol):
    """TF Serving's `tensorflow.serving.ModelService` (the part seldon-mesh serves)."""

    GetModelStatus: grpc.UnaryUnaryMultiCallable[tfs.GetModelStatusRequest, tfs.GetModelStatusResponse]


v2_client: Callable[[grpc.Channel], V2Client] = v2_grpc.GRPCInferenceServiceStub
seldon_client: Callable[[grpc.Channel], SeldonClient] = prediction_pb2_grpc.SeldonStub
tf_prediction_client: Callable[[grpc.Channel], TFPredictionClient] = tfs_grpc.PredictionServiceStub
tf_model_client: Callable[[grpc.Channel], TFModelClient] = tfs_grpc.ModelServiceStub
