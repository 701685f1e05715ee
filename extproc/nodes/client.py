"""Calls graph nodes in their own protocol: Seldon v1 or V2, REST (pooled HTTP/1.1) or gRPC (HTTP/2).

A small keep-alive HTTP/1.1 pool (`http1.py`; the runtimes speak HTTP/1.1 only, so HTTP/2 would buy
nothing, and it costs less per call than aiohttp or httpx) serves every REST node;
one `grpc.aio` channel per node address serves gRPC, with the predictor's max message size. Every
failure becomes a `NodeError` naming the node, with the status a client should see: the node's own 4xx
as 400, its 5xx as 500, no connection 503, no answer in time 504, an unreadable answer 502.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import orjson
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2

from extproc.codecs import (
    CodecError,
    Payload,
    decode_infer_response,
    decode_seldon_proto,
    encode_feedback,
    encode_infer_request,
    encode_seldon_list,
    encode_seldon_message,
)
from extproc.config import NodeConfig, Timeouts
from extproc.graph.errors import NodeError
from extproc.nodes.http1 import Http1Pool, HttpProtocolError
from extproc.tracing import inject_current
from generated.inference import dataplane_pb2 as v2_pb
from generated.seldon import prediction_pb2 as v1_pb
from telemetry.hops import CALLER, CALLER_VALUE

Json = dict[str, Any]

SELDON_PATHS = {
    "predict": "/predict",
    "transform_input": "/transform-input",
    "transform_output": "/transform-output",
    "route": "/route",
    "aggregate": "/aggregate",
}
SELDON_RPCS = {
    "predict": "/seldon.protos.Model/Predict",
    "transform_input": "/seldon.protos.Transformer/TransformInput",
    "transform_output": "/seldon.protos.OutputTransformer/TransformOutput",
    "route": "/seldon.protos.Router/Route",
    "aggregate": "/seldon.protos.Combiner/Aggregate",
}
V2_INFER = "/inference.GRPCInferenceService/ModelInfer"
V2_METADATA = "/inference.GRPCInferenceService/ModelMetadata"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# What a node that answers readiness only (V2, gRPC) says in Seldon's health-status shape.
READY_MESSAGE: Json = {"status": {"code": 200, "info": "ready", "status": "SUCCESS"}}
_GRPC_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
}


def _with_meta(message: Json, meta: Json) -> Json:
    return {**message, "meta": meta}


def _split(answer: Any, node: str) -> tuple[Payload, Json]:
    if not isinstance(answer, dict):
        raise NodeError(node, 502, "BAD_GATEWAY", f"answered {type(answer).__name__}, not a SeldonMessage")
    meta = answer.get("meta")
    return Payload.seldon(answer), meta if isinstance(meta, dict) else {}


def _error_detail(body: bytes) -> tuple[str, str]:
    """The message and reason a node put in its error body (Seldon status JSON, V2 error or text)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace").strip() or "(empty body)", ""
    if isinstance(parsed, dict):
        status = parsed.get("status")
        if isinstance(status, dict):
            return str(status.get("info", "")), str(status.get("reason", ""))
        if "error" in parsed:
            return str(parsed["error"]), ""
    return str(parsed)[:300], ""


class NodeClients:
    """The executor's `NodeClient`: owns the REST session and the gRPC channels; `close()` releases them."""

    def __init__(self, idle_per_node: int = 64) -> None:
        self._http = Http1Pool(idle_per_node)
        self._channels: dict[tuple[str, int], grpc.aio.Channel] = {}
        self._stubs: dict[tuple[str, int, str], Any] = {}

    def _stub(self, target: str, limit: int, path: str, response: Callable[[bytes], Message]) -> Any:
        key = (target, limit, path)
        stub = self._stubs.get(key)
        if stub is None:
            channel = self._channels.get((target, limit))
            if channel is None:
                options = [
                    ("grpc.max_send_message_length", limit),
                    ("grpc.max_receive_message_length", limit),
                ]
                channel = grpc.aio.insecure_channel(target, options=options)
                self._channels[(target, limit)] = channel
            stub = channel.unary_unary(path, request_serializer=_serialize, response_deserializer=response)
            self._stubs[key] = stub
        return stub

    async def close(self) -> None:
        await self._http.close()
        await asyncio.gather(*(c.close(None) for c in self._channels.values()))
        self._channels.clear()
        self._stubs.clear()

    # -- NodeClient ----------------------------------------------------------------------------------
    async def call(
        self, node: NodeConfig, method: str, payloads: Sequence[Payload], meta: Json, limits: Timeouts
    ) -> tuple[Payload, Json]:
        try:
            if node.protocol == "v2":
                if method not in ("predict", "transform_input", "transform_output"):
                    raise NodeError(node.name, 501, "NOT_IMPLEMENTED", f"a V2 node cannot {method}")
                return await self._v2_infer(node, payloads[0], meta, limits), {}
            if node.transport == "grpc":
                return await self._seldon_grpc(node, method, payloads, meta, limits)
            return await self._seldon_rest(node, method, payloads, meta, limits)
        except CodecError as error:
            raise NodeError(node.name, 400, "BAD_DATA", f"cannot translate for this node: {error}") from None

    async def feedback(self, node: NodeConfig, feedback: Json, limits: Timeouts) -> None:
        if node.protocol == "v2":
            return  # V2 has no feedback call; nothing to learn on a V2 node
        if node.transport == "grpc":
            service = "Router" if node.type == "ROUTER" else "Model"
            path = f"/seldon.protos.{service}/SendFeedback"
            await self._grpc(node, path, encode_feedback(feedback), v1_pb.SeldonMessage.FromString, limits)
        else:
            await self._post(node, "/send-feedback", _encode(node.name, feedback), limits)

    async def metadata(self, node: NodeConfig, limits: Timeouts) -> Json:
        if node.protocol == "v2":
            if node.transport == "grpc":
                request = v2_pb.ModelMetadataRequest(name=node.name)
                answer = await self._grpc(
                    node, V2_METADATA, request, v2_pb.ModelMetadataResponse.FromString, limits
                )
                return decode_seldon_proto(answer)
            return _dict(await self._get(node, f"/v2/models/{node.name}", limits), node.name)
        if node.transport == "grpc":
            answer = await self._grpc(
                node, "/seldon.protos.Model/Metadata", _EMPTY, v1_pb.SeldonModelMetadata.FromString, limits
            )
            return decode_seldon_proto(answer)
        return _dict(await self._get(node, "/metadata", limits), node.name)

    async def status(self, node: NodeConfig, limits: Timeouts) -> Json:
        """The node's health: Seldon's `/health/status` answer (a SeldonMessage, the user's
        `health_status()`) from a Seldon REST node; a V2 node's model readiness and a gRPC node's
        grpc.health.v1 check as `READY_MESSAGE`. Not ready: a `NodeError` with the node's reason."""
        if node.transport == "grpc":
            check = health_pb2.HealthCheckResponse.FromString
            answer = await self._grpc(node, HEALTH_CHECK, health_pb2.HealthCheckRequest(), check, limits)
            if answer.status != health_pb2.HealthCheckResponse.SERVING:
                raise NodeError(node.name, 503, "NOT_READY", "its gRPC health check is not SERVING")
            return READY_MESSAGE
        if node.protocol == "v2":
            await self._http_call(node, "GET", f"/v2/models/{node.name}/ready", None, limits, json=False)
            return READY_MESSAGE
        return _dict(await self._get(node, "/health/status", limits), node.name)

    # -- protocols -----------------------------------------------------------------------------------
    async def _seldon_rest(
        self, node: NodeConfig, method: str, payloads: Sequence[Payload], meta: Json, limits: Timeouts
    ) -> tuple[Payload, Json]:
        if method == "aggregate":
            body: Json = {"seldonMessages": [_with_meta(p.as_seldon(), meta) for p in payloads]}
        else:
            body = _with_meta(payloads[0].as_seldon(), meta)
        answer = await self._post(node, SELDON_PATHS[method], _encode(node.name, body), limits)
        return _split(answer, node.name)

    async def _seldon_grpc(
        self, node: NodeConfig, method: str, payloads: Sequence[Payload], meta: Json, limits: Timeouts
    ) -> tuple[Payload, Json]:
        request: Message
        if method == "aggregate":
            request = encode_seldon_list([_with_meta(p.as_seldon(), meta) for p in payloads])
        else:
            request = encode_seldon_message(_with_meta(payloads[0].as_seldon(), meta))
        answer = await self._grpc(node, SELDON_RPCS[method], request, v1_pb.SeldonMessage.FromString, limits)
        return _split(decode_seldon_proto(answer), node.name)

    async def _v2_infer(self, node: NodeConfig, payload: Payload, meta: Json, limits: Timeouts) -> Payload:
        request: Json = {"inputs": payload.as_v2()}
        if meta.get("puid"):
            request["id"] = meta["puid"]
        if node.transport == "grpc":
            answer = await self._grpc(
                node,
                V2_INFER,
                encode_infer_request(request, node.name),
                v2_pb.ModelInferResponse.FromString,
                limits,
            )
            response = decode_infer_response(answer)
        else:
            response = _dict(
                await self._post(node, f"/v2/models/{node.name}/infer", _encode(node.name, request), limits),
                node.name,
            )
        outputs = response.get("outputs")
        if not isinstance(outputs, list) or not outputs:
            raise NodeError(node.name, 502, "BAD_GATEWAY", "V2 answer has no outputs")
        return Payload.v2(outputs, payload.hint)

    # -- transports ----------------------------------------------------------------------------------
    def _address(self, node: NodeConfig, transport: str) -> str:
        address = node.grpc if transport == "grpc" else node.http
        if not address:
            raise NodeError(node.name, 503, "UNAVAILABLE", f"has no {transport} endpoint (not running?)")
        return address

    async def _post(self, node: NodeConfig, path: str, body: bytes, limits: Timeouts) -> Any:
        return await self._http_call(node, "POST", path, body, limits)

    async def _get(self, node: NodeConfig, path: str, limits: Timeouts) -> Any:
        return await self._http_call(node, "GET", path, None, limits)

    async def _http_call(
        self, node: NodeConfig, verb: str, path: str, body: bytes | None, limits: Timeouts, json: bool = True
    ) -> Any:
        address = self._address(node, "http")
        host, port = _host_port(address)
        headers = dict(_JSON_HEADERS if body is not None else _HEADERS)
        inject_current(headers)  # the node's span continues the graph's trace
        try:
            status, raw = await self._http.request(verb, host, port, path, body, headers, limits.rest_s)
        except TimeoutError:
            raise NodeError(
                node.name, 504, "TIMEOUT", f"no answer within {limits.rest_s * 1000:.0f} ms"
            ) from None
        except (OSError, asyncio.IncompleteReadError) as error:
            detail = f"cannot reach http://{address}{path}: {error or type(error).__name__}"
            raise NodeError(node.name, 503, "UNAVAILABLE", detail) from None
        except HttpProtocolError as error:
            raise NodeError(node.name, 502, "BAD_GATEWAY", f"answered garbage: {error}") from None
        if status >= 400:
            info, reason = _error_detail(raw)
            code = status if status == 413 else 400 if status < 500 else 500  # 413: over the size limit
            raise NodeError(node.name, code, reason or f"NODE_HTTP_{status}", f"answered {status}: {info}")
        if not json:
            return raw
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            text = raw[:100].decode("utf-8", "replace")
            raise NodeError(node.name, 502, "BAD_GATEWAY", f"answered with invalid JSON: {text!r}") from None

    async def _grpc(
        self,
        node: NodeConfig,
        path: str,
        request: Message,
        response: Callable[[bytes], Message],
        limits: Timeouts,
    ) -> Any:
        stub = self._stub(self._address(node, "grpc"), limits.max_message_bytes, path, _checked(response))
        try:
            carrier = dict(_HEADERS)
            inject_current(carrier)
            return await stub(request, timeout=limits.grpc_s, metadata=tuple(carrier.items()))
        except grpc.aio.AioRpcError as error:
            code = error.code()
            status = _GRPC_STATUS.get(code, 500)
            if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                detail = f"no answer within {limits.grpc_s * 1000:.0f} ms"
            else:
                detail = f"{code.name}: {error.details()}"
            raise NodeError(node.name, status, code.name, detail) from None


# On every node call (telemetry.hops): a runtime the gateway also routes to leaves it to our metrics.
_HEADERS = {CALLER: CALLER_VALUE}
_JSON_HEADERS = {"content-type": "application/json", CALLER: CALLER_VALUE}


def _encode(node: str, body: Any) -> bytes:
    """orjson reads JSON nested up to 1,024 levels but writes at most 254: a request nested deeper than a
    node call can carry is the client's error (400), not the executor's."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as error:
        detail = f"cannot pass the request on: {error} (JSON nested deeper than about 250 levels)"
        raise NodeError(node, 400, "BAD_DATA", detail) from None


@functools.lru_cache(maxsize=4096)
def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


_EMPTY = v1_pb.SeldonMessage()  # google.protobuf.Empty has the same (empty) wire form


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _checked(parse: Callable[[bytes], Message]) -> Callable[[bytes], Message]:
    def _parse(data: bytes) -> Message:
        try:
            return parse(data)
        except DecodeError as error:
            raise ValueError(f"unreadable answer: {error}") from None

    return _parse


def _dict(value: Any, node: str) -> Json:
    if not isinstance(value, dict):
        raise NodeError(node, 502, "BAD_GATEWAY", f"answered {type(value).__name__}, not a JSON object")
    return value
