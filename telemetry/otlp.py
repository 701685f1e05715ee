"""OTLP span export with a cheaper encoder: finished spans are written straight to the protobuf wire
format of an `ExportTraceServiceRequest` and parsed once in C, instead of the SDK encoder's one Python
protobuf object per span, attribute and value (about 78 us per span here, this about a tenth of it).

`encode_request(spans)` gives the same message as `opentelemetry.exporter.otlp.proto.common.
trace_encoder.encode_spans` (a test compares them); `FastOTLPSpanExporter` is the stock OTLP/gRPC
exporter (its channel, headers, timeouts and retry policy) with only the encoding replaced.

`SpanBatcher` is what `Tracing` exports through when it builds the exporter itself: the SDK's
`BatchSpanProcessor` with its defaults (512 spans per export, at least every 5 s, 2,048 waiting at most),
but a light span joins its queue as it is (no `ReadableSpan` copy) and is encoded by the export thread.
Spans of one shape (name, kind, attributes, status: a deployment's spans repeat a few) are encoded once;
each span then costs its ids and times.
"""

from __future__ import annotations

import logging
import random
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import grpc
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status

from telemetry.spans import LightSpan

_logger = logging.getLogger(__name__)
_I64 = struct.Struct("<Q").pack
_I32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
# SpanFlags: the parent's is_remote is known (0x100), and is set when the parent was remote (0x200)
_FLAGS_LOCAL = b"\x85\x01" + _I32(0x100)
_FLAGS_REMOTE = b"\x85\x01" + _I32(0x300)
_LINK_FLAGS_LOCAL = b"\x35" + _I32(0x100)
_LINK_FLAGS_REMOTE = b"\x35" + _I32(0x300)
_EMPTY_STATUS = b"\x7a\x00"
_KINDS = {kind: b"\x30" + bytes((kind.value + 1,)) for kind in SpanKind}  # OTLP's enum is one higher
_CACHE_LIMIT = 4096
# encoded KeyValue of a (key, str value) pair: spans of one deployment repeat the same few
_kv_cache: dict[tuple[str, str], bytes] = {}
# the same with its field tag and length, as an attribute list holds it
_tagged_cache: dict[tuple[bytes, str, str], bytes] = {}
# a span's bytes around its times, by shape (name, kind, attributes, status, parent remote): see _span
_shape_cache: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
# the stock exporter's retry policy: these codes are retried with exponential backoff within the timeout
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_MAX_TRIES = 6
_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class FinishedSpan(Protocol):
    """What the encoder reads of an ended span: a `ReadableSpan` or a `telemetry.spans.LightSpan`."""

    def get_span_context(self) -> SpanContext | None: ...

    @property
    def name(self) -> str: ...
    @property
    def parent(self) -> SpanContext | None: ...
    @property
    def kind(self) -> SpanKind: ...
    @property
    def attributes(self) -> Mapping[str, Any] | None: ...
    @property
    def events(self) -> Sequence[Event]: ...
    @property
    def links(self) -> Sequence[Link]: ...
    @property
    def status(self) -> Status: ...
    @property
    def start_time(self) -> int | None: ...
    @property
    def end_time(self) -> int | None: ...
    @property
    def dropped_attributes(self) -> int: ...
    @property
    def dropped_events(self) -> int: ...
    @property
    def dropped_links(self) -> int: ...
    @property
    def resource(self) -> Resource: ...
    @property
    def instrumentation_scope(self) -> InstrumentationScope | None: ...


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field: tag, length, bytes."""
    size = len(data)
    return tag + (bytes((size,)) if size < 0x80 else _varint(size)) + data


def _value(value: Any) -> bytes:
    """An AnyValue's body, as the SDK encoder maps Python types (None: an empty AnyValue)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _value(item)) for item in value))
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _key_value(key: str, value: Any) -> bytes:
    if type(value) is str:
        cached = _kv_cache.get((key, value))
        if cached is None:
            if len(_kv_cache) >= _CACHE_LIMIT:
                _kv_cache.clear()
            cached = _kv_cache[(key, value)] = _field(b"\x0a", key.encode()) + _field(b"\x12", _value(value))
        return cached
    return _field(b"\x0a", key.encode()) + _field(b"\x12", _value(value))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Repeated KeyValue under `tag`; a value of an unknown type is logged and left out (as the SDK)."""
    if not attributes:
        return b""
    parts = []
    for key, value in attributes.items():
        if type(value) is str:
            cached = _tagged_cache.get((tag, key, value))
            if cached is None:
                if len(_tagged_cache) >= _CACHE_LIMIT:
                    _tagged_cache.clear()
                cached = _tagged_cache[(tag, key, value)] = _field(tag, _key_value(key, value))
            parts.append(cached)
            continue
        try:
            parts.append(_field(tag, _key_value(key, value)))
        except TypeError as error:
            _logger.exception("Failed to encode key %s: %s", key, error)
    return b"".join(parts)


def _count(tag: bytes, n: int) -> bytes:
    return tag + _varint(n) if n else b""


def _span(span: FinishedSpan) -> bytes:
    if type(span) is LightSpan:  # its fields as they are, without a property call each
        context: SpanContext | None = span._context
        start: int | None = span._start
        parent, end = span._parent, span._end
        plain = not span._events and not span._links
        attributes: Mapping[str, Any] = span._attributes
        name, kind, status = span._name, span._kind, span._status
        dropped = 0
    else:
        context, parent, start, end = span.get_span_context(), span.parent, span.start_time, span.end_time
        plain = not span.events and not span.links
        attributes = span.attributes or {}
        name, kind, status = span.name, span.kind, span.status
        dropped = span.dropped_attributes
    assert context is not None
    head = (
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big") + b"\x12\x08" + context.span_id.to_bytes(8, "big")
    )
    if context.trace_state:
        head += _field(b"\x1a", ",".join(f"{k}={v}" for k, v in context.trace_state.items()).encode())
    if parent:
        head += b"\x22\x08" + parent.span_id.to_bytes(8, "big")
    if not start or not end or not plain:
        return head + _rest(span, parent)
    # the fields between the ids and the times (name, kind) and after them (attributes, status, flags) are
    # those of every span of the same shape; enum members by identity (their __hash__ is Python code)
    values = tuple(attributes.values())
    try:
        key = (
            name, id(kind), tuple(attributes), values, tuple(map(type, values)),  # True == 1, 1.0 == 1
            id(status.status_code), status.description, parent is not None and parent.is_remote, dropped,
        )  # fmt: skip
        around = _shape_cache.get(key)
    except TypeError:  # an unhashable attribute value (a list)
        return head + _rest(span, parent)
    times = b"\x39" + _I64(start) + b"\x41" + _I64(end)
    if around is None:
        if len(_shape_cache) >= _CACHE_LIMIT:
            _shape_cache.clear()
        encoded = _rest(span, parent)
        before = (_field(b"\x2a", name.encode()) if name else b"") + _KINDS[kind]
        assert encoded.startswith(before + times)
        around = _shape_cache[key] = (before, encoded[len(before) + len(times) :])
    return head + around[0] + times + around[1]


def _rest(span: FinishedSpan, parent: SpanContext | None) -> bytes:
    """A span's fields after its ids, trace state and parent."""
    parts: list[bytes] = []
    append = parts.append
    if span.name:
        append(_field(b"\x2a", span.name.encode()))
    append(_KINDS[span.kind])
    if span.start_time:
        append(b"\x39" + _I64(span.start_time))
    if span.end_time:
        append(b"\x41" + _I64(span.end_time))
    attributes = span.attributes
    if attributes:
        append(_attributes(b"\x4a", attributes))
    if span.dropped_attributes:
        append(b"\x50" + _varint(span.dropped_attributes))
    for event in span.events:
        body = b"\x09" + _I64(event.timestamp) if event.timestamp else b""
        body += _field(b"\x12", event.name.encode()) if event.name else b""
        body += _attributes(b"\x1a", event.attributes) + _count(b"\x20", event.dropped_attributes)
        append(_field(b"\x5a", body))
    if span.dropped_events:
        append(b"\x60" + _varint(span.dropped_events))
    for link in span.links:
        body = b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big")
        body += b"\x12\x08" + link.context.span_id.to_bytes(8, "big")
        body += _attributes(b"\x22", link.attributes) + _count(b"\x28", link.dropped_attributes)
        body += _LINK_FLAGS_REMOTE if link.context.is_remote else _LINK_FLAGS_LOCAL
        append(_field(b"\x6a", body))
    if span.dropped_links:
        append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    if status.status_code.value or status.description:
        body = _field(b"\x12", status.description.encode()) if status.description else b""
        body += _count(b"\x18", status.status_code.value)
        append(_field(b"\x7a", body))
    else:
        append(_EMPTY_STATUS)
    append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
    return b"".join(parts)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    body = _field(b"\x0a", scope.name.encode()) if scope.name else b""
    body += _field(b"\x12", scope.version.encode()) if scope.version else b""
    return body + _attributes(b"\x1a", scope.attributes)


def _resource(resource: Resource) -> bytes:
    return _attributes(b"\x0a", resource.attributes)


def encode_request(spans: Sequence[FinishedSpan]) -> bytes:
    """The wire bytes of an `ExportTraceServiceRequest` holding `spans`, grouped by resource, then by
    instrumentation scope, in first-seen order (as the SDK encoder groups them)."""
    # grouped by identity: a process has one resource and a tracer or two, and Resource.__hash__ renders
    # its attributes as JSON on every call
    groups: dict[int, tuple[Resource, dict[int, tuple[InstrumentationScope | None, list[bytes]]]]] = {}
    last: tuple[Resource | None, InstrumentationScope | None] = (None, None)
    encoded: list[bytes] = []
    for span in spans:
        scope: InstrumentationScope | None
        if type(span) is LightSpan:
            resource, scope = span._origin.resource, span._origin.scope
        else:
            resource, scope = span.resource, span.instrumentation_scope or None
        if resource is not last[0] or scope is not last[1]:  # spans in a row mostly share both
            last = (resource, scope)
            scopes = groups.get(id(resource))
            if scopes is None:
                scopes = groups[id(resource)] = (resource, {})
            group = scopes[1].get(id(scope))
            if group is None:
                group = scopes[1][id(scope)] = (scope, [])
            encoded = group[1]
        encoded.append(_field(b"\x12", _span(span)))
    out = []
    for resource, by_scope in groups.values():
        body = [_field(b"\x0a", _resource(resource))]
        for scope, encoded_spans in by_scope.values():
            scope_spans = _field(b"\x0a", _scope(scope)) + b"".join(encoded_spans)
            if scope is not None and scope.schema_url:
                scope_spans += _field(b"\x1a", scope.schema_url.encode())
            body.append(_field(b"\x12", scope_spans))
        if resource.schema_url:
            body.append(_field(b"\x1a", resource.schema_url.encode()))
        out.append(_field(b"\x0a", b"".join(body)))
    return b"".join(out)


class FastOTLPSpanExporter(OTLPSpanExporter):
    """`OTLPSpanExporter` encoding with `encode_request`; `send` exports an encoded request."""

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        return ExportTraceServiceRequest.FromString(encode_request(data))

    def send(self, request: bytes, stop: threading.Event) -> SpanExportResult:
        """`export` of `encode_request`'s bytes, retried as the stock exporter retries (transient codes,
        backoff 1, 2, 4, ... s with 20 % jitter, within the exporter's timeout, a new channel after the
        first UNAVAILABLE); `stop` cuts a backoff short. The bytes go on the wire as they are (no message
        parsed from them for the stock stub to serialize again)."""
        deadline = time.time() + self._timeout
        for attempt in range(_MAX_TRIES):
            channel: Any = self._channel  # the stock exporter's (set by _initialize_channel_and_stub)
            export = channel.unary_unary(
                _EXPORT_METHOD, response_deserializer=ExportTraceServiceResponse.FromString
            )
            try:
                export(request, metadata=self._headers, timeout=deadline - time.time())
                return SpanExportResult.SUCCESS
            except grpc.RpcError as error:
                code = error.code()
                backoff = 2**attempt * random.uniform(0.8, 1.2)
                if code not in _RETRYABLE or attempt + 1 == _MAX_TRIES or backoff > deadline - time.time():
                    _logger.error("Failed to export spans to %s: %s", self._endpoint, code)
                    return SpanExportResult.FAILURE
                if code is grpc.StatusCode.UNAVAILABLE and attempt == 0:
                    reconnect: Any = self._initialize_channel_and_stub  # untyped in the SDK
                    reconnect()
                if stop.wait(backoff):
                    _logger.error(
                        "Failed to export spans to %s: %s (shutting down: not retried)", self._endpoint, code
                    )
                    return SpanExportResult.FAILURE
        return SpanExportResult.FAILURE


class SpanBatcher(SpanProcessor):
    """Spans wait in a queue and an export thread sends them in batches of `max_batch`, as soon as one is
    full or every `delay_s`; with `max_queue` spans waiting, new ones are dropped and counted (the SDK's
    policy). Light spans join by `add`, SDK spans (the sampler's) by `on_end`; `shutdown` sends the rest."""

    def __init__(
        self,
        exporter: FastOTLPSpanExporter,
        max_batch: int = 512,
        delay_s: float = 5.0,
        max_queue: int = 2048,
    ) -> None:
        self._exporter = exporter
        self._max_batch = max_batch
        self._delay_s = delay_s
        self._max_queue = max_queue
        self._queue: deque[FinishedSpan] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sending = threading.Lock()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="seldon-mesh-otlp", daemon=True)
        self._thread.start()

    def add(self, span: FinishedSpan) -> None:
        queue = self._queue
        size = len(queue)
        if size >= self._max_queue:
            self.dropped += 1
            return
        queue.append(span)
        if size + 1 >= self._max_batch and not self._wake.is_set():
            self._wake.set()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is not None and context.trace_flags.sampled:
            self.add(span)

    def _run(self) -> None:
        while not self._stop.is_set():
            full = self._wake.wait(self._delay_s)
            self._wake.clear()  # before sending: a batch filled meanwhile wakes the next wait at once
            # woken by a full batch: send full batches only (what arrives while they go waits for the
            # next one), else what has waited out the delay
            self._send(self._max_batch if full else 1)
        self._send(1)

    def _send(self, least: int) -> None:
        """Send batches while at least `least` spans wait."""
        with self._sending:
            queue = self._queue
            while len(queue) >= least:
                batch = [queue.popleft() for _ in range(min(self._max_batch, len(queue)))]
                try:
                    self._exporter.send(encode_request(batch), self._stop)
                except Exception:
                    _logger.exception("Exception while exporting spans")
            if self.dropped:
                _logger.warning("%d spans dropped: the export queue was full", self.dropped)
                self.dropped = 0

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._send(1)
        return True

    def shutdown(self) -> None:
        """Send what waits (each batch tried once: no backoff at shutdown), then close the exporter; a
        second call (the provider's at exit) does nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._exporter.shutdown()
