"""The transport-neutral core: readiness, and one method per Seldon endpoint.

REST (`rest.app`) and gRPC (`rpc.server`) adapters decode nothing themselves: they wrap the wire value in
a `Request` with the matching codec and encode the `Reply`. Everything here is synchronous; the adapters
decide whether it runs on the event loop or in a thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from model_runtime.component import Component, check_metrics
from model_runtime.errors import (
    BadRequest,
    LoadError,
    NotImplementedByComponent,
    NotReady,
    RuntimeFailure,
    UserCodeError,
)
from model_runtime.message import (
    CustomData,
    DataKind,
    DefaultData,
    Feedback,
    Message,
    Meta,
    Reply,
    Request,
    Status,
)
from model_runtime.outputs import default_names, to_payload
from model_runtime.response import SeldonResponse
from model_runtime.settings import ComponentSettings, ServiceType

log = logging.getLogger(__name__)

Loader = Callable[[ComponentSettings], Component]
NamesPolicy = Callable[[int | None, list[str]], list[str]]  # (output columns, request names) → names


class MetricsRecorder(Protocol):
    """Where the metrics a component reports go (`metrics.RuntimeMetrics`); it never raises."""

    def record_custom(self, metrics: Iterable[Mapping[str, Any]], method: str = "predict") -> None: ...

    def record_feedback(self, reward: float) -> None: ...


class NoRecording:
    def record_custom(self, metrics: Iterable[Mapping[str, Any]], method: str = "predict") -> None:
        pass

    def record_feedback(self, reward: float) -> None:
        pass


class DataPlane:
    def __init__(
        self, settings: ComponentSettings, loader: Loader, recorder: MetricsRecorder | None = None
    ) -> None:
        self.settings = settings
        self.recorder: MetricsRecorder = recorder or NoRecording()
        self._loader = loader
        self._component: Component | None = None
        self._failure: str | None = None
        self._unloaded = False
        self._external = {
            ServiceType.MODEL: self.predict,
            ServiceType.TRANSFORMER: self.transform_input,
            ServiceType.OUTPUT_TRANSFORMER: self.transform_output,
            ServiceType.ROUTER: self.route,
            ServiceType.COMBINER: self._aggregate_one,
        }[settings.service_type]

    # --- lifecycle -------------------------------------------------------------------------------------

    def load(self) -> bool:
        """Build the component; on failure remember why (shown by `/ready`) instead of raising."""
        self._failure = None
        self._unloaded = False
        try:
            self._component = self._loader(self.settings)
            log.info("component %s ready", self.settings.name)
        except LoadError as exc:
            self._failure = exc.info
            log.error("component %s failed to load: %s", self.settings.name, exc.info)
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            log.exception("component %s failed to load", self.settings.name)
        return self._component is not None

    def check_ready(self) -> Component:
        component = self._component
        if component is None:
            if self._failure is not None:
                raise LoadError(self._failure)
            raise NotReady("model is unloaded" if self._unloaded else "model is loading")
        return component

    def unload(self) -> None:
        """Drop the component (V2 repository unload): not ready until `load` runs again."""
        self._component = None
        self._failure = None
        self._unloaded = True

    @property
    def state(self) -> tuple[str, str]:
        """(V2 repository state, reason): READY, UNAVAILABLE with the failure or LOADING."""
        if self._component is not None:
            return "READY", ""
        if self._failure is not None:
            return "UNAVAILABLE", self._failure
        return ("UNAVAILABLE", "unloaded") if self._unloaded else ("LOADING", "")

    # --- endpoints -------------------------------------------------------------------------------------

    def external_predict(self, request: Request) -> Reply:
        """`/api/v1.0/predictions` and `Seldon/Predict`: what a one-node graph of this type does."""
        return self._external(request)

    def predict(self, request: Request) -> Reply:
        component = self.check_ready()
        if component.predict_raw is not None:
            return self._raw(component.predict_raw, request)
        if component.predict is None:
            raise NotImplementedByComponent("predict is not implemented by this component")
        return self._unary(component, component.predict, request, self._class_names(component))

    def transform_input(self, request: Request) -> Reply:
        component = self.check_ready()
        if component.transform_input_raw is not None:
            return self._raw(component.transform_input_raw, request)
        caller = component.transform_input or _identity
        return self._unary(component, caller, request, self._feature_names(component), "inputtransform")

    def transform_output(self, request: Request) -> Reply:
        component = self.check_ready()
        if component.transform_output_raw is not None:
            return self._raw(component.transform_output_raw, request)
        caller = component.transform_output or _identity
        names_for = self._class_names(component) if component.has_class_names else _passthrough_names
        return self._unary(component, caller, request, names_for, "outputtransform")

    def route(self, request: Request) -> Reply:
        component = self.check_ready()
        if component.route_raw is not None:
            return self._raw(component.route_raw, request)
        user_route = component.route
        if user_route is None:
            raise NotImplementedByComponent("route is not implemented by this component")

        def route_to(x: Any, names: list[str], meta: dict[str, Any]) -> Any:
            response = SeldonResponse.create(user_route(x, names, meta))
            choice = response.data
            if isinstance(choice, bool) or not isinstance(choice, int):
                try:
                    choice = _as_int(choice)
                except (TypeError, ValueError):
                    raise UserCodeError(f"route must return an int, got {choice!r}") from None
            return SeldonResponse([[choice]], response.tags, response.metrics)

        return self._unary(component, route_to, request, _no_names, "router")

    def aggregate(self, request: Request) -> Reply:
        component = self.check_ready()
        if component.aggregate_raw is not None:
            return self._raw(component.aggregate_raw, request)
        messages: list[Message] = request.decoded()
        return self._aggregate(component, messages, request.puid)

    def send_feedback(self, request: Request) -> Reply:
        component = self.check_ready()
        if component.send_feedback_raw is not None:
            reply = self._raw(component.send_feedback_raw, request)
            self._record_reward(request)
            return reply
        feedback: Feedback = request.decoded()
        self.recorder.record_feedback(feedback.reward)
        source = feedback.request or Message()
        puid = _puid(request.puid, source.meta.puid)
        output: Any = None
        if component.send_feedback is not None:
            features, names, _ = _features(feedback.request) if feedback.request else (None, [], None)
            truth = _features(feedback.truth)[0] if feedback.truth else None
            routing = feedback.response.meta.routing.get(self.settings.name) if feedback.response else None
            output = component.send_feedback(features, names, feedback.reward, truth, routing)
        kind = _kind(feedback.request)
        return Reply(
            puid,
            self._respond(
                component, source, output, puid=puid, kind=kind, names_for=_default_names, method="feedback"
            ),
        )

    def health_status(self, puid: str | None = None) -> Reply:
        component = self.check_ready()
        reply_puid = _puid(puid, "")
        if component.health_status_raw is not None:
            return Reply(reply_puid, raw=component.health_status_raw())
        if component.health_status is None:
            message = Message(status=Status(200, "ready"), meta=Meta(puid=reply_puid))
            return Reply(reply_puid, message)
        output = component.health_status()
        reply = self._respond(
            component,
            Message(),
            output,
            puid=reply_puid,
            kind=None,
            names_for=_default_names,
            method="health",
        )
        return Reply(reply_puid, reply)

    def metadata(self) -> dict[str, Any]:
        """Model metadata (name, versions, platform, inputs, outputs, custom) with the user's overrides."""
        component = self.check_ready()
        out: dict[str, Any] = {
            "name": self.settings.name,
            "versions": [],
            "platform": "",
            "inputs": [],
            "outputs": [],
            "custom": {},
        }
        out.update(component.metadata() or {})
        return out

    def graph_metadata(self) -> dict[str, Any]:
        """Seldon's executor's graph metadata of a one-node graph: named after the predictor."""
        model = self.metadata()
        return {
            "name": self.settings.predictor or self.settings.name,
            "models": {self.settings.name: model},
            "inputs": model["inputs"],
            "outputs": model["outputs"],
        }

    # --- shared paths ----------------------------------------------------------------------------------

    def _unary(
        self,
        component: Component,
        caller: Callable[..., Any],
        request: Request,
        names_for: NamesPolicy,
        method: str = "predict",
    ) -> Reply:
        message: Message = request.decoded()
        puid = _puid(request.puid, message.meta.puid)
        features, names, kind = _features(message)
        output = caller(features, names, _user_meta(message.meta, puid))
        return Reply(
            puid,
            self._respond(
                component,
                message,
                output,
                puid=puid,
                kind=kind,
                names_for=names_for,
                request_names=names,
                method=method,
            ),
        )

    def _aggregate(self, component: Component, messages: list[Message], puid_hint: str | None) -> Reply:
        if component.aggregate is None:
            raise NotImplementedByComponent("aggregate is not implemented by this component")
        if not messages:
            raise BadRequest("aggregate needs at least one message")
        puid = _puid(puid_hint, messages[0].meta.puid)
        decoded = [_features(m) for m in messages]
        output = component.aggregate([d[0] for d in decoded], [d[1] for d in decoded])
        merged = Message(meta=Meta(tags={k: v for m in messages for k, v in m.meta.tags.items()}))
        merged.meta.request_path = {k: v for m in messages for k, v in m.meta.request_path.items()}
        names_for = self._class_names(component)
        return Reply(
            puid,
            self._respond(
                component,
                merged,
                output,
                puid=puid,
                kind=decoded[0][2],
                names_for=names_for,
                method="aggregate",
            ),
        )

    def _aggregate_one(self, request: Request) -> Reply:
        component = self.check_ready()
        message: Message = request.decoded()
        return self._aggregate(component, [message], request.puid)

    def _raw(self, caller: Callable[..., Any], request: Request) -> Reply:
        return Reply(_puid(request.puid, ""), raw=caller(request.raw))

    def _record_reward(self, request: Request) -> None:
        """Feedback handled by `send_feedback_raw` still counts; a message without a reward counts 0."""
        try:
            reward = float(request.decoded().reward)
        except (RuntimeFailure, TypeError, ValueError):
            reward = 0.0
        self.recorder.record_feedback(reward)

    def _respond(
        self,
        component: Component,
        request: Message,
        output: Any,
        *,
        puid: str,
        kind: DataKind | None,
        names_for: NamesPolicy,
        request_names: list[str] | None = None,
        method: str = "predict",
    ) -> Message:
        """`method`: Seldon's `method` label of the custom metrics the call returned."""
        response = SeldonResponse.create(output)
        meta = Meta(
            puid=puid,
            tags={**request.meta.tags, **component.tags(), **response.tags},
            routing=request.meta.routing,
            request_path={**request.meta.request_path, self.settings.unit_id: self.settings.unit_image},
        )
        metrics = component.metrics() + check_metrics(response.metrics)
        if metrics:
            self.recorder.record_custom(metrics, method)
            if self.settings.include_metrics_in_response:
                meta.metrics = metrics
        names = request_names or []
        return Message(to_payload(response.data, kind, lambda columns: names_for(columns, names)), meta)

    def _class_names(self, component: Component) -> NamesPolicy:
        """Output names of a 2-D result: `class_names()` if the component has it, else `t:0` … `t:n-1`."""
        if not component.has_class_names:
            return _default_names
        return lambda columns, _: [] if columns is None else component.class_names() or []

    def _feature_names(self, component: Component) -> NamesPolicy:
        """Transformer output names: `feature_names()`, else the request's names when they still fit."""
        if component.has_feature_names:
            return lambda columns, _: component.feature_names() or []
        return _passthrough_names


def new_puid() -> str:
    """32 random hex digits, like `uuid4().hex` at a fraction of the cost."""
    return os.urandom(16).hex()


_MAX_PUID_CHARS = 1024  # a UUID is 36; Envoy's whole header block is 60 KiB by default


def _puid(*candidates: str | None) -> str:
    """The request's id: the `Seldon-Puid` header, else the body's `meta.puid`, else a new one. It goes back
    as a header (REST) or metadata (gRPC), so a body's value no header can carry is the client's error."""
    for candidate in candidates:
        if candidate:
            if len(candidate) > _MAX_PUID_CHARS:
                raise BadRequest(f"meta.puid is longer than {_MAX_PUID_CHARS} characters")
            if not (candidate.isascii() and candidate.isprintable()):
                raise BadRequest(
                    "meta.puid may hold printable ASCII only (it is sent as the Seldon-Puid header)"
                )
            return candidate
    return new_puid()


def _features(message: Message) -> tuple[Any, list[str], DataKind | None]:
    payload = message.payload
    if isinstance(payload, DefaultData):
        return payload.array, payload.names, payload.kind
    if payload is None:
        raise BadRequest("the request has no data (data, binData, strData or jsonData)")
    if isinstance(payload, CustomData):
        raise BadRequest("customData can only be handled by a *_raw method")
    return payload.value, [], None


def _kind(message: Message | None) -> DataKind | None:
    if message is not None and isinstance(message.payload, DefaultData):
        return message.payload.kind
    return None


def _user_meta(meta: Meta, puid: str) -> dict[str, Any]:
    return {"puid": puid, "tags": meta.tags, "routing": meta.routing, "requestPath": meta.request_path}


def _identity(x: Any, names: list[str], meta: dict[str, Any]) -> Any:
    return x


def _as_int(value: Any) -> int:
    import numpy as np

    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "iu":
        raise ValueError(value)
    return int(array.reshape(-1)[0])


def _default_names(columns: int | None, request_names: list[str]) -> list[str]:
    return default_names(columns)


def _no_names(columns: int | None, request_names: list[str]) -> list[str]:
    return []


def _passthrough_names(columns: int | None, request_names: list[str]) -> list[str]:
    if request_names and (columns is None or len(request_names) == columns):
        return request_names
    return default_names(columns)
