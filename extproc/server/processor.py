"""The `envoy.service.ext_proc.v3.ExternalProcessor` servicer: a thin phase dispatcher for REST graphs.

Request path (verified against Envoy 1.40, see tests/graphs): the gateway's ext_proc filter is disabled
in the HCM chain and enabled per graph route by `ExtProcPerRoute` overrides, with request headers SEND,
the request body FULL_DUPLEX_STREAMED (trailers SEND, as Envoy requires with it), and
`grpc_initial_metadata` naming the predictor (`x-seldon-predictor`).
1. request headers: remember them; if the request has no body (GET metadata) answer now, else nothing:
   in full duplex Envoy sends the body at once, without waiting for an answer to the headers;
2. request body chunks: join them, answering none, up to the one with `end_of_stream` (or the trailers);
   then run the graph and answer with an `ImmediateResponse` (status, JSON body, `Seldon-Puid` and
   `Seldon-Predictor` headers), so the request never goes upstream. Envoy buffers nothing in this mode,
   so the route's body limit cannot answer 413: a body over the predictor's limit is answered here.
So a POST costs 2 messages in and 1 out, where BUFFERED cost 2 and 2 plus an Envoy round trip between
them (extproc CPU per chain request measured ~100 us lower, 1,625 vs 1,725 us median at load ~8; the
bare stream is most of the cost: ~0.9-1.1 ms of grpc-python CPU per stream whatever the message count,
grpc.aio on uvloop or asyncio or the sync server alike; strace -f -c of extproc over 500 chain requests
through `up`: per request ~14 write, ~14 epoll_pwait and ~10 futex calls (threads waking each other
and the loop, by the look of it: grpc.aio's completion-queue poller runs on a thread of its own) against
~1 sendmsg and ~3 recvmsg that carry the traffic; `grpc.http2.bdp_probe` 0 saved ~1.7 futex and ~0.15
sendmsg per request but no CPU measurably: extproc 1,778 / 1,400 us per chain request without it, 1,556
/ 1,911 with it, bench/graph runs alternated at load 1.8-3.6). A stream whose first message says the
body is BUFFERED (an older gateway config) still gets a CONTINUE per phase, as before.
Any other phase is answered with an empty response of its kind. gRPC graph requests do not come here:
a plain ImmediateResponse cannot carry a gRPC body with trailers (Envoy's gRPC local replies are
trailers-only), and `streamed_immediate_response` is not in the API types we build with (xds-protos),
so Envoy routes them to the gRPC servicers in `upstream.py` (same process, same executor) instead.
Verified on 1.40 too: per-weighted-cluster `ExtProcPerRoute` (a graph canary next to a direct one),
`status_on_error: 503` with `failure_mode_allow: false` (extproc down: an immediate 503), and the
dynamic-metadata marker that keeps the local-reply mappers off our own error bodies.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from google.protobuf import struct_pb2

from extproc.graph import GraphError
from extproc.server.exchanges import ExchangeLog, is_observe_stream
from extproc.server.frontend import Frontend, Reply

log = logging.getLogger(__name__)
PREDICTOR_METADATA = "x-seldon-predictor"
# Dynamic metadata on our own replies, so the gateway's local-reply mappers leave their bodies alone.
GRAPH_REPLY_METADATA = {"seldon_mesh.graph": {"reply": True}}


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, raw_value=value.encode()),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


_MARKER = struct_pb2.Struct()
_MARKER.update(GRAPH_REPLY_METADATA)


def reply_headers(reply: Reply, predictor: str) -> tuple[tuple[str, str], ...]:
    """The headers of our ImmediateResponse but `seldon-puid` (which comes last, when there is one)."""
    return (*reply.headers, ("seldon-predictor", predictor)) if predictor else reply.headers


@functools.lru_cache(maxsize=1024)
def _template(headers: tuple[tuple[str, str], ...]) -> ep.ProcessingResponse:
    set_headers = [_header(k, v) for k, v in headers]
    return ep.ProcessingResponse(
        dynamic_metadata=_MARKER,
        immediate_response=ep.ImmediateResponse(headers=ep.HeaderMutation(set_headers=set_headers)),
    )


def immediate(reply: Reply, puid: str, predictor: str) -> ep.ProcessingResponse:
    # A copy of a cached template with status, body and puid filled in: building the messages afresh
    # took ~30-60 us per reply, a copy ~9 us.
    response = ep.ProcessingResponse()
    response.CopyFrom(_template(reply_headers(reply, predictor)))
    answer = response.immediate_response
    answer.status.code = reply.status
    answer.body = reply.body
    if puid:
        answer.headers.set_headers.append(_header("seldon-puid", puid))
    return response


_FULL_DUPLEX = processing_mode_pb2.ProcessingMode.FULL_DUPLEX_STREAMED
_EMPTY_REPLIES = {
    "response_headers": lambda: ep.ProcessingResponse(response_headers=ep.HeadersResponse()),
    "request_trailers": lambda: ep.ProcessingResponse(request_trailers=ep.TrailersResponse()),
    "response_body": lambda: ep.ProcessingResponse(response_body=ep.BodyResponse()),
    "response_trailers": lambda: ep.ProcessingResponse(response_trailers=ep.TrailersResponse()),
}


class ExternalProcessor(ep_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    def __init__(self, frontend: Frontend) -> None:
        self._frontend = frontend
        self._exchanges = ExchangeLog(frontend.predictor, frontend.executor.events)

    async def Process(
        self,
        request_iterator: AsyncIterator[ep.ProcessingRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[ep.ProcessingResponse]:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        if is_observe_stream(metadata):  # single-model payload logging: Envoy waits for no answer
            await self._exchanges.consume(request_iterator, metadata)
            return
        predictor_name = metadata.get(PREDICTOR_METADATA)
        headers: dict[str, str] = {}
        body = bytearray()
        limit: int | None = None  # the predictor's body limit, looked up at the first body chunk
        duplex = False  # FULL_DUPLEX_STREAMED: Envoy sends everything without waiting for our answers
        async for request in request_iterator:
            phase = request.WhichOneof("request")
            if request.HasField("protocol_config"):  # on the first message only
                duplex = request.protocol_config.request_body_mode == _FULL_DUPLEX
            if phase == "request_headers":
                for header in request.request_headers.headers.headers:
                    headers[header.key] = header.raw_value.decode("utf-8", "replace") or header.value
                if request.request_headers.end_of_stream:
                    yield await self._answer(headers, b"", predictor_name, metadata)
                    return
                if not duplex:
                    yield ep.ProcessingResponse(request_headers=ep.HeadersResponse())
            elif phase == "request_body":
                body += request.request_body.body
                if duplex and limit is None:
                    limit = self._frontend.rest_body_bytes(headers.get(":path", "/"), predictor_name)
                if duplex and limit is not None and len(body) > limit:
                    # Envoy streams the body without buffering it, so its route limit cannot answer 413
                    yield self._too_large(headers, predictor_name)
                    return
                if request.request_body.end_of_stream:
                    yield await self._answer(headers, bytes(body), predictor_name, metadata)
                    return
                if not duplex:
                    yield ep.ProcessingResponse(request_body=ep.BodyResponse())
            elif phase == "request_trailers" and duplex:  # a request that ends with trailers
                yield await self._answer(headers, bytes(body), predictor_name, metadata)
                return
            elif phase in _EMPTY_REPLIES:
                yield _EMPTY_REPLIES[phase]()

    def _too_large(self, headers: dict[str, str], predictor_name: str | None) -> ep.ProcessingResponse:
        limit = self._frontend.rest_body_bytes(headers.get(":path", "/"), predictor_name)
        error = GraphError(413, "PAYLOAD_TOO_LARGE", f"request body over {limit} bytes")
        puid = headers.get("seldon-puid") or headers.get("x-request-id") or ""
        return immediate(Reply(413, orjson.dumps(error.seldon_json())), puid, predictor_name or "")

    async def _answer(
        self,
        headers: dict[str, str],
        body: bytes,
        predictor_name: str | None,
        metadata: dict[str, str],
    ) -> ep.ProcessingResponse:
        puid = headers.get("seldon-puid") or headers.get("x-request-id") or ""
        try:
            # Envoy's span for this ext_proc call rides in the stream's gRPC metadata; the client's own
            # context (if Envoy does not trace) in the forwarded request headers.
            reply = await self._frontend.rest(
                headers.get(":method", "GET"),
                headers.get(":path", "/"),
                body,
                headers,
                predictor_name,
                (metadata,),
            )
        except Exception:  # a bug must not take the stream down without an answer
            log.exception("graph request %s failed", headers.get(":path"))
            error = GraphError(500, "INTERNAL_ERROR", "internal error in the graph executor")
            reply = Reply(500, orjson.dumps(error.seldon_json()))
        return immediate(reply, puid, predictor_name or "")
