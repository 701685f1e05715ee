"""Per-request observability of a runtime's endpoints: a server span continuing the caller's trace, and,
for a runtime the gateway routes to directly, Seldon's executor server histogram.

The REST app and the gRPC interceptor ask `RequestObserver.plan(service, method)` once per endpoint at
startup; an endpoint with nothing to observe gets `None` and keeps its unwrapped handler, so with tracing
off and the runtime behind ext_proc a request pays nothing. The transport tables (which path or RPC is
which `service` label and span name) live beside each adapter.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from opentelemetry.trace import Status, StatusCode

from model_runtime.metrics import RuntimeMetrics
from model_runtime.tracing import Tracing, attributes

CODE_ATTRIBUTE = "seldon.code"


@dataclass(frozen=True, slots=True)
class Observed:
    """What one endpoint records: the server histogram's `service` label, a span's name (None: not)."""

    service: str | None
    span: str | None


@dataclass(slots=True)
class Outcome:
    """The adapter sets `code` (HTTP status or gRPC code name) before the block ends."""

    code: str


class RequestObserver:
    def __init__(self, metrics: RuntimeMetrics, tracing: Tracing | None, node: str) -> None:
        self.metrics = metrics
        self.tracing = tracing
        identity = metrics.identity
        self._counts = identity.gateway_facing
        self._attrs = attributes(identity.deployment_name, identity.predictor_name, node)

    def plan(self, service: str | None, method: str | None) -> Observed | None:
        """For an endpoint counted as `service` (external endpoints) and traced as `runtime <method>`."""
        counted = service if self._counts else None
        span = f"runtime {method}" if self.tracing is not None and method else None
        return Observed(counted, span) if counted or span else None

    @contextlib.contextmanager
    def request(
        self, observed: Observed, headers: Callable[[], Mapping[str, str]], method: str, ok: str
    ) -> Iterator[Outcome]:
        """`headers` is called only when a span is made (the carriers of the caller's trace, lowercase names:
        ASGI headers and gRPC metadata are)."""
        outcome = Outcome(ok)
        started = time.perf_counter()
        tracing = self.tracing
        opened = None
        if observed.span is not None and tracing is not None:
            opened = tracing.open(observed.span, tracing.extract_lowercase(headers()), self._attrs)
        error: BaseException | None = None
        try:
            yield outcome
        except BaseException as exc:
            error = exc
            if outcome.code == ok:  # an adapter that set its error code first keeps it
                outcome.code = "500" if ok == "200" else "UNKNOWN"
            raise
        finally:
            if opened is not None and tracing is not None:
                span, token = opened
                span.set_attribute(CODE_ATTRIBUTE, outcome.code)
                if outcome.code != ok and not outcome.code.startswith("4"):
                    span.set_status(Status(StatusCode.ERROR))
                tracing.close(span, token, error)
            if observed.service is not None:
                seconds = time.perf_counter() - started
                self.metrics.observe_request(observed.service, method, outcome.code, seconds)
