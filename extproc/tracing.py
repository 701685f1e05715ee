"""OpenTelemetry for the ext_proc process: a tracer provider exporting OTLP/gRPC, propagators that accept
W3C `traceparent`, Jaeger `uber-trace-id` and B3 (single `b3` or multi `X-B3-*`), and span helpers that
put the deployment, predictor and node on every span.

No globals: `Tracing` holds its provider, and the servicer keeps the object it was given. The entrypoint
builds `TracingSettings` (reading `OTEL_EXPORTER_OTLP_ENDPOINT` via `settings_from_env`).

Hooks for the ext_proc servicer (exact calls):
- `parent = tracing.extract_first(dict(context.invocation_metadata()), request_headers)` per ext_proc
  stream: Envoy's ext_proc client span from the gRPC metadata, else the client's from the headers;
- `with tracing.span("extproc " + path, parent, attributes(deployment, predictor)) as span:` per request;
- node calls: wrap the executor's node client in `TracedNodeClient` (a client span per call, with the
  predictor from `extproc.metrics.predictor_scope`), and have the node client call
  `inject_current(headers)` on each outgoing request's headers or gRPC metadata;
- `tracing.shutdown()` on exit (flushes what is batched).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.b3 import B3MultiFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ConfigDict, Field

from extproc.codecs import Payload
from extproc.config import NodeConfig, Timeouts
from extproc.graph.executor import Json, NodeClient
from extproc.metrics import CURRENT_PREDICTOR

_W3C = TraceContextTextMapPropagator()
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
SAMPLING_RATIO_ENV = "SELDON_MESH_TRACE_SAMPLING_RATIO"
DEPLOYMENT = "seldon.deployment"
PREDICTOR = "seldon.predictor"
NODE = "seldon.node"


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
    service_name: str = Field("seldon-mesh-extproc", description="`service.name` resource attribute.")
    batch: bool = Field(
        True, description="Export in the background in batches; False exports each span as it ends (tests)."
    )


def settings_from_env(environ: Mapping[str, str], **overrides: object) -> TracingSettings:
    """For the entrypoint only."""
    values: dict[str, object] = {"otlp_endpoint": environ.get(OTLP_ENDPOINT_ENV) or None}
    if environ.get(SAMPLING_RATIO_ENV):
        values["sampling_ratio"] = float(environ[SAMPLING_RATIO_ENV])
    values.update(overrides)
    return TracingSettings.model_validate(values)


def attributes(deployment: str, predictor: str, node: str | None = None) -> dict[str, str]:
    out = {DEPLOYMENT: deployment, PREDICTOR: predictor}
    if node is not None:
        out[NODE] = node
    return out


class Tracing:
    def __init__(self, settings: TracingSettings, exporter: SpanExporter | None = None) -> None:
        """`exporter` replaces the OTLP exporter (tests); with neither, spans are made but not exported."""
        self.settings = settings
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sampling_ratio)),
        )
        if exporter is None and settings.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(
                endpoint=settings.otlp_endpoint, insecure=_insecure(settings.otlp_endpoint)
            )
        if exporter is not None:
            processor = BatchSpanProcessor(exporter) if settings.batch else SimpleSpanProcessor(exporter)
            self.provider.add_span_processor(processor)
        self.tracer: Tracer = self.provider.get_tracer("seldon-mesh.extproc")
        # W3C last: when Envoy's traceparent and a client's B3/Jaeger headers both arrive, the mesh's wins
        self._extractor = CompositePropagator(
            [JaegerPropagator(), B3MultiFormat(), TraceContextTextMapPropagator()]
        )
        self._injector = _W3C

    def extract(self, headers: Mapping[str, str]) -> Context:
        return self._extractor.extract({k.lower(): v for k, v in headers.items()})

    def extract_first(self, *carriers: Mapping[str, str]) -> Context:
        """The context of the first carrier that holds a valid one. For ext_proc pass the stream's gRPC
        invocation metadata first (Envoy puts its span for the ext_proc call there), then the forwarded
        HTTP request headers (which carry only the client's context, if any)."""
        context = Context()
        for carrier in carriers:
            context = self.extract(carrier)
            if trace.get_current_span(context).get_span_context().is_valid:
                return context
        return context

    def inject(self, headers: MutableMapping[str, str], context: Context | None = None) -> None:
        """Write `traceparent` (and `tracestate`) of the current span, or of `context`."""
        self._injector.inject(headers, context=context)

    @contextmanager
    def span(
        self,
        name: str,
        parent: Context | None,
        attrs: Mapping[str, str],
        *,
        client: bool = False,
    ) -> Iterator[Span]:
        """A span made current for the block: a server span under `parent`, or a client span under the
        current one (`client=True`, parent None) for a call to a node."""
        kind = SpanKind.CLIENT if client else SpanKind.SERVER
        with self.tracer.start_as_current_span(
            name, context=parent, kind=kind, attributes=dict(attrs)
        ) as span:
            yield span

    def shutdown(self) -> None:
        self.provider.shutdown()


def inject_current(headers: MutableMapping[str, str]) -> None:
    """Write the current span's `traceparent` into an outgoing request: for the node client, which need
    not hold a `Tracing` (the current span travels in the asyncio context)."""
    _W3C.inject(headers)


class TracedNodeClient:
    """The executor's `NodeClient` with a client span around every node call, named
    `node <name> <method>` and carrying deployment, predictor and node."""

    def __init__(self, inner: NodeClient, tracing: Tracing) -> None:
        self._inner = inner
        self._tracing = tracing

    async def call(
        self, node: NodeConfig, method: str, payloads: Sequence[Payload], meta: Json, limits: Timeouts
    ) -> tuple[Payload, Json]:
        with self._span(node, method):
            return await self._inner.call(node, method, payloads, meta, limits)

    async def feedback(self, node: NodeConfig, feedback: Json, limits: Timeouts) -> None:
        with self._span(node, "send_feedback"):
            await self._inner.feedback(node, feedback, limits)

    async def metadata(self, node: NodeConfig, limits: Timeouts) -> Json:
        with self._span(node, "metadata"):
            return await self._inner.metadata(node, limits)

    def _span(self, node: NodeConfig, method: str) -> AbstractContextManager[Span]:
        predictor = CURRENT_PREDICTOR.get()
        attrs = attributes(predictor.deployment_name, predictor.predictor_name, node.name)
        return self._tracing.span(f"node {node.name} {method}", None, attrs, client=True)


def _insecure(endpoint: str) -> bool:
    return not endpoint.startswith("https://")
