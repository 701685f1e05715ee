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

from collections.abc import Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager

from opentelemetry.trace import Span
from pydantic import Field

from extproc.codecs import Payload
from extproc.config import NodeConfig, Timeouts
from extproc.graph.executor import Json, NodeClient
from extproc.metrics import CURRENT_PREDICTOR
from telemetry import tracing as base
from telemetry.tracing import (
    DEPLOYMENT,
    NODE,
    OTLP_ENDPOINT_ENV,
    PREDICTOR,
    SAMPLING_RATIO_ENV,
    attributes,
    inject_w3c,
)

__all__ = [
    "DEPLOYMENT",
    "NODE",
    "OTLP_ENDPOINT_ENV",
    "PREDICTOR",
    "SAMPLING_RATIO_ENV",
    "TracedNodeClient",
    "Tracing",
    "TracingSettings",
    "attributes",
    "inject_current",
    "settings_from_env",
]

# bounds the per-node cache of span names and attributes (a mesh serves a few hundred nodes at most)
_CACHE_LIMIT = 4096


class TracingSettings(base.TracingSettings):
    service_name: str = Field("seldon-mesh-extproc", description="`service.name` resource attribute.")


class Tracing(base.Tracing):
    instrumentation = "seldon-mesh.extproc"


def settings_from_env(environ: Mapping[str, str], **overrides: object) -> TracingSettings:
    """For the entrypoint only."""
    return base.settings_from_env(environ, TracingSettings, **overrides)


def inject_current(headers: MutableMapping[str, str]) -> None:
    """Write the current span's `traceparent` into an outgoing request: for the node client, which need
    not hold a `Tracing` (the current span travels in the asyncio context)."""
    inject_w3c(headers)


class TracedNodeClient:
    """The executor's `NodeClient` with a client span around every node call, named
    `node <name> <method>` and carrying deployment, predictor and node."""

    def __init__(self, inner: NodeClient, tracing: Tracing) -> None:
        self._inner = inner
        self._tracing = tracing
        # (deployment, predictor, node, method) -> the span's name and attributes, made once per node call
        self._shapes: dict[tuple[str, str, str, str], tuple[str, dict[str, str]]] = {}

    async def call(
        self, node: NodeConfig, method: str, payloads: Sequence[Payload], meta: Json, limits: Timeouts
    ) -> tuple[Payload, Json]:
        # `open` and `close` rather than a `with` block: the hot path, a block object and two calls less
        tracing = self._tracing
        span, token = tracing.open(*self._shape(node, method), client=True)
        try:
            answer = await self._inner.call(node, method, payloads, meta, limits)
        except BaseException as error:
            tracing.close(span, token, error)
            raise
        tracing.close(span, token)
        return answer

    async def feedback(self, node: NodeConfig, feedback: Json, limits: Timeouts) -> None:
        with self._span(node, "send_feedback"):
            await self._inner.feedback(node, feedback, limits)

    async def metadata(self, node: NodeConfig, limits: Timeouts) -> Json:
        with self._span(node, "metadata"):
            return await self._inner.metadata(node, limits)

    async def status(self, node: NodeConfig, limits: Timeouts) -> Json:
        with self._span(node, "status"):
            return await self._inner.status(node, limits)

    def _span(self, node: NodeConfig, method: str) -> AbstractContextManager[Span]:
        return self._tracing.span(*self._shape(node, method), client=True)

    def _shape(self, node: NodeConfig, method: str) -> tuple[str, None, dict[str, str]]:
        """The span's name, parent (the current span) and attributes."""
        predictor = CURRENT_PREDICTOR.get()
        key = (predictor.deployment_name, predictor.predictor_name, node.name, method)
        shape = self._shapes.get(key)
        if shape is None:
            if len(self._shapes) >= _CACHE_LIMIT:
                self._shapes.clear()
            shape = self._shapes[key] = (f"node {node.name} {method}", attributes(*key[:3]))
        name, attrs = shape
        return name, None, attrs
