"""The V2 gRPC adapter: `inference.GRPCInferenceService` on the same `grpc.aio` server as the Seldon services.

Each method translates with `codecs.v2_proto`, calls `inference.InferenceCore`, and maps runtime errors to
a status code in `rpc.errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import grpc

from generated.inference import dataplane_pb2 as v2
from generated.inference import dataplane_pb2_grpc as v2_grpc
from model_runtime.codecs.v2_proto import decode_v2_proto_request, encode_v2_proto_response
from model_runtime.errors import RuntimeFailure
from model_runtime.inference import InferenceCore
from model_runtime.rpc.errors import grpc_status
from model_runtime.tensors import InferRequest, InferResponse

log = logging.getLogger(__name__)

SERVICE = v2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
Context = grpc.aio.ServicerContext[Any, Any]
Infer = Callable[[InferRequest], Awaitable[InferResponse]]
Blocking = Callable[..., Awaitable[Any]]


class InferenceServicer(v2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, core: InferenceCore, infer: Infer, blocking: Blocking) -> None:
        self.core = core
        self._infer = infer
        self._blocking = blocking

    async def ServerLive(self, request: v2.ServerLiveRequest, context: Context) -> v2.ServerLiveResponse:
        return v2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: v2.ServerReadyRequest, context: Context) -> v2.ServerReadyResponse:
        return v2.ServerReadyResponse(ready=self.core.server_ready())

    async def ModelReady(self, request: v2.ModelReadyRequest, context: Context) -> v2.ModelReadyResponse:
        try:
            return v2.ModelReadyResponse(ready=self.core.model_ready(request.name, request.version))
        except RuntimeFailure as exc:
            await _abort(context, exc)

    async def ServerMetadata(
        self, request: v2.ServerMetadataRequest, context: Context
    ) -> v2.ServerMetadataResponse:
        return v2.ServerMetadataResponse(**self.core.server_metadata())

    async def ModelMetadata(
        self, request: v2.ModelMetadataRequest, context: Context
    ) -> v2.ModelMetadataResponse:
        try:
            meta = self.core.model_metadata(request.name, request.version)
            out = v2.ModelMetadataResponse(
                name=meta["name"], versions=meta["versions"], platform=meta["platform"]
            )
            for field in ("inputs", "outputs"):
                for tensor in meta[field]:
                    getattr(out, field).add(
                        name=str(tensor.get("name", "")),
                        datatype=str(tensor.get("datatype", "")),
                        shape=[int(d) for d in tensor.get("shape", [])],
                    )
            return out
        except RuntimeFailure as exc:
            await _abort(context, exc)

    async def ModelInfer(self, request: v2.ModelInferRequest, context: Context) -> v2.ModelInferResponse:
        try:
            decoded, raw = decode_v2_proto_request(request)
            response = await self._infer(decoded)
            return encode_v2_proto_response(response, raw)
        except RuntimeFailure as exc:
            await _abort(context, exc)
        except Exception as exc:
            log.exception("unexpected error in ModelInfer")
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

    async def RepositoryIndex(
        self, request: v2.RepositoryIndexRequest, context: Context
    ) -> v2.RepositoryIndexResponse:
        models = self.core.repository_index()
        if request.ready:
            models = [m for m in models if m["state"] == "READY"]
        return v2.RepositoryIndexResponse(models=[v2.RepositoryIndexResponse.ModelIndex(**m) for m in models])

    async def RepositoryModelLoad(
        self, request: v2.RepositoryModelLoadRequest, context: Context
    ) -> v2.RepositoryModelLoadResponse:
        try:
            await self._blocking(self.core.load, request.model_name)
            return v2.RepositoryModelLoadResponse()
        except RuntimeFailure as exc:
            await _abort(context, exc)

    async def RepositoryModelUnload(
        self, request: v2.RepositoryModelUnloadRequest, context: Context
    ) -> v2.RepositoryModelUnloadResponse:
        try:
            self.core.unload(request.model_name)
            return v2.RepositoryModelUnloadResponse()
        except RuntimeFailure as exc:
            await _abort(context, exc)


_add: Callable[[Any, Any], None] = v2_grpc.add_GRPCInferenceServiceServicer_to_server


def add_inference_servicer(servicer: InferenceServicer, server: grpc.aio.Server) -> None:
    _add(servicer, server)


async def _abort(context: Context, error: RuntimeFailure) -> NoReturn:
    await context.abort(grpc_status(error), error.info)
    raise AssertionError("unreachable")  # abort always raises
