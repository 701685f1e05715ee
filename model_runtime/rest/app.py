"""The REST adapter: Seldon v1 microservice and external paths, and the V2 paths (`rest.v2`), over a small
ASGI app (run by uvicorn).

There is no framework between uvicorn and the handlers: the path is one dict lookup, the body is read
straight from `receive` under the size limit, decoded by the JSON codec inside the core, and the reply is
written as orjson bytes. (Starlette is used only for its ASGI type names.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar
from urllib.parse import parse_qs

from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage
from starlette.types import Receive, Scope, Send

from model_runtime.codecs import (
    decode_json_feedback,
    decode_json_message,
    decode_json_message_list,
    dumps,
    encode_json_message,
    encode_json_status,
    loads,
)
from model_runtime.dataplane import DataPlane
from model_runtime.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    Reason,
    RuntimeFailure,
    UserStatusError,
)
from model_runtime.inference import InferenceCore
from model_runtime.message import Reply, Request
from model_runtime.observe import RAW_CALLER, Observed, RequestObserver
from model_runtime.payloads import PayloadLog, rest_kind
from model_runtime.rest.errors import http_status
from model_runtime.rest.openapi import SWAGGER_ASSETS, openapi_document, swagger_asset, swagger_ui_html
from model_runtime.rest.tfserving import PREFIX as TFSERVING_PREFIX
from model_runtime.rest.tfserving import TFServingRoutes
from model_runtime.rest.v2 import Infer, V2Routes
from model_runtime.settings import ServerSettings
from model_runtime.tensors import InferRequest, InferResponse
from model_runtime.tfserving import TFServingCore
from model_runtime.tracing import carrier

log = logging.getLogger(__name__)

T = TypeVar("T")
Headers = list[tuple[bytes, bytes]]
Result = tuple[int, bytes, Headers]
Handler = Callable[[Scope, Receive], Awaitable[Result]]

_JSON = (b"content-type", b"application/json")
_TEXT = (b"content-type", b"text/plain; charset=utf-8")

# path -> (Seldon's `service` label when it is an external request, span method when traced)
OBSERVED_PATHS: dict[str, tuple[str | None, str | None]] = {
    "/api/v1.0/predictions": ("predictions", "predictions"),
    "/api/v0.1/predictions": ("predictions", "predictions"),
    "/api/v1.0/feedback": ("feedback", "feedback"),
    "/api/v1.0/metadata": ("metadata", None),
    "/api/v1.0/health/status": ("status", None),
    "/predict": (None, "predict"),
    "/transform-input": (None, "transform-input"),
    "/transform-output": (None, "transform-output"),
    "/route": (None, "route"),
    "/aggregate": (None, "aggregate"),
    "/send-feedback": (None, "feedback"),
}


class RestApp:
    """An ASGI application serving one `DataPlane`."""

    def __init__(
        self,
        core: DataPlane,
        settings: ServerSettings,
        executor: Executor | None = None,
        inference: InferenceCore | None = None,
        infer: Infer | None = None,
        observer: RequestObserver | None = None,
        payloads: PayloadLog | None = None,
        gateway_facing: bool = False,
    ) -> None:
        """`gateway_facing`: the gateway routes a predictor straight here, so `/api/v1.0/metadata` is asked
        where Seldon's executor would answer it: with the graph's metadata, not the model's."""
        self.core = core
        self.limit = settings.max_request_bytes
        self.executor = executor
        inference = inference or InferenceCore(core)
        self.v2 = V2Routes(inference, self.read_body, infer or self._infer_here(inference), self._run)
        self.tfserving = TFServingRoutes(TFServingCore(core), self.read_body, self._run)
        self._observer = observer
        self._tf_observed = {
            kind: observer.plan(kind, method) if observer is not None else None
            for kind, method in (("predictions", "predict"), ("metadata", None))
        }
        self._openapi = dumps(openapi_document(core.settings.name))
        # relative, so the page also works behind the gateway's /seldon/<ns>/<name>/ prefix
        self._swagger = swagger_ui_html("../../../seldon.json", core.settings.name).encode()
        message_endpoints: dict[str, tuple[Callable[[Request], Reply], Callable[[Any], Any]]] = {
            "/predict": (core.predict, decode_json_message),
            "/api/v1.0/predictions": (core.external_predict, decode_json_message),
            "/api/v0.1/predictions": (core.external_predict, decode_json_message),
            "/transform-input": (core.transform_input, decode_json_message),
            "/transform-output": (core.transform_output, decode_json_message),
            "/route": (core.route, decode_json_message),
            "/aggregate": (core.aggregate, decode_json_message_list),
            "/send-feedback": (core.send_feedback, decode_json_feedback),
            "/api/v1.0/feedback": (core.send_feedback, decode_json_feedback),
        }
        self.routes: dict[str, Handler] = {
            path: self._message_handler(method, decoder)
            for path, (method, decoder) in message_endpoints.items()
        }
        self.routes.update(
            {
                "/health/ping": self._ping,
                "/health/status": self._health_status,
                "/api/v1.0/health/status": self._health_status,
                "/metadata": self._metadata,
                "/api/v1.0/metadata": self._graph_metadata if gateway_facing else self._metadata,
                "/seldon.json": self._openapi_json,
                "/api/v1.0/doc/": self._swagger_ui,
                "/api/v1.0/doc": self._swagger_redirect,
                **{f"/api/v1.0/doc/{name}": self._swagger_asset(name) for name in SWAGGER_ASSETS},
                "/ready": self._ready,
                "/live": self._live,
            }
        )
        self.routes.update(self.v2.routes)
        if payloads is not None:  # inside the observer: the histogram includes the wait for the spool
            for path, handler in list(self.routes.items()):
                logged = rest_kind(path)
                if logged is not None:
                    self.routes[path] = payloads.rest(handler, *logged)
        if observer is not None:
            self._observe(observer)

    def _observe(self, observer: RequestObserver) -> None:
        """Wrap the handlers of the endpoints there is something to observe on; leave the rest alone."""
        for path, handler in list(self.routes.items()):
            service, method = OBSERVED_PATHS.get(path) or _v2_observed(path)
            observed = observer.plan(service, method)
            if observed is not None:
                self.routes[path] = _observed(handler, observer, observed)

    def _tfserving_handler(self, path: str) -> Handler:
        """A TF Serving path's handler, counted like Seldon's (predict/classify/regress as predictions)."""
        handler = self.tfserving.resolve(path)
        kind = "predictions" if path.rpartition(":")[2] in ("predict", "classify", "regress") else "metadata"
        observed = self._tf_observed[kind]
        if observed is None or self._observer is None:
            return handler
        return _observed(handler, self._observer, observed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets are not used
        path: str = scope["path"]
        handler = self.routes.get(path)
        if handler is None:
            if path.startswith("/v2"):
                handler = self.v2.resolve(path)
            elif path.startswith("/api/v1.0/metadata/"):
                handler = self._model_metadata
            elif path.startswith(("/api/v1.0/status/", "/api/v0.1/status/")):
                handler = self._model_status
            elif path.startswith(TFSERVING_PREFIX):
                handler = self._tfserving_handler(path)
        try:
            if handler is None:
                raise NotFound(f"no such path: {path}")
            status, body, headers = await handler(scope, receive)
            if len(body) > self.limit and status < 300:  # answers are bounded like requests
                raise PayloadTooLarge(f"answer of {len(body)} bytes is over the {self.limit} byte limit")
        except RuntimeFailure as exc:
            status, body, headers = _error(scope, http_status(exc), exc.info, exc.reason)
            if isinstance(exc, UserStatusError) and exc.body is not None:  # a model_error_handler's reply
                body, headers[0] = exc.body, (b"content-type", exc.content_type.encode("latin-1"))
        except Exception as exc:
            log.exception("unexpected error serving %s", path)
            status, body, headers = _error(scope, 500, f"{type(exc).__name__}: {exc}", Reason.INTERNAL_ERROR)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # --- Seldon message endpoints ----------------------------------------------------------------------

    def _message_handler(self, method: Callable[[Request], Reply], decoder: Callable[[Any], Any]) -> Handler:
        async def handle(scope: Scope, receive: Receive) -> Result:
            raw = await self._payload(scope, receive)
            request = Request(raw, decoder, _header(scope, b"seldon-puid"))
            reply = await self._run(method, request)
            return 200, _encode_reply(reply), [_JSON, (b"seldon-puid", reply.puid.encode())]

        return handle

    async def _payload(self, scope: Scope, receive: Receive) -> Any:
        """The JSON request: `?json=` query, a form field `json`, or the body itself (Seldon's wrapper)."""
        query: bytes = scope.get("query_string", b"")
        if b"json=" in query:
            values = parse_qs(query.decode("latin-1")).get("json")
            if values:
                return loads(values[0])
        body = await self.read_body(scope, receive)
        content_type = _header(scope, b"content-type") or ""
        if content_type.startswith("application/x-www-form-urlencoded") and not body.lstrip().startswith(
            (b"{", b"[")
        ):  # a real form; `curl -d '{...}'` also says urlencoded but sends JSON
            values = parse_qs(body.decode("utf-8", errors="replace")).get("json")
            if not values:
                raise BadRequest("form body has no json field")
            return loads(values[0])
        if not body:
            raise BadRequest("empty request body; send a SeldonMessage as JSON")
        return loads(body)

    async def read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body, or `PayloadTooLarge` as soon as it is known to be over the limit."""
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            raise PayloadTooLarge(f"request body of {length} bytes is over the {self.limit} byte limit")
        return await self._body(receive)

    def _infer_here(self, inference: InferenceCore) -> Infer:
        async def infer(request: InferRequest) -> InferResponse:
            return await self._run(inference.infer, request)

        return infer

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                raise BadRequest("client disconnected")
            chunk: bytes = event.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise PayloadTooLarge(f"request body is over the {self.limit} byte limit")
            chunks.append(chunk)
            if not event.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """User code runs inline on the loop (fastest for small models) or in the configured threads."""
        if self.executor is None:
            return function(*args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    # --- health, metadata, docs ------------------------------------------------------------------------

    async def _ping(self, scope: Scope, receive: Receive) -> Result:
        return 200, b"pong", [_TEXT]

    async def _live(self, scope: Scope, receive: Receive) -> Result:
        return 200, b"live", [_TEXT]

    async def _ready(self, scope: Scope, receive: Receive) -> Result:
        self.core.check_ready()
        return 200, b"ready", [_TEXT]

    async def _health_status(self, scope: Scope, receive: Receive) -> Result:
        reply = await self._run(self.core.health_status, _header(scope, b"seldon-puid"))
        return 200, _encode_reply(reply), [_JSON, (b"seldon-puid", reply.puid.encode())]

    async def _metadata(self, scope: Scope, receive: Receive) -> Result:
        return 200, dumps(self.core.metadata()), [_JSON]

    async def _graph_metadata(self, scope: Scope, receive: Receive) -> Result:
        graph = self.core.graph_metadata()
        graph["graphinputs"], graph["graphoutputs"] = graph.pop("inputs"), graph.pop("outputs")
        return 200, dumps(graph), [_JSON]

    async def _model_metadata(self, scope: Scope, receive: Receive) -> Result:
        name = scope["path"].removeprefix("/api/v1.0/metadata/").strip("/")
        if name != self.core.settings.name:
            raise NotFound(f"no model named {name!r} here (this runtime serves {self.core.settings.name!r})")
        return await self._metadata(scope, receive)

    async def _model_status(self, scope: Scope, receive: Receive) -> Result:
        """Seldon's executor path `/api/v1.0/status/<model>`: the node's health status, by its name."""
        name = scope["path"].split("/status/", 1)[1].strip("/")
        if name != self.core.settings.name:
            raise NotFound(f"no model named {name!r} here (this runtime serves {self.core.settings.name!r})")
        return await self._health_status(scope, receive)

    async def _openapi_json(self, scope: Scope, receive: Receive) -> Result:
        return 200, self._openapi, [_JSON]

    async def _swagger_ui(self, scope: Scope, receive: Receive) -> Result:
        return 200, self._swagger, [(b"content-type", b"text/html; charset=utf-8")]

    async def _swagger_redirect(self, scope: Scope, receive: Receive) -> Result:
        return 307, b"", [(b"location", b"doc/")]

    def _swagger_asset(self, name: str) -> Handler:
        headers = [(b"content-type", SWAGGER_ASSETS[name]), (b"cache-control", b"public, max-age=86400")]

        async def asset(scope: Scope, receive: Receive) -> Result:
            return 200, swagger_asset(name), headers

        return asset


def _v2_observed(path: str) -> tuple[str | None, str | None]:
    if not path.startswith("/v2/models/"):
        return None, None
    if path.endswith("/infer"):
        return "predictions", "infer"
    return (None, None) if path.endswith("/ready") else ("metadata", None)


def _observed(handler: Handler, observer: RequestObserver, observed: Observed) -> Handler:
    async def handle(scope: Scope, receive: Receive) -> Result:
        def headers() -> dict[str, str]:
            return carrier(scope["headers"])

        counted = observed.service is not None and RAW_CALLER not in scope["headers"]
        with observer.request(observed, headers, scope["method"], "200", counted=counted) as outcome:
            try:
                result = await handler(scope, receive)
            except RuntimeFailure as exc:
                outcome.code = str(http_status(exc))
                raise
            outcome.code = str(result[0])
            return result

    return handle


def _encode_reply(reply: Reply) -> bytes:
    if reply.message is not None:
        return dumps(encode_json_message(reply.message))
    raw = reply.raw
    if isinstance(raw, ProtoMessage):
        raw = json_format.MessageToDict(raw)
    return dumps(raw)


def _error(scope: Scope, status: int, info: str, reason: str) -> Result:
    headers = [_JSON]
    puid = _header(scope, b"seldon-puid")
    if puid:
        headers.append((b"seldon-puid", puid.encode("latin-1")))
    return status, dumps(encode_json_status(status, info, reason)), headers


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
