"""A `grpc.aio` server interceptor doing `observe.RequestObserver`'s work for the gRPC adapter.

It is installed only when there is something to observe, and then wraps only the RPCs listed here: the
external ones count in the executor's server histogram (gateway-facing runtimes), the component calls
extproc makes are traced. Health checks and reflection pass untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from model_runtime.observe import Observed, RequestObserver
from telemetry.hops import CALLER, CALLER_VALUE

if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor

_INTERNAL = {
    "Predict": "predict",
    "TransformInput": "transform-input",
    "TransformOutput": "transform-output",
    "Route": "route",
    "Aggregate": "aggregate",
    "SendFeedback": "feedback",
}
_COMPONENT_SERVICES = ("Generic", "Model", "Router", "Transformer", "OutputTransformer", "Combiner")

# full method -> (Seldon's `service` label when it is an external request, span method when traced)
OBSERVED_RPCS: dict[str, tuple[str | None, str | None]] = {
    "/seldon.protos.Seldon/Predict": ("predictions", "predictions"),
    "/seldon.protos.Seldon/SendFeedback": ("feedback", "feedback"),
    "/seldon.protos.Seldon/ModelMetadata": ("metadata", None),
    "/seldon.protos.Seldon/GraphMetadata": ("metadata", None),
    "/inference.GRPCInferenceService/ModelInfer": ("predictions", "infer"),
    "/inference.GRPCInferenceService/ModelMetadata": ("metadata", None),
    "/tensorflow.serving.PredictionService/Predict": ("predictions", "predict"),
    "/tensorflow.serving.PredictionService/Classify": ("predictions", "classify"),
    "/tensorflow.serving.PredictionService/Regress": ("predictions", "regress"),
    "/tensorflow.serving.PredictionService/GetModelMetadata": ("metadata", None),
    **{
        f"/seldon.protos.{service}/{rpc}": (None, method)
        for service in _COMPONENT_SERVICES
        for rpc, method in _INTERNAL.items()
    },
}
_OK = grpc.StatusCode.OK.name
_CALLER = (CALLER, CALLER_VALUE)  # extproc's node calls: extproc counts them

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Any]]
Unary = Callable[[Any, Any], Awaitable[Any]]


class ObservingInterceptor(_Interceptor):
    def __init__(self, observer: RequestObserver) -> None:
        self._observer = observer
        self._plans = {
            rpc: observed
            for rpc, (service, method) in OBSERVED_RPCS.items()
            if (observed := observer.plan(service, method)) is not None
        }

    @property
    def active(self) -> bool:
        return bool(self._plans)

    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        observed = self._plans.get(details.method)
        if observed is None or handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(handler.unary_unary, observed, details),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(
        self,
        inner: Callable[[Any, Any], Awaitable[Any]],
        observed: Observed,
        details: grpc.HandlerCallDetails,
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        observer = self._observer

        def headers() -> dict[str, str]:
            return {k: v for k, v in details.invocation_metadata or () if isinstance(v, str)}

        async def observed_call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            counted = observed.service is not None and _CALLER not in (details.invocation_metadata or ())
            with observer.request(observed, headers, "grpc", _OK, counted=counted) as outcome:
                try:
                    return await inner(request, context)
                except BaseException:
                    code = context.code()  # set by `context.abort`; None for an unexpected error
                    outcome.code = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
                    raise

        return observed_call
