"""OpenTelemetry for one mesh process: a tracer provider exporting OTLP/gRPC, propagators that accept W3C
`traceparent`, Jaeger `uber-trace-id` and B3 (single `b3` or multi `X-B3-*`), and span helpers that put the
deployment, predictor and node on every span.

No globals: `Tracing` holds its provider and the servers keep the object they were given. Each process
package subclasses `TracingSettings` (its `service.name`) and `Tracing` (its instrumentation name), and its
entrypoint builds the settings with `settings_from_env` (reading `OTEL_EXPORTER_OTLP_ENDPOINT`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from contextvars import Token
from random import getrandbits
from types import TracebackType
from typing import TypeVar

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.b3 import B3MultiFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState
from pydantic import BaseModel, ConfigDict, Field

from telemetry.otlp import FastOTLPSpanExporter, SpanBatcher
from telemetry.spans import LightSpan, SpanOrigin

W3C = TraceContextTextMapPropagator()
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
SAMPLING_RATIO_ENV = "SELDON_MESH_TRACE_SAMPLING_RATIO"
DEPLOYMENT = "seldon.deployment"
PREDICTOR = "seldon.predictor"
NODE = "seldon.node"
# the keys that make the Jaeger and B3 propagators find a context (`uber-trace-id`, `b3`, `X-B3-TraceId`)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_OTHER_FORMATS = frozenset({"uber-trace-id", "b3", "x-b3-traceid"})
# every header a propagator reads (Jaeger's baggage also comes as `uberctx-<key>`)
_CARRIER_KEYS = frozenset(
    {
        b"traceparent",
        b"tracestate",
        b"uber-trace-id",
        b"b3",
        b"x-b3-traceid",
        b"x-b3-spanid",
        b"x-b3-parentspanid",
        b"x-b3-sampled",
        b"x-b3-flags",
    }
)
_JAEGER_BAGGAGE = b"uberctx-"
# the common `traceparent` (version 00, as Envoy and the mesh write it); the rest goes to the SDK's parser
_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_NO_TRACE = "0" * 32
_NO_SPAN = "0" * 16
# the key under which a Context holds its span (the API keeps it private): the one key `set_span_in_context`
# writes into an empty Context
(_SPAN_KEY,) = trace.set_span_in_context(trace.INVALID_SPAN, Context())
# enum members read as class attributes cost a descriptor call each (Python 3.11)
_SERVER, _CLIENT = SpanKind.SERVER, SpanKind.CLIENT


def _valid_context(
    trace_id: int, span_id: int, remote: bool, flags: TraceFlags, state: TraceState
) -> SpanContext:
    """`SpanContext(trace_id, span_id, remote, flags, state)` for ids known to be valid: the same tuple,
    without the constructor's defaults and range checks (a Python call)."""
    return tuple.__new__(SpanContext, (trace_id, span_id, remote, flags, state, True))


def _current_span(context: Context | None = None) -> Span:
    """`trace.get_current_span(context)`, a LightSpan found without the `isinstance` check of an ABC."""
    span = (context_api.get_current() if context is None else context).get(_SPAN_KEY)
    return span if type(span) is LightSpan else trace.get_current_span(context)


def _current_with(span: Span) -> Token[Context]:
    """`context_api.attach(trace.set_span_in_context(span))`: `span` current, the rest of the context kept."""
    return context_api.attach(Context({**context_api.get_current(), _SPAN_KEY: span}))


class TracingSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    otlp_endpoint: str | None = Field(
        None, description="OTLP/gRPC collector, e.g. http://jaeger:4317 (Jaeger takes OTLP); None = off."
    )
    sampling_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of traces started here that are kept; a sampled parent is always honoured. "
        "1.0 because a mesh that routes little traffic locally wants every trace; lower it at scale.",
    )
    service_name: str = Field("seldon-mesh", description="`service.name` resource attribute.")
    batch: bool = Field(
        True, description="Export in the background in batches; False exports each span as it ends (tests)."
    )


SettingsT = TypeVar("SettingsT", bound=TracingSettings)


def settings_from_env(
    environ: Mapping[str, str], settings_type: type[SettingsT], **overrides: object
) -> SettingsT:
    """For entrypoints only."""
    values: dict[str, object] = {"otlp_endpoint": environ.get(OTLP_ENDPOINT_ENV) or None}
    if environ.get(SAMPLING_RATIO_ENV):
        values["sampling_ratio"] = float(environ[SAMPLING_RATIO_ENV])
    values.update(overrides)
    return settings_type.model_validate(values)


def carrier(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The trace headers among lowercase raw (ASGI) headers: what `Tracing.extract` reads, without decoding
    every header of the request."""
    headers = dict(raw_headers)  # the last of repeated names, as the comprehension below keeps
    if _JAEGER_BAGGAGE in b"\n".join(headers):  # maybe baggage: each name looked at
        return {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in headers.items()
            if key in _CARRIER_KEYS or key.startswith(_JAEGER_BAGGAGE)
        }
    return {
        key.decode("latin-1"): headers[key].decode("latin-1") for key in _CARRIER_KEYS.intersection(headers)
    }


def _plain_traceparent(carrier: Mapping[str, str]) -> SpanContext | None:
    """The remote span a lowercase carrier names by a plain version-00 `traceparent` with valid ids and no or
    an empty `tracestate` (what Envoy sends); None for anything else, which the SDK's parser reads."""
    header = carrier.get("traceparent")
    if header is None or carrier.get("tracestate"):  # Envoy sends an empty one: the SDK's empty TraceState
        return None
    match = _TRACEPARENT_00.fullmatch(header)
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == _NO_TRACE or span_id == _NO_SPAN:
        return None
    sampled = _SAMPLED if flags == "01" else TraceFlags(int(flags, 16))
    return _valid_context(int(trace_id, 16), int(span_id, 16), True, sampled, DEFAULT_TRACE_STATE)


def extract_w3c(carrier: Mapping[str, str]) -> Context:
    """`W3C.extract` of a lowercase carrier; a plain version-00 `traceparent` (`_plain_traceparent`) is
    parsed here at about half the SDK's cost, with the same result."""
    if "traceparent" not in carrier:
        return Context()
    remote = _plain_traceparent(carrier)
    if remote is None:
        return W3C.extract(carrier)
    return trace.set_span_in_context(NonRecordingSpan(remote), Context())


def inject_w3c(headers: MutableMapping[str, str], context: Context | None = None) -> None:
    """`W3C.inject`: the `traceparent` (and a non-empty `tracestate`) of the current span, or of `context`'s;
    nothing for the invalid span. Formatted here, at about a quarter of the SDK's cost."""
    span = _current_span(context)
    if type(span) is LightSpan:  # sampled, with valid ids: no comparison with the invalid span's
        trace_id, span_id, _, _, trace_state, _ = span._context
        headers["traceparent"] = f"00-{trace_id:032x}-{span_id:016x}-01"
        if trace_state is not DEFAULT_TRACE_STATE and trace_state:
            headers["tracestate"] = trace_state.to_header()
        return
    span_context = span.get_span_context()
    if span_context == trace.INVALID_SPAN_CONTEXT:
        return
    headers["traceparent"] = (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"
    )
    if span_context.trace_state:
        headers["tracestate"] = span_context.trace_state.to_header()


def attributes(deployment: str, predictor: str, node: str | None = None) -> dict[str, str]:
    out = {DEPLOYMENT: deployment, PREDICTOR: predictor}
    if node is not None:
        out[NODE] = node
    return out


class Tracing:
    instrumentation = "seldon-mesh"

    def __init__(self, settings: TracingSettings, exporter: SpanExporter | None = None) -> None:
        """`exporter` replaces the OTLP exporter (tests); with neither, spans are made but not exported."""
        self.settings = settings
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sampling_ratio)),
        )
        processor: SpanProcessor | None = None
        batch: SpanBatcher | None = None
        if exporter is None and settings.otlp_endpoint:
            insecure = not settings.otlp_endpoint.startswith("https://")
            exporter = FastOTLPSpanExporter(endpoint=settings.otlp_endpoint, insecure=insecure)
            if settings.batch:  # light spans go to the batch as they are, SDK spans through on_end
                processor = batch = SpanBatcher(exporter)
        if exporter is not None:
            if processor is None:
                processor = BatchSpanProcessor(exporter) if settings.batch else SimpleSpanProcessor(exporter)
            self.provider.add_span_processor(processor)
        self.tracer: Tracer = self.provider.get_tracer(self.instrumentation)
        self._origin = SpanOrigin(
            self.provider.resource, InstrumentationScope(self.instrumentation), processor, batch
        )
        self._new_ids = self.provider.id_generator
        # W3C last: when Envoy's traceparent and a client's B3/Jaeger headers both arrive, the mesh's wins
        self._extractor = CompositePropagator(
            [JaegerPropagator(), B3MultiFormat(), TraceContextTextMapPropagator()]
        )

    def extract(self, headers: Mapping[str, str]) -> Context:
        names = "".join(headers)
        if names == names.lower():  # gRPC metadata and HTTP/2 headers are: no lowercase copy
            return self.extract_lowercase(headers)
        return self.extract_lowercase({k.lower(): v for k, v in headers.items()})

    def extract_lowercase(self, headers: Mapping[str, str]) -> Context:
        """`extract` of headers whose names are lowercase already (ASGI headers, gRPC metadata)."""
        if _OTHER_FORMATS.isdisjoint(headers):
            # no Jaeger or B3 header: the composite would come to what W3C alone gives, at 3x the cost
            return extract_w3c(headers)
        return self._extractor.extract(headers)

    def extract_first(self, *carriers: Mapping[str, str]) -> Context:
        """The context of the first carrier that holds a valid one (for ext_proc: the stream's gRPC
        metadata, where Envoy puts its span, then the forwarded request headers)."""
        context = Context()
        for carrier in carriers:
            context = self.extract(carrier)
            if trace.get_current_span(context).get_span_context().is_valid:
                return context
        return context

    def inject(self, headers: MutableMapping[str, str], context: Context | None = None) -> None:
        """Write `traceparent` (and `tracestate`) of the current span, or of `context`."""
        inject_w3c(headers, context)

    def span(
        self,
        name: str,
        parent: Context | None,
        attrs: Mapping[str, str],
        *,
        client: bool = False,
    ) -> SpanBlock:
        """A span made current for the block: a server span under `parent`, or a client span under the
        current one (`client=True`, parent None) for a call to a node."""
        return SpanBlock(self, name, parent, attrs, client)

    def open(
        self, name: str, parent: Context | None, attrs: Mapping[str, str], *, client: bool = False
    ) -> tuple[Span, Token[Context]]:
        """`span` without the context manager, for a caller that has its own block (one generator and
        `use_span` less per request): the span, current until `close(span, token)`."""
        kind = _CLIENT if client else _SERVER
        span: Span
        above_span = _current_span(parent)
        if type(above_span) is LightSpan:  # ours: sampled, with valid ids
            span = self._light_child(name, above_span._context, kind, attrs)
            return span, _current_with(span)
        above = above_span.get_span_context()
        _, _, _, flags, _, valid = above  # a SpanContext is a tuple (one property call less per field)
        if valid and flags & TraceFlags.SAMPLED:  # ParentBased keeps a sampled parent's trace
            span = self._light_child(name, above, kind, attrs)
        elif not valid and self.settings.sampling_ratio >= 1.0:  # a new trace, always kept
            ids = self._new_ids
            context = SpanContext(ids.generate_trace_id(), ids.generate_span_id(), False, _SAMPLED)
            span = LightSpan(self._origin, name, context, None, kind, attrs)
        else:  # the sampler decides (an unsampled parent or a ratio below 1)
            span = self.tracer.start_span(name, parent, kind, attrs)
        return span, _current_with(span)

    def open_under(
        self, name: str, headers: Mapping[str, str], attrs: Mapping[str, str]
    ) -> tuple[Span, Token[Context]]:
        """`open(name, self.extract_lowercase(headers), attrs)`, a server span under the caller's context in
        lowercase `headers`; the common carrier (a sampled plain `traceparent` and no Jaeger or B3 header:
        what Envoy sends) becomes the span's parent directly, without a `Context`."""
        above = _plain_traceparent(headers) if _OTHER_FORMATS.isdisjoint(headers) else None
        if above is not None and above[3] & TraceFlags.SAMPLED:  # its trace flags
            span = self._light_child(name, above, _SERVER, attrs)
            return span, _current_with(span)
        return self.open(name, self.extract_lowercase(headers), attrs)

    def _light_child(
        self, name: str, above: SpanContext, kind: SpanKind, attrs: Mapping[str, str]
    ) -> LightSpan:
        """A sampled span under `above` (ParentBased keeps a sampled parent's trace: no sampler to ask)."""
        trace_id, _, _, _, trace_state, _ = above
        # the provider's RandomIdGenerator draws a span id so, without a method call (0 is drawn again)
        span_id = getrandbits(64) or self._new_ids.generate_span_id()
        context = _valid_context(trace_id, span_id, False, _SAMPLED, trace_state)
        return LightSpan(self._origin, name, context, above, kind, attrs)

    def close(self, span: Span, token: Token[Context], error: BaseException | None = None) -> None:
        """As `use_span` ends a block: the context before `open` back, an `Exception` recorded with an
        error status, the span ended."""
        context_api.detach(token)
        if isinstance(error, Exception) and span.is_recording():
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def shutdown(self) -> None:
        self.provider.shutdown()


class SpanBlock:
    """`Tracing.span`'s context manager (a class: no generator per span): `open` on entry, `close` on exit,
    with the exception that ended the block."""

    __slots__ = ("_attrs", "_client", "_name", "_opened", "_parent", "_tracing")

    def __init__(
        self, tracing: Tracing, name: str, parent: Context | None, attrs: Mapping[str, str], client: bool
    ) -> None:
        self._tracing = tracing
        self._name = name
        self._parent = parent
        self._attrs = attrs
        self._client = client
        self._opened: tuple[Span, Token[Context]] | None = None

    def __enter__(self) -> Span:
        self._opened = self._tracing.open(self._name, self._parent, self._attrs, client=self._client)
        return self._opened[0]

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self._opened is not None
        span, token = self._opened
        self._tracing.close(span, token, error)
