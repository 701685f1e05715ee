"""The gRPC adapter: all seven `seldon.protos` services, V2's `inference.GRPCInferenceService` (`rpc.v2`),
health and reflection on one `grpc.aio` server.

Servicers only translate: wrap the proto in a `Request` with the proto codec, call the core, encode the
`Reply`; errors become status codes in `rpc.errors`. The external `Seldon` service differs from `Model`
only in what `Predict` means (see `DataPlane.external_predict`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import empty_pb2, json_format
from grpc_health.v1 import _async as health_aio  # what `health.aio` names, visible to mypy
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from generated.seldon import prediction_pb2 as pb
from generated.seldon import prediction_pb2_grpc as pb_grpc
from model_runtime.codecs import (
    decode_proto_feedback,
    decode_proto_message,
    decode_proto_message_list,
    encode_proto_message,
)
from model_runtime.dataplane import DataPlane
from model_runtime.errors import NotFound, RuntimeFailure, UserCodeError
from model_runtime.inference import InferenceCore
from model_runtime.message import Reply, Request
from model_runtime.observe import RequestObserver
from model_runtime.payloads import PayloadInterceptor, PayloadLog
from model_runtime.rpc.errors import grpc_status
from model_runtime.rpc.observe import ObservingInterceptor
from model_runtime.rpc.tfserving import SERVICES as TFSERVING_SERVICES
from model_runtime.rpc.tfserving import add_tfserving_servicers
from model_runtime.rpc.v2 import SERVICE as V2_SERVICE
from model_runtime.rpc.v2 import Infer, InferenceServicer, add_inference_servicer
from model_runtime.settings import ServerSettings
from model_runtime.tensors import InferRequest, InferResponse
from model_runtime.tfserving import TFServingCore
from telemetry.undecodable import UndecodableRequestInterceptor

log = logging.getLogger(__name__)

T = TypeVar("T")

SELDON_SERVICES = tuple(
    pb.DESCRIPTOR.services_by_name[name].full_name
    for name in ("Generic", "Model", "Router", "Transformer", "OutputTransformer", "Combiner", "Seldon")
)
Context = grpc.aio.ServicerContext[Any, Any]

Adder = Callable[[Any, Any], None]
_INTERNAL_SERVICES: tuple[Adder, ...] = (
    pb_grpc.add_GenericServicer_to_server,
    pb_grpc.add_ModelServicer_to_server,
    pb_grpc.add_RouterServicer_to_server,
    pb_grpc.add_TransformerServicer_to_server,
    pb_grpc.add_OutputTransformerServicer_to_server,
    pb_grpc.add_CombinerServicer_to_server,
)
_add_seldon: Adder = pb_grpc.add_SeldonServicer_to_server


class ComponentServicer:
    """Implements the internal services (Generic, Model, Router, Transformer, OutputTransformer, Combiner)."""

    def __init__(self, core: DataPlane, executor: Executor | None) -> None:
        self.core = core
        self.executor = executor

    async def Predict(self, request: pb.SeldonMessage, context: Context) -> pb.SeldonMessage:
        return await self._message(self.core.predict, request, decode_proto_message, context)

    async def TransformInput(self, request: pb.SeldonMessage, context: Context) -> pb.SeldonMessage:
        return await self._message(self.core.transform_input, request, decode_proto_message, context)

    async def TransformOutput(self, request: pb.SeldonMessage, context: Context) -> pb.SeldonMessage:
        return await self._message(self.core.transform_output, request, decode_proto_message, context)

    async def Route(self, request: pb.SeldonMessage, context: Context) -> pb.SeldonMessage:
        return await self._message(self.core.route, request, decode_proto_message, context)

    async def Aggregate(self, request: pb.SeldonMessageList, context: Context) -> pb.SeldonMessage:
        return await self._message(self.core.aggregate, request, decode_proto_message_list, context)

    async def SendFeedback(self, request: pb.Feedback, context: Context) -> pb.SeldonMessage:
        return await self._message(self.core.send_feedback, request, decode_proto_feedback, context)

    async def Metadata(self, request: empty_pb2.Empty, context: Context) -> pb.SeldonModelMetadata:
        try:
            return _model_metadata(self.core.metadata())
        except RuntimeFailure as exc:
            await _abort(context, exc)

    async def _message(
        self,
        method: Callable[[Request], Reply],
        raw: Any,
        decoder: Callable[[Any], Any],
        context: Context,
    ) -> pb.SeldonMessage:
        try:
            reply = await self._run(method, Request(raw, decoder, _puid(context)))
            await context.send_initial_metadata((("seldon-puid", reply.puid),))
            return _encode_reply(reply)
        except RuntimeFailure as exc:
            await _abort(context, exc)
        except Exception as exc:
            log.exception("unexpected error in gRPC handler")
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        if self.executor is None:
            return function(*args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)


class SeldonServicer(ComponentServicer):
    """The external `seldon.protos.Seldon` service, so Envoy can route a one-node graph straight here."""

    async def Predict(self, request: pb.SeldonMessage, context: Context) -> pb.SeldonMessage:
        return await self._message(self.core.external_predict, request, decode_proto_message, context)

    async def ModelMetadata(
        self, request: pb.SeldonModelMetadataRequest, context: Context
    ) -> pb.SeldonModelMetadata:
        try:
            if request.name and request.name != self.core.settings.name:
                raise NotFound(
                    f"no model named {request.name!r} (this runtime serves {self.core.settings.name!r})"
                )
            return _model_metadata(self.core.metadata())
        except RuntimeFailure as exc:
            await _abort(context, exc)

    async def GraphMetadata(self, request: empty_pb2.Empty, context: Context) -> pb.SeldonGraphMetadata:
        try:
            graph = self.core.graph_metadata()
            out = pb.SeldonGraphMetadata(name=graph["name"])
            for name, model in graph["models"].items():
                out.models[name].CopyFrom(_model_metadata(model))
            out.inputs.extend(out.models[self.core.settings.name].inputs)
            out.outputs.extend(out.models[self.core.settings.name].outputs)
            return out
        except RuntimeFailure as exc:
            await _abort(context, exc)


def create_server(
    settings: ServerSettings,
    core: DataPlane,
    executor: Executor | None = None,
    inference: InferenceCore | None = None,
    infer: Infer | None = None,
    observer: RequestObserver | None = None,
    payloads: PayloadLog | None = None,
) -> tuple[grpc.aio.Server, health_aio.HealthServicer, int]:
    """The server (not started), its health servicer (NOT_SERVING until `mark_serving`) and its port."""
    limit = settings.grpc_max_message_bytes
    interceptor = ObservingInterceptor(observer) if observer is not None else None
    interceptors: list[Any] = [interceptor] if interceptor is not None and interceptor.active else []
    if payloads is not None:  # after the observer: its span and histogram include the wait for the spool
        interceptors.append(PayloadInterceptor(payloads))
    interceptors.append(UndecodableRequestInterceptor())  # innermost: the others see its INVALID_ARGUMENT
    server = grpc.aio.server(
        interceptors=interceptors or None,
        options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ],
    )
    component = ComponentServicer(core, executor)
    for add in _INTERNAL_SERVICES:
        add(component, server)
    _add_seldon(SeldonServicer(core, executor), server)
    inference = inference or InferenceCore(core)
    if infer is None:

        async def infer(request: InferRequest) -> InferResponse:
            return await component._run(inference.infer, request)

    add_inference_servicer(InferenceServicer(inference, infer, component._run), server)
    add_tfserving_servicers(TFServingCore(core), component._run, server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SELDON_SERVICES, V2_SERVICE, *TFSERVING_SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME),
        server,
    )
    host = (
        f"[{settings.host}]" if ":" in settings.host and not settings.host.startswith("[") else settings.host
    )
    port = server.add_insecure_port(f"{host}:{settings.grpc_port}")
    return server, health_servicer, port


async def mark_serving(health_servicer: health_aio.HealthServicer, serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for service in ("", *SELDON_SERVICES, V2_SERVICE):
        await health_servicer.set(service, status)


def _encode_reply(reply: Reply) -> pb.SeldonMessage:
    if reply.message is not None:
        return encode_proto_message(reply.message)
    raw = reply.raw
    if isinstance(raw, pb.SeldonMessage):
        return raw
    try:
        return json_format.ParseDict(raw, pb.SeldonMessage())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise UserCodeError(f"a *_raw method returned something that is not a SeldonMessage: {exc}") from exc


def _model_metadata(model: dict[str, Any]) -> pb.SeldonModelMetadata:
    plain = dict(model)
    plain["custom"] = {str(k): str(v) for k, v in (model.get("custom") or {}).items()}
    plain["versions"] = [str(v) for v in model.get("versions") or []]
    try:
        return json_format.ParseDict(plain, pb.SeldonModelMetadata(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise UserCodeError(f"metadata cannot be encoded as SeldonModelMetadata: {exc}") from exc


def _puid(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "seldon-puid":
            return str(value)
    return None


async def _abort(context: Context, error: RuntimeFailure) -> NoReturn:
    await context.abort(grpc_status(error), error.info)
    raise AssertionError("unreachable")  # abort always raises
