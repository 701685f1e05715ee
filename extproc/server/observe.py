"""Per-request observability at extproc's edges: Seldon's server histogram and a server span.

Both edges (the ext_proc servicer for REST, the gRPC upstream servicers) wrap one request in
`RequestObserver.request(...)`: it sets the predictor's labels for the node calls made inside it
(`extproc.metrics.predictor_scope`), opens a server span continuing the caller's trace (the first valid
context among the carriers given: Envoy's gRPC metadata, then the client's headers), and on exit records
`seldon_api_executor_server_requests_seconds` with the code the edge set on the outcome. With neither
metrics nor tracing it only sets the labels.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from opentelemetry.trace import Span

from extproc.config import PredictorConfig
from extproc.metrics import CURRENT_PREDICTOR, ExecutorMetrics, PredictorLabels
from extproc.tracing import Tracing, attributes


@dataclass
class Outcome:
    """The edge sets `code` (HTTP status or gRPC code name) before the block ends."""

    code: str


def predictor_labels(predictor: PredictorConfig) -> PredictorLabels:
    return PredictorLabels(
        predictor.deployment,
        predictor.name,
        predictor.version,
    )


def rest_service(rest: str) -> str:
    """Seldon's `service` label for a REST path under a deployment."""
    if "feedback" in rest:
        return "feedback"
    if "metadata" in rest or (rest.startswith("/v2/models/") and not rest.endswith("/infer")):
        return "metadata"
    if "predictions" in rest or rest.endswith("/infer"):
        return "predictions"
    return "status"


class RequestObserver:
    def __init__(self, metrics: ExecutorMetrics | None = None, tracing: Tracing | None = None) -> None:
        self.metrics = metrics
        self.tracing = tracing

    @contextlib.contextmanager
    def request(
        self,
        predictor: PredictorConfig,
        service: str,
        method: str,
        carriers: Sequence[Mapping[str, str]],
        path: str,
        ok: str = "200",
    ) -> Iterator[Outcome]:
        labels = predictor_labels(predictor)
        outcome = Outcome(ok)
        started = time.perf_counter()
        token = CURRENT_PREDICTOR.set(labels)  # what `predictor_scope` does, minus a generator per request
        traced: AbstractContextManager[Span | None] = contextlib.nullcontext()
        if self.tracing is not None:
            parent = self.tracing.extract_first(*carriers)
            attrs = attributes(predictor.deployment, predictor.name)
            traced = self.tracing.span(f"extproc {path}", parent, attrs)
        try:
            with traced as span:
                try:
                    yield outcome
                except BaseException:
                    if outcome.code == ok:  # an edge that set its error code first keeps it
                        outcome.code = "500" if ok == "200" else "UNKNOWN"  # what gRPC tells the client
                    raise
                finally:
                    if span is not None:
                        span.set_attribute("seldon.code", outcome.code)
                    if self.metrics is not None:
                        seconds = time.perf_counter() - started
                        self.metrics.observe_server(labels, service, method, outcome.code, seconds)
        finally:
            CURRENT_PREDICTOR.reset(token)
