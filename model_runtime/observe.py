"""Per-request observability of a runtime's endpoints: a server span continuing the caller's trace, and,
for a runtime the gateway routes to directly, Seldon's executor server histogram.

The REST app and the gRPC interceptor ask `RequestObserver.plan(service, method)` once per endpoint at
startup; an endpoint with nothing to observe gets `None` and keeps its unwrapped handler, so with tracing
off and the runtime behind ext_proc a request pays nothing. The transport tables (which path or RPC is
which `service` label and span name) live beside each adapter.

A gateway-facing runtime can still be called by extproc: a Seldon v1 client of a V2 single model reaches
it through extproc's translation, and extproc counts that request itself. extproc marks its node calls with
the `telemetry.hops` header (REST) or metadata (gRPC); the adapters pass `counted=False` for them,
so each client request is counted once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import Token
from dataclasses import dataclass
from types import TracebackType

from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

from model_runtime.metrics import RuntimeMetrics
from model_runtime.tracing import Tracing, attributes
from telemetry.hops import CALLER, CALLER_VALUE

CODE_ATTRIBUTE = "seldon.code"
RAW_CALLER = (CALLER.encode(), CALLER_VALUE.encode())  # as an ASGI header


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
        self.span_attributes = attributes(identity.deployment_name, identity.predictor_name, node)

    def plan(self, service: str | None, method: str | None) -> Observed | None:
        """For an endpoint counted as `service` (external endpoints) and traced as `runtime <method>`."""
        counted = service if self._counts else None
        span = f"runtime {method}" if self.tracing is not None and method else None
        return Observed(counted, span) if counted or span else None

    def request(
        self,
        observed: Observed,
        headers: Callable[[], Mapping[str, str]],
        method: str,
        ok: str,
        *,
        counted: bool = True,
    ) -> ObservedRequest:
        """The block of one request, as `with observer.request(...) as outcome:`. `headers` is called only
        when a span is made (the carriers of the caller's trace, lowercase names: ASGI headers and gRPC
        metadata are). `counted` False: a request extproc made (`CALLER`), which extproc counts itself."""
        return ObservedRequest(self, observed, headers, method, ok, counted)


class ObservedRequest:
    """`RequestObserver.request`'s context manager: a class, not a generator (one per request)."""

    __slots__ = (
        "_headers", "_method", "_observer", "_ok", "_opened", "_service", "_span", "_started", "outcome",
    )  # fmt: skip

    def __init__(
        self,
        observer: RequestObserver,
        observed: Observed,
        headers: Callable[[], Mapping[str, str]],
        method: str,
        ok: str,
        counted: bool,
    ) -> None:
        self._observer = observer
        self._service = observed.service if counted else None
        self._span = observed.span
        self._headers = headers
        self._method = method
        self._ok = ok
        self.outcome = Outcome(ok)
        self._opened: tuple[Span, Token[Context]] | None = None
        self._started = 0.0

    def __enter__(self) -> Outcome:
        self._started = time.perf_counter()
        tracing = self._observer.tracing
        span = self._span
        if span is not None and tracing is not None:
            self._opened = tracing.open_under(span, self._headers(), self._observer.span_attributes)
        return self.outcome

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        outcome, ok = self.outcome, self._ok
        if error is not None and outcome.code == ok:  # an adapter that set its error code first keeps it
            outcome.code = "500" if ok == "200" else "UNKNOWN"
        observer = self._observer
        opened = self._opened
        if opened is not None and observer.tracing is not None:
            span, token = opened
            span.set_attribute(CODE_ATTRIBUTE, outcome.code)
            if outcome.code != ok and not outcome.code.startswith("4"):
                span.set_status(Status(StatusCode.ERROR))
            observer.tracing.close(span, token, error)
        service = self._service
        if service is not None:
            seconds = time.perf_counter() - self._started
            observer.metrics.observe_request(service, self._method, outcome.code, seconds)
