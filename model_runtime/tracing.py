"""OpenTelemetry for a runtime process: `telemetry.tracing` with the runtime's service and tracer names.

Hooks for the runtime's REST and gRPC adapters (exact calls):
- `parent = tracing.extract(headers)` from the HTTP headers (`carrier(scope["headers"])`: only the trace
  headers) or the gRPC invocation metadata;
- `with tracing.span("runtime " + method, parent, attributes(deployment, predictor, node)):` around the
  dataplane call (`method` is predict, feedback, route, ...);
- `tracing.shutdown()` on exit (flushes what is batched).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from telemetry import tracing as base
from telemetry.tracing import (
    DEPLOYMENT,
    NODE,
    OTLP_ENDPOINT_ENV,
    PREDICTOR,
    SAMPLING_RATIO_ENV,
    attributes,
    carrier,
)

__all__ = [
    "DEPLOYMENT",
    "NODE",
    "OTLP_ENDPOINT_ENV",
    "PREDICTOR",
    "SAMPLING_RATIO_ENV",
    "Tracing",
    "TracingSettings",
    "attributes",
    "carrier",
    "settings_from_env",
]


class TracingSettings(base.TracingSettings):
    service_name: str = Field("seldon-mesh-runtime", description="`service.name` resource attribute.")


class Tracing(base.Tracing):
    instrumentation = "seldon-mesh.runtime"


def settings_from_env(environ: Mapping[str, str], **overrides: object) -> TracingSettings:
    """For the entrypoint only."""
    return base.settings_from_env(environ, TracingSettings, **overrides)
