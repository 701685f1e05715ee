"""Payload logging of single-model predictors, from the gateway's observability-mode ext_proc streams.

A single-model predictor is served by Envoy straight from the gateway to its runtime; when its node has
a `logger`, its routes enable a second ext_proc filter in observability mode (`observability_mode: true`,
request and response headers SEND, bodies STREAMED: Envoy 1.40 sends no body in BUFFERED mode there;
xds_controller/translate/extproc.py) whose stream metadata carries `x-seldon-predictor: <predictor>`
and `x-seldon-observe: 1`. Envoy sends copies of the request and the response and waits for no answer
(Envoy 1.40's ext_proc API: in observability mode "the server should not respond to this message, as any
responses will be ignored", though it may close the stream), so logging adds no latency to the call.

`ExchangeLog.consume` reads one such stream, sends nothing back, and logs through the executor's
`NodeEvents` hook exactly what a graph node with that logger would log: a request event once the
request body is complete, a response event once a 2xx response body is, both with the request's
`Seldon-Puid` (else `x-request-id`, what the gateway returns as `Seldon-Puid`), the node's name as
`Ce-Modelid`, gzip bodies inflated, gRPC messages in their JSON form. Only predictions are logged (Seldon
`predictions`, V2 `infer` and their gRPC methods), and nothing when the request carries
`Seldon-Skip-Logging`. It returns (closing the stream, so Envoy need not hold it) as soon as the exchange
is complete or turns out not to be logged, and never raises into the stream: a failure is logged and
ends the stream, which Envoy ignores.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import orjson
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from google.protobuf.message import DecodeError, Message

from extproc.codecs import decode_infer_request, decode_infer_response, decode_seldon_proto
from extproc.config import PredictorConfig
from extproc.events import NodeEvents
from extproc.graph import GraphError
from generated.inference import dataplane_pb2 as v2_pb
from generated.seldon import prediction_pb2 as v1_pb

log = logging.getLogger(__name__)

OBSERVE_METADATA = "x-seldon-observe"
PREDICTOR_METADATA = "x-seldon-predictor"
SKIP_LOGGING_HEADER = "seldon-skip-logging"

_REST = re.compile(
    r"^/seldon/(?P<namespace>[^/]+)/(?P<name>[^/]+)"
    r"(?:(?P<seldon>/api/v[01]\.[01]/predictions)|(?P<v2>/v2/models/(?:[^/]+/(?:versions/[^/]+/)?)?infer))/?$"
)
# gRPC methods logged, with the request and response messages and their JSON forms
_Decoder = Callable[[bytes], object]


def _seldon(data: bytes) -> object:
    return decode_seldon_proto(_parsed(v1_pb.SeldonMessage(), data))


def _infer_request(data: bytes) -> object:
    return decode_infer_request(_parsed(v2_pb.ModelInferRequest(), data))


def _infer_response(data: bytes) -> object:
    return decode_infer_response(_parsed(v2_pb.ModelInferResponse(), data))


_GRPC: dict[str, tuple[str, _Decoder, _Decoder]] = {
    "/seldon.protos.Seldon/Predict": ("seldon", _seldon, _seldon),
    "/inference.GRPCInferenceService/ModelInfer": ("v2", _infer_request, _infer_response),
}

Lookup = Callable[[str, str, str | None], PredictorConfig]
_M = TypeVar("_M", bound=Message)


def is_observe_stream(metadata: Mapping[str, str]) -> bool:
    """The stream comes from the observability-mode filter (its metadata says so)."""
    return metadata.get(OBSERVE_METADATA, "").strip() not in ("", "0")


def _parsed(message: _M, data: bytes) -> _M:
    message.ParseFromString(data)
    return message


# the only headers an exchange reads: decoding the values of the others (a dozen or more per message,
# each a protobuf field read and a str) was a tenth of the observe stream's Python time; the observe
# filter forwards only these (`forward_rules`, xds_controller/translate/extproc.py `OBSERVED_HEADERS`)
OBSERVED_REQUEST_HEADERS = frozenset(
    {SKIP_LOGGING_HEADER, ":path", ":method", "content-type", "namespace", "seldon", "seldon-puid",
     "x-request-id", "grpc-encoding", "content-encoding", "content-length"}
)  # fmt: skip
OBSERVED_RESPONSE_HEADERS = frozenset(
    {":status", "grpc-status", "grpc-encoding", "content-encoding", "content-length"}
)


def _headers(message: ep.HttpHeaders, wanted: frozenset[str]) -> dict[str, str]:
    """The `wanted` headers of a message (Envoy sends header names lowercase)."""
    return {h.key: _value(h) for h in message.headers.headers if h.key in wanted}


def _value(header: base_pb2.HeaderValue) -> str:
    return header.raw_value.decode("utf-8", "replace") if header.raw_value else str(header.value)


def _grpc_message(body: bytes, encoding: str) -> bytes:
    """The first message of a gRPC body (5-byte prefix: compressed flag, big-endian length)."""
    if len(body) < 5:
        raise ValueError(f"a gRPC message needs a 5-byte prefix, got {len(body)} bytes")
    length = int.from_bytes(body[1:5], "big")
    data = body[5 : 5 + length]
    if body[0] == 1:
        if encoding != "gzip":
            raise ValueError(f"gRPC message compressed with {encoding or 'nothing named'}")
        data = gzip.decompress(data)
    return data


@dataclass
class _Exchange:
    predictor: PredictorConfig
    puid: str
    protocol: str
    grpc: tuple[str, _Decoder, _Decoder] | None
    encoding: str  # of the body being read: content-encoding (REST) or grpc-encoding
    length: int | None  # of the body being read, when its headers say (REST content-length)
    body: bytearray = field(default_factory=bytearray)
    status: int = 0
    request_logged: bool = False

    def add(self, chunk: bytes, end_of_stream: bool) -> bool:
        """Take a body chunk; True once the body is whole. STREAMED bodies come in chunks; a gRPC body
        ends with trailers this filter does not ask for, so its one message's length prefix says."""
        self.body += chunk
        if end_of_stream:
            return True
        if self.grpc is not None and len(self.body) >= 5:
            self.length = 5 + int.from_bytes(self.body[1:5], "big")
        return self.length is not None and len(self.body) >= self.length


def _length(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("content-length", "")
    return int(raw) if raw.isdigit() else None


class ExchangeLog:
    def __init__(self, lookup: Lookup, events: NodeEvents) -> None:
        """`lookup(namespace, deployment, predictor)` finds the predictor (raises GraphError if unknown)."""
        self._lookup = lookup
        self._events = events

    async def consume(
        self, requests: AsyncIterator[ep.ProcessingRequest], metadata: Mapping[str, str]
    ) -> None:
        """Read one observability-mode stream to the end of its exchange; answer nothing, raise nothing."""
        exchange: _Exchange | None = None
        try:
            async for request in requests:
                phase = request.WhichOneof("request")
                if phase == "request_headers":
                    exchange = self._start(request.request_headers, metadata)
                    if exchange is None:
                        return
                    if request.request_headers.end_of_stream:
                        self._log_request(exchange)
                elif exchange is None:
                    return  # no request headers first: not a stream we understand
                elif phase == "request_body":
                    chunk = request.request_body
                    if not exchange.request_logged and exchange.add(chunk.body, chunk.end_of_stream):
                        self._log_request(exchange)
                elif phase == "response_headers":
                    self._log_request(exchange)  # a request with trailers ends without end_of_stream
                    headers = _headers(request.response_headers, OBSERVED_RESPONSE_HEADERS)
                    exchange.status = int(headers.get(":status", "0") or 0)
                    failed = headers.get("grpc-status", "0") != "0"  # a trailers-only gRPC error
                    if request.response_headers.end_of_stream or failed or not 200 <= exchange.status < 300:
                        return  # no body (nothing to log) or an error (Seldon logs only outputs)
                    exchange.encoding = headers.get(
                        "grpc-encoding" if exchange.grpc else "content-encoding", ""
                    )
                    exchange.length = _length(headers)
                elif phase == "response_body":
                    chunk = request.response_body
                    if exchange.add(chunk.body, chunk.end_of_stream):
                        self._log_response(exchange)
                        return
            if exchange is not None and exchange.status and exchange.body:  # Envoy ended the stream first
                self._log_response(exchange)
        except Exception:  # a bug or an odd message must not surface in Envoy's stream
            log.exception("payload logging of an observed exchange failed")

    def _start(self, message: ep.HttpHeaders, metadata: Mapping[str, str]) -> _Exchange | None:
        headers = _headers(message, OBSERVED_REQUEST_HEADERS)
        if headers.get(SKIP_LOGGING_HEADER, "").strip():
            return None
        path = headers.get(":path", "")
        grpc = _GRPC.get(path) if headers.get("content-type", "").startswith("application/grpc") else None
        if grpc is not None:
            namespace, name, protocol = (
                headers.get("namespace", "default"),
                headers.get("seldon", ""),
                grpc[0],
            )
        else:
            match = _REST.match(path.split("?", 1)[0])
            if match is None or headers.get(":method") != "POST":
                return None
            namespace, name = match["namespace"], match["name"]
            protocol = "v2" if match["v2"] else "seldon"
        try:
            predictor = self._lookup(namespace, name, metadata.get(PREDICTOR_METADATA))
        except GraphError as error:  # not in the graph config yet (or any more): nothing to log it by
            log.warning("observed request not logged: %s", error.info)
            return None
        if predictor.graph.logger_mode is None:
            return None
        puid = headers.get("seldon-puid") or headers.get("x-request-id") or ""
        encoding = headers.get("grpc-encoding" if grpc else "content-encoding", "")
        return _Exchange(predictor, puid, protocol, grpc, encoding, _length(headers))

    def _log_request(self, exchange: _Exchange) -> None:
        if exchange.request_logged:
            return
        exchange.request_logged = True
        body, exchange.body, exchange.length = bytes(exchange.body), bytearray(), None
        decode = exchange.grpc[1] if exchange.grpc is not None else None
        payload = self._payload(body, exchange.encoding, decode)
        if payload is not None:
            graph = exchange.predictor.graph
            self._events.request_bytes(exchange.predictor, graph, exchange.puid, payload, exchange.protocol)

    def _log_response(self, exchange: _Exchange) -> None:
        decode = exchange.grpc[2] if exchange.grpc is not None else None
        payload = self._payload(bytes(exchange.body), exchange.encoding, decode)
        if payload is not None:
            graph = exchange.predictor.graph
            self._events.response_bytes(exchange.predictor, graph, exchange.puid, payload, exchange.protocol)

    def _payload(self, body: bytes, encoding: str, decode: _Decoder | None) -> bytes | None:
        """The event body: REST bodies as sent (gzip inflated), gRPC messages as JSON; None if unreadable."""
        try:
            if decode is None:
                return gzip.decompress(body) if encoding.strip().lower() == "gzip" else body
            return orjson.dumps(decode(_grpc_message(body, encoding)), option=orjson.OPT_SERIALIZE_NUMPY)
        except (ValueError, EOFError, OSError, DecodeError, TypeError) as error:
            log.warning("observed payload not logged: %s", error)
            return None
