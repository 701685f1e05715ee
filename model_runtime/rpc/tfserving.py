"""TF Serving's gRPC API (`protocol: tensorflow`) on the runtime's `grpc.aio` server:
`tensorflow.serving.PredictionService` (Predict, Classify, Regress, GetModelMetadata) and
`tensorflow.serving.ModelService` (GetModelStatus).

Servicers only translate: `TensorProto`s to arrays (`codecs.tftensor`), `Input`s to serialized Examples,
a `ModelSpec` to a `tfserving.Target`; the core does the rest, and runtime errors become status codes in
`rpc.errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import grpc

from generated.tensorflow.serving import apis_pb2 as tfs
from generated.tensorflow.serving import apis_pb2_grpc as tfs_grpc
from model_runtime.codecs import decode_tftensor_proto, encode_tftensor_proto
from model_runtime.errors import BadRequest, RuntimeFailure
from model_runtime.rpc.errors import grpc_status
from model_runtime.tfserving import Resolved, Target, TFServingCore

log = logging.getLogger(__name__)

PREDICTION_SERVICE = tfs.DESCRIPTOR.services_by_name["PredictionService"].full_name
MODEL_SERVICE = tfs.DESCRIPTOR.services_by_name["ModelService"].full_name
SERVICES = (PREDICTION_SERVICE, MODEL_SERVICE)
Context = grpc.aio.ServicerContext[Any, Any]
Blocking = Callable[..., Awaitable[Any]]


class PredictionServicer(tfs_grpc.PredictionServiceServicer):
    def __init__(self, core: TFServingCore, blocking: Blocking) -> None:
        self.core = core
        self._blocking = blocking

    async def Predict(self, request: tfs.PredictRequest, context: Context) -> tfs.PredictResponse:
        try:
            inputs = {alias: decode_tftensor_proto(tensor) for alias, tensor in request.inputs.items()}
            resolved, outputs = await self._blocking(
                self.core.predict, _target(request.model_spec), inputs, list(request.output_filter)
            )
            response = tfs.PredictResponse()
            _spec(response.model_spec, resolved)
            for alias, array in outputs.items():
                encode_tftensor_proto(array, response.outputs[alias])
            return response
        except RuntimeFailure as exc:
            await _abort(context, exc)
        except Exception as exc:
            await _internal(context, exc)

    async def Classify(
        self, request: tfs.ClassificationRequest, context: Context
    ) -> tfs.ClassificationResponse:
        try:
            classified = await self._blocking(
                self.core.classify, _target(request.model_spec), _examples(request.input)
            )
            response = tfs.ClassificationResponse()
            _spec(response.model_spec, classified.resolved)
            for row in classified.classes:
                classes = response.result.classifications.add()
                for label, score in row:
                    classes.classes.add(label=label, score=score)
            return response
        except RuntimeFailure as exc:
            await _abort(context, exc)
        except Exception as exc:
            await _internal(context, exc)

    async def Regress(self, request: tfs.RegressionRequest, context: Context) -> tfs.RegressionResponse:
        try:
            regressed = await self._blocking(
                self.core.regress, _target(request.model_spec), _examples(request.input)
            )
            response = tfs.RegressionResponse()
            _spec(response.model_spec, regressed.resolved)
            for value in regressed.values:
                response.result.regressions.add(value=value)
            return response
        except RuntimeFailure as exc:
            await _abort(context, exc)
        except Exception as exc:
            await _internal(context, exc)

    async def GetModelMetadata(
        self, request: tfs.GetModelMetadataRequest, context: Context
    ) -> tfs.GetModelMetadataResponse:
        try:
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise BadRequest(f"Metadata field {fields[0] if fields else '(none)'} is not supported")
            name, version, signatures = self.core.metadata(_target(request.model_spec))
            signature_map = tfs.SignatureDefMap()
            for key, definition in signatures.items():
                signature_map.signature_def[key].CopyFrom(definition)
            response = tfs.GetModelMetadataResponse()
            response.model_spec.name = name
            response.model_spec.version.value = version
            response.metadata["signature_def"].Pack(signature_map)
            return response
        except RuntimeFailure as exc:
            await _abort(context, exc)
        except Exception as exc:
            await _internal(context, exc)


class ModelServicer(tfs_grpc.ModelServiceServicer):
    def __init__(self, core: TFServingCore) -> None:
        self.core = core

    async def GetModelStatus(
        self, request: tfs.GetModelStatusRequest, context: Context
    ) -> tfs.GetModelStatusResponse:
        try:
            _, version = self.core.status(_target(request.model_spec))
            response = tfs.GetModelStatusResponse()
            response.model_version_status.add(version=version, state=tfs.ModelVersionStatus.AVAILABLE)
            return response
        except RuntimeFailure as exc:
            await _abort(context, exc)
        except Exception as exc:
            await _internal(context, exc)


_add_prediction: Callable[[Any, Any], None] = tfs_grpc.add_PredictionServiceServicer_to_server
_add_model: Callable[[Any, Any], None] = tfs_grpc.add_ModelServiceServicer_to_server


def add_tfserving_servicers(core: TFServingCore, blocking: Blocking, server: grpc.aio.Server) -> None:
    _add_prediction(PredictionServicer(core, blocking), server)
    _add_model(ModelServicer(core), server)


def _target(spec: tfs.ModelSpec) -> Target:
    choice = spec.WhichOneof("version_choice")
    version = int(spec.version.value) if choice == "version" else None
    label = spec.version_label if choice == "version_label" else ""
    return Target(spec.name, version, label, spec.signature_name)


def _spec(out: tfs.ModelSpec, resolved: Resolved) -> None:
    out.name = resolved.name
    out.version.value = resolved.version
    out.signature_name = resolved.signature


def _examples(value: tfs.Input) -> list[bytes]:
    kind = value.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in value.example_list.examples]
    if kind == "example_list_with_context":
        listed = value.example_list_with_context
        context = listed.context.SerializeToString()
        return [context + e.SerializeToString() for e in listed.examples]
    raise BadRequest("Input is empty: give example_list or example_list_with_context")


async def _internal(context: Context, exc: Exception) -> NoReturn:
    log.exception("unexpected error in a TF Serving call")
    await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


async def _abort(context: Context, error: RuntimeFailure) -> NoReturn:
    await context.abort(grpc_status(error), error.info)
    raise AssertionError("unreachable")  # abort always raises
