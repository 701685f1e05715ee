"""gRPC graph requests: `seldon.protos.Seldon` and `inference.GRPCInferenceService` served in-process.

Envoy routes a gRPC call for a graph predictor here as its upstream (headers `seldon`, `namespace` and
the route-added `x-seldon-predictor` say which graph), because an ext_proc ImmediateResponse cannot
carry a gRPC body and trailers. Same frontend and executor as REST; only the edge differs.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from extproc.codecs import (
    CodecError,
    decode_infer_request,
    decode_seldon_proto,
    encode_infer_response,
    encode_seldon_message,
)
from extproc.config import GRPC_MAX_MESSAGE_SIZE, PredictorConfig
from extproc.graph import GraphError
from extproc.server.frontend import SKIP_LOGGING_HEADER, Frontend
from extproc.server.observe import Outcome
from generated.inference import dataplane_pb2 as v2_pb
from generated.seldon import prediction_pb2 as v1_pb

PREDICTOR_HEADER = "x-seldon-predictor"
Context = grpc.aio.ServicerContext[Any, Any]
M = TypeVar("M", bound=Message)


def _metadata(context: Context) -> dict[str, str]:
    return {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}


def _bounded(predictor: PredictorConfig, message: M, what: str) -> M:
    """The message, or RESOURCE_EXHAUSTED when it is over the predictor's limit (the size annotation)."""
    size, limit = message.ByteSize(), predictor.rest_body_bytes
    if size > limit:
        raise GraphError(
            413,
            "PAYLOAD_TOO_LARGE",
            f"{what} of {size} bytes over the {limit} byte limit ({GRPC_MAX_MESSAGE_SIZE})",
        )
    return message


class _Edge:
    def __init__(self, frontend: Frontend) -> None:
        self._frontend = frontend

    def _skip_logging(self, context: Context) -> bool:
        return SKIP_LOGGING_HEADER in _metadata(context)

    def _predictor(self, context: Context, request: Message | None = None) -> tuple[PredictorConfig, str]:
        headers = _metadata(context)
        predictor = self._frontend.predictor(
            headers.get("namespace", "default"), headers.get("seldon", ""), headers.get(PREDICTOR_HEADER)
        )
        if request is not None:
            _bounded(predictor, request, "request")
        puid = headers.get("seldon-puid") or headers.get("x-request-id") or ""
        return predictor, puid

    async def _fail(self, context: Context, error: GraphError, outcome: Outcome | None = None) -> Any:
        if outcome is not None:
            outcome.code = error.grpc_code.name
        await context.abort(error.grpc_code, error.info)

    def _observed(
        self, predictor: PredictorConfig, context: Context, rpc: str
    ) -> AbstractContextManager[Outcome]:
        return self._frontend.observer.request(
            predictor, "predictions", "grpc", (_metadata(context),), rpc, ok="OK"
        )


class SeldonEdge(_Edge):
    async def Predict(self, request: v1_pb.SeldonMessage, context: Context) -> Any:
        try:
            predictor, puid = self._predictor(context, request)
        except GraphError as error:
            return await self._fail(context, error)
        with self._observed(predictor, context, "/seldon.protos.Seldon/Predict") as outcome:
            try:
                message = decode_seldon_proto(request)
                answer = await self._frontend.predict_seldon(
                    predictor, message, puid, self._skip_logging(context)
                )
                await context.send_initial_metadata((("seldon-puid", str(answer["meta"]["puid"])),))
                return _bounded(predictor, encode_seldon_message(answer), "answer")
            except GraphError as error:
                return await self._fail(context, error, outcome)
            except CodecError as error:
                return await self._fail(context, GraphError(500, "BAD_GRAPH_OUTPUT", str(error)), outcome)

    async def SendFeedback(self, request: v1_pb.Feedback, context: Context) -> Any:
        try:
            predictor, puid = self._predictor(context, request)
            answer = await self._frontend.feedback(
                predictor, decode_seldon_proto(request), puid, self._skip_logging(context)
            )
            return encode_seldon_message(answer)
        except GraphError as error:
            return await self._fail(context, error)

    async def GraphMetadata(self, request: Any, context: Context) -> Any:
        from google.protobuf import json_format

        try:
            predictor, _ = self._predictor(context)
            metadata = await self._frontend.executor.metadata(predictor)
            graph = {
                "name": metadata["name"],
                "models": metadata["models"],
                "inputs": metadata["graphinputs"],
                "outputs": metadata["graphoutputs"],
            }
            return json_format.ParseDict(graph, v1_pb.SeldonGraphMetadata(), ignore_unknown_fields=True)
        except GraphError as error:
            return await self._fail(context, error)
        except json_format.ParseError as error:
            return await self._fail(context, GraphError(500, "BAD_METADATA", str(error)))

    async def ModelMetadata(self, request: v1_pb.SeldonModelMetadataRequest, context: Context) -> Any:
        from google.protobuf import json_format

        try:
            predictor, _ = self._predictor(context)
            metadata = await self._frontend.executor.metadata(predictor)
            model = metadata["models"].get(request.name)
            if model is None:
                raise GraphError(404, "NOT_FOUND", f"no graph node named {request.name!r}")
            return json_format.ParseDict(model, v1_pb.SeldonModelMetadata(), ignore_unknown_fields=True)
        except GraphError as error:
            return await self._fail(context, error)
        except json_format.ParseError as error:
            return await self._fail(context, GraphError(500, "BAD_METADATA", str(error)))


class InferenceEdge(_Edge):
    async def ModelInfer(self, request: v2_pb.ModelInferRequest, context: Context) -> Any:
        try:
            predictor, puid = self._predictor(context, request)
        except GraphError as error:
            return await self._fail(context, error)
        with self._observed(predictor, context, "/inference.GRPCInferenceService/ModelInfer") as outcome:
            try:
                decoded = decode_infer_request(request)
                skip = self._skip_logging(context)
                answer = await self._frontend.predict_v2(predictor, decoded, request.model_name, puid, skip)
                return _bounded(
                    predictor, encode_infer_response(answer, raw=bool(request.raw_input_contents)), "answer"
                )
            except GraphError as error:
                return await self._fail(context, error, outcome)
            except CodecError as error:
                return await self._fail(context, GraphError(400, "BAD_DATA", str(error)), outcome)

    async def ServerLive(self, request: Any, context: Context) -> Any:
        return v2_pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Context) -> Any:
        return v2_pb.ServerReadyResponse(ready=await self._ready(context, ""))

    async def ModelReady(self, request: v2_pb.ModelReadyRequest, context: Context) -> Any:
        return v2_pb.ModelReadyResponse(ready=await self._ready(context, request.name))

    async def _ready(self, context: Context, model: str) -> bool:
        """Every node's health check (Seldon's executor readiness), or one node's when `model` names it."""
        try:
            predictor, _ = self._predictor(context)
            if model and any(n.name == model for n in predictor.graph.walk()):
                await self._frontend.executor.node_status(predictor, model)
            else:
                await self._frontend.executor.ready(predictor)
        except GraphError:
            return False
        return True

    async def ModelMetadata(self, request: v2_pb.ModelMetadataRequest, context: Context) -> Any:
        try:
            predictor, _ = self._predictor(context)
            found = await self._frontend.v2_metadata(predictor, request.name)
        except GraphError as error:
            return await self._fail(context, error)
        response = v2_pb.ModelMetadataResponse(name=found["name"], platform=found["platform"])
        for field in ("inputs", "outputs"):
            for tensor in found[field]:
                getattr(response, field).add(
                    name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
                )
        return response

    async def _unimplemented(self, request: Any, context: Context) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "graph predictors have no model repository")

    ServerMetadata = RepositoryIndex = RepositoryModelLoad = RepositoryModelUnload = _unimplemented
