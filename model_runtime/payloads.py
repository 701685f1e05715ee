"""Payload logging of a single-model predictor, in the runtime that serves it.

The gateway routes a single-model predictor straight to its runtime, so the runtime has the payloads
already: it logs what a graph's root node with the same `logger` logs in extproc, through the same durable
spool and delivery (`payload_log`). Per external prediction (Seldon `predictions`, V2 `infer`, and their
gRPC methods): a request event with the body the client sent, and, when the answer is a success, a response
event with the body the client gets; per feedback (mode all or response): an `io.seldon.serving.feedback`
event. Both events are committed to the spool before the answer is sent (`Receipt.written`): a SIGKILL of
the runtime loses no event of an answered request. `Seldon-Skip-Logging` turns it off per request, and
calls extproc makes (the `telemetry.hops` marker: extproc translating for a client of another protocol)
are logged by extproc, not here. gRPC messages are logged in their protobuf JSON form.

`RestApp` wraps its logged handlers with `PayloadLog.rest`; the gRPC server installs `PayloadInterceptor`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import grpc
import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from starlette.types import Message as AsgiMessage
from starlette.types import Receive, Scope

from model_runtime.errors import RuntimeFailure
from model_runtime.metrics import ModelIdentity
from model_runtime.settings import LoggerMode, PayloadLogSettings
from payload_log import (
    SKIP_LOGGING_HEADER,
    EventTemplate,
    EventType,
    LoggerObserver,
    PayloadLogger,
    WireProtocol,
)
from payload_log.slots import Slot
from telemetry.hops import CALLER, CALLER_VALUE

if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor

log = logging.getLogger(__name__)

Result = tuple[int, bytes, list[tuple[bytes, bytes]]]
Handler = Callable[[Scope, Receive], Awaitable[Result]]
_SKIP = SKIP_LOGGING_HEADER.encode()
_CALLER = CALLER.encode()
_CALLER_VALUE = CALLER_VALUE.encode()

# REST paths logged: (event kind, protocol); V2 infer paths are recognised by `rest_kind`
REST_PATHS: dict[str, tuple[str, str]] = {
    "/api/v1.0/predictions": ("predict", WireProtocol.SELDON),
    "/api/v0.1/predictions": ("predict", WireProtocol.SELDON),
    "/api/v1.0/feedback": ("feedback", WireProtocol.SELDON),
    "/api/v0.1/feedback": ("feedback", WireProtocol.SELDON),
}
GRPC_METHODS: dict[str, tuple[str, str]] = {
    "/seldon.protos.Seldon/Predict": ("predict", WireProtocol.SELDON),
    "/seldon.protos.Seldon/SendFeedback": ("feedback", WireProtocol.SELDON),
    "/inference.GRPCInferenceService/ModelInfer": ("predict", WireProtocol.V2),
}


def rest_kind(path: str) -> tuple[str, str] | None:
    found = REST_PATHS.get(path)
    if found is None and path.startswith("/v2/models/") and path.endswith("/infer"):
        return "predict", WireProtocol.V2
    return found


class PayloadLog:
    def __init__(
        self,
        settings: PayloadLogSettings,
        identity: ModelIdentity,
        node: str,
        source: str,
        observer: LoggerObserver | None = None,
        slot: Slot | None = None,
    ) -> None:
        """`slot`: the spool directory claimed under `settings.spool.spool_dir` (None: that directory)."""
        spool = settings.spool
        if slot is not None:
            spool = spool.model_copy(update={"spool_dir": slot.directory})
        self.slot = slot
        self.logger = PayloadLogger(spool, observer)
        self._mode = settings.mode
        self._url = settings.url
        self._node = node
        self._deployment = identity.deployment_name
        self._predictor = identity.predictor_name
        self._namespace = settings.namespace
        self._source = settings.source or source
        self.logs_request = settings.mode in (LoggerMode.ALL, LoggerMode.REQUEST)
        self.logs_response = settings.mode in (LoggerMode.ALL, LoggerMode.RESPONSE)
        # what this node's events share, rendered once per protocol (`EventTemplate`)
        self._templates: dict[str, EventTemplate] = {p: self._template(p) for p in WireProtocol}

    def _template(self, protocol: str) -> EventTemplate:
        return EventTemplate(
            model_id=self._node,
            deployment=self._deployment,
            namespace=self._namespace,
            predictor=self._predictor,
            protocol=protocol,
            source=self._source,
            destination=self._url,
        )

    async def exchange(self, puid: str, protocol: str, request: bytes | None, response: bytes | None) -> None:
        """Log one prediction (`response` None: it failed) and return once its events are spooled."""
        template = self._templates.get(protocol) or self._template(protocol)
        events: list[tuple[EventType, bytes]] = []
        if request is not None and self.logs_request:
            events.append((EventType.REQUEST, request))
        if response is not None and self.logs_response:
            events.append((EventType.RESPONSE, response))
        await self._log(template, puid, events)

    async def _log(self, template: EventTemplate, puid: str, events: list[tuple[EventType, bytes]]) -> None:
        if not events:
            return
        if self.logger.writes_through:  # fsync=os: written on return, no receipt to wait on
            self.logger.write_templated(template, puid, events)
            return
        receipt = self.logger.receipt()
        for kind, body in events:
            receipt.post_templated(template, kind, puid, body)
        await receipt.written()

    async def feedback(self, puid: str, body: bytes) -> None:
        if self.logs_response:
            await self._log(self._templates[WireProtocol.SELDON], puid, [(EventType.FEEDBACK, body)])

    # -- REST ----------------------------------------------------------------------------------------------

    def rest(self, handler: Handler, kind: str, protocol: str) -> Handler:
        """`handler`, logging its exchanges; the answer leaves once its events are spooled."""

        async def logged(scope: Scope, receive: Receive) -> Result:
            headers: list[tuple[bytes, bytes]] = scope["headers"]
            if any(key == _SKIP and value.strip() for key, value in headers) or (
                (_CALLER, _CALLER_VALUE) in headers
            ):
                return await handler(scope, receive)
            chunks: list[bytes] = []

            async def tee() -> AsgiMessage:
                message = await receive()
                chunks.append(message.get("body", b""))
                return message

            try:
                result = await handler(scope, tee)
            except RuntimeFailure:
                if kind == "predict":
                    await self.exchange(_puid(headers), protocol, _request_body(scope, chunks), None)
                raise
            status, body, _ = result
            if kind == "feedback":
                if 200 <= status < 300:
                    await self.feedback(_puid(headers, result), _request_body(scope, chunks) or b"{}")
                return result
            response = body if 200 <= status < 300 else None
            await self.exchange(_puid(headers, result), protocol, _request_body(scope, chunks), response)
            return result

        return logged


def _puid(headers: list[tuple[bytes, bytes]], result: Result | None = None) -> str:
    """The request's `Seldon-Puid` (the gateway sets it from x-request-id when the client did not), else
    the one the runtime answered with."""
    found = {key: raw for key, raw in headers if key in (b"seldon-puid", b"x-request-id")}
    value: bytes | None = found.get(b"seldon-puid") or found.get(b"x-request-id")
    if value is None and result is not None:
        value = next((v for k, v in result[2] if k == b"seldon-puid"), None)
    return value.decode("latin-1") if value else ""


def _request_body(scope: Scope, chunks: list[bytes]) -> bytes | None:
    body = b"".join(chunks)
    if body:
        return body
    query: bytes = scope.get("query_string", b"")
    if b"json=" in query:  # Seldon's `?json=` form
        values = parse_qs(query.decode("latin-1")).get("json")
        if values:
            return values[0].encode()
    return None


# -- gRPC ------------------------------------------------------------------------------------------------

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Any]]


class PayloadInterceptor(_Interceptor):
    """Logs the external gRPC predictions and feedback of a gateway-facing runtime, as `PayloadLog.rest`."""

    def __init__(self, payloads: PayloadLog) -> None:
        self._payloads = payloads

    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        found = GRPC_METHODS.get(details.method)
        if found is None or handler is None or handler.unary_unary is None:
            return handler
        metadata = details.invocation_metadata or ()
        if (CALLER, CALLER_VALUE) in metadata or any(
            key == SKIP_LOGGING_HEADER and str(value).strip() for key, value in metadata
        ):
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(handler.unary_unary, found, metadata),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(
        self, inner: Callable[[Any, Any], Awaitable[Any]], found: tuple[str, str], metadata: Any
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        payloads = self._payloads
        kind, protocol = found
        values = {k: v for k, v in metadata if isinstance(v, str)}
        puid = values.get("seldon-puid") or values.get("x-request-id") or ""

        async def logged(request: Message, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                response = await inner(request, context)
            except Exception:  # an abort: the request is logged, as Seldon logs a failed one
                if kind == "predict":
                    await payloads.exchange(puid, protocol, _json(request), None)
                raise
            if kind == "feedback":
                await payloads.feedback(puid, _json(request))
            else:
                await payloads.exchange(puid, protocol, _json(request), _json(response))
            return response

        return logged


def _json(message: Message) -> bytes:
    return orjson.dumps(json_format.MessageToDict(message))
