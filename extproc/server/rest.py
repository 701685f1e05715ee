"""The REST edge: graph requests that Envoy routes to extproc as an ordinary HTTP/1.1 upstream.

Why it exists next to the ext_proc servicer: on the bench machine an ext_proc stream served by grpc.aio
costs about 1 ms more per request than one HTTP/1.1 hop (measured with servicers that answer at once:
Envoy -> trivial ext_proc ~1.4-1.6 ms p50, Envoy -> trivial HTTP server ~0.5 ms), which is the whole
latency budget of a graph. The route for a REST graph can therefore send the request itself here, the
way gRPC graph routes already do (`upstream.py`): same frontend and executor, only the edge differs.

What the route must give us (see `xds_controller/translate`): the original path
(`/seldon/<namespace>/<name>/...`; no prefix rewrite, or Envoy's `x-envoy-original-path`) and the
predictor in the `x-seldon-predictor` request header. Answers carry `Seldon-Puid` and `Seldon-Predictor`
like the ext_proc replies. HTTP/1.1 only (Envoy's upstream codec for this cluster), keep-alive,
content-length or chunked bodies (parsed by httptools, the C parser uvicorn uses), requests on one
connection answered in order. A request that does not parse gets a Seldon 400 and the connection is
closed; a body over the predictor's limit (`PredictorConfig.rest_body_bytes`, what the gateway would
buffer) a Seldon 413; a bug in the executor a Seldon 500.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from http import HTTPStatus
from typing import cast

import httptools
import orjson

from extproc.graph import GraphError
from extproc.server import extproc_http
from extproc.server.frontend import Frontend, Reply

log = logging.getLogger(__name__)
PREDICTOR_HEADER = "x-seldon-predictor"
ORIGINAL_PATH_HEADER = "x-envoy-original-path"  # set by Envoy when a route rewrote the path
# After answering a request it stopped reading, how long a connection drains what the client still sends.
LINGER_S = 2.0
MAX_PENDING = 16  # requests read ahead on one connection before reading pauses
_EXTPROC_HTTP_URL = extproc_http.EXTPROC_HTTP_PATH.encode()
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


def _error(status: int, reason: str, info: str) -> Reply:
    return Reply(status, orjson.dumps(GraphError(status, reason, info).seldon_json()))


@functools.lru_cache(maxsize=64)
def _header_lines(headers: tuple[tuple[str, str], ...]) -> tuple[bytes, ...]:
    return tuple(f"{k}: {v}".encode("latin-1") for k, v in headers)


def encode_reply(reply: Reply, puid: str, predictor: str, keep_alive: bool) -> bytes:
    lines = [
        b"HTTP/1.1 %d %s" % (reply.status, _REASONS.get(reply.status, b"Unknown")),
        b"content-length: %d" % len(reply.body),
        *_header_lines(reply.headers),
    ]
    if puid:
        lines.append(b"seldon-puid: " + puid.encode("latin-1", "replace"))
    if predictor:
        lines.append(b"seldon-predictor: " + predictor.encode("latin-1", "replace"))
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + reply.body


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "url")

    def __init__(self) -> None:
        self.method = "GET"
        self.url = bytearray()
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.keep_alive = True


class RestConnection(asyncio.Protocol):
    """One client connection (Envoy's upstream pool keeps a few open): parse, run, answer in order."""

    def __init__(self, frontend: Frontend) -> None:
        self._frontend = frontend
        self._max_body = 0  # of the request being read, set once its headers are in
        self._too_large = False
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._current = _Request()
        self._pending: deque[_Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._linger: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass, same API

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(_error(400, "BAD_REQUEST", "protocol upgrades are not served"))
        except httptools.HttpParserError as error:
            if self._too_large:
                info = f"request body over the {self._max_body} byte limit"
                self._fail(_error(413, "PAYLOAD_TOO_LARGE", info))
            else:
                self._fail(_error(400, "BAD_REQUEST", f"malformed HTTP request: {error}"))
        else:
            if len(self._pending) >= MAX_PENDING and self._transport is not None:
                self._transport.pause_reading()  # a client pipelining faster than graphs answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._pending.clear()
        if self._linger is not None:
            self._linger.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()  # nobody is left to read the answer

    # -- httptools callbacks -------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._current = _Request()

    def on_url(self, url: bytes) -> None:
        self._current.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current.headers[name.decode("latin-1").lower()] = value.decode("utf-8", "replace")

    def on_headers_complete(self) -> None:
        request = self._current
        predictor = request.headers.get(PREDICTOR_HEADER) or None
        self._max_body = self._frontend.rest_body_bytes(_path(request), predictor)
        if request.url == _EXTPROC_HTTP_URL:  # the body in base64 inside JSON; Envoy checked its size
            self._max_body = 2 * self._max_body + 2**16

    def on_body(self, body: bytes) -> None:
        self._current.body += body
        if len(self._current.body) > self._max_body:
            self._too_large = True
            raise OverflowError("request body too large")  # httptools stops parsing

    def on_message_complete(self) -> None:
        request = self._current
        request.method = self._parser.get_method().decode("latin-1")
        request.keep_alive = bool(self._parser.should_keep_alive())
        self._pending.append(request)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._serve())

    # -- answering -----------------------------------------------------------------------------------
    async def _serve(self) -> None:
        while self._pending and not self._closing:
            request = self._pending.popleft()
            if request.url == _EXTPROC_HTTP_URL and request.method == "POST":  # Envoy's ext_proc filter
                processed = await extproc_http.process(self._frontend, bytes(request.body))
                self._write(encode_reply(Reply(200, processed), "", "", request.keep_alive))
            else:
                predictor = request.headers.get(PREDICTOR_HEADER, "")
                puid = request.headers.get("seldon-puid") or request.headers.get("x-request-id") or ""
                reply = await self._answer(request, predictor or None)
                self._write(encode_reply(reply, puid, predictor, request.keep_alive))
            if not request.keep_alive:
                self._close()
            elif len(self._pending) < MAX_PENDING and self._transport is not None:
                self._transport.resume_reading()

    async def _answer(self, request: _Request, predictor: str | None) -> Reply:
        path = _path(request)
        try:
            return await self._frontend.rest(
                request.method, path, bytes(request.body), request.headers, predictor
            )
        except Exception:  # a bug must not leave the connection without an answer
            log.exception("graph request %s failed", path)
            return _error(500, "INTERNAL_ERROR", "internal error in the graph executor")

    def _fail(self, reply: Reply) -> None:
        """Answer a request we stopped reading (bad or too large) and close without losing the answer.

        Closing a socket with unread bytes in it sends a reset, and the client may drop our answer with
        it (Envoy turned a 413 into a 503 so, for a 6 MB body). So: answer, half-close, and read and
        discard what the client still sends until it closes or `LINGER_S` passes."""
        self._write(encode_reply(reply, "", "", keep_alive=False))
        self._closing = True  # data_received now discards
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
            self._linger = asyncio.get_running_loop().call_later(LINGER_S, self._close)
        else:
            self._close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()


def _path(request: _Request) -> str:
    path = request.url.decode("latin-1")
    if path.startswith("/seldon/"):
        return path
    return request.headers.get(ORIGINAL_PATH_HEADER, path)


async def create_rest_server(frontend: Frontend, host: str, port: int) -> tuple[asyncio.Server, int]:
    """Listen for graph requests over HTTP/1.1; returns the server and the port bound (for port 0)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: RestConnection(frontend), host, port, reuse_address=True)
    bound = int(server.sockets[0].getsockname()[1])
    return server, bound
