"""A user object (a Python class model or a prepackaged runtime) seen through Seldon's method contract.

Which optional methods exist, and how many arguments each accepts, is worked out once at construction;
each request then makes one direct call. Exceptions from user code become `UserCodeError` here, except
the runtime's own errors (a user may raise `model_runtime.BadRequest` for a 400) and exceptions that carry
an HTTP `status_code` (Seldon's `SeldonMicroserviceException`), which become `UserStatusError` with their
`reason`; a class's `model_error_handler` (a Flask Blueprint, as Seldon's docs write it) makes the reply
for the exceptions it handles. A method marked `__seldon_mesh_unimplemented__` (the placeholders of the
`seldon_core.user_model.SeldonComponent` base class) counts as absent. `class_names` and `feature_names`
may be methods or list attributes, read at each call, as in Seldon.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from model_runtime.errors import Reason, RuntimeFailure, UserCodeError, UserStatusError

log = logging.getLogger(__name__)

Call = Callable[..., Any]

_METRIC_TYPES = frozenset({"COUNTER", "GAUGE", "TIMER", "HISTOGRAM"})
UNIMPLEMENTED_MARK = "__seldon_mesh_unimplemented__"


class Component:
    """Bound callers for each contract method the user object has; `None` where it has none."""

    def __init__(self, user: object) -> None:
        self.user = user
        self.predict = _caller(user, "predict", 3)
        self.predict_raw = _caller(user, "predict_raw", 1)
        self.transform_input = _caller(user, "transform_input", 3)
        self.transform_input_raw = _caller(user, "transform_input_raw", 1)
        self.transform_output = _caller(user, "transform_output", 3)
        self.transform_output_raw = _caller(user, "transform_output_raw", 1)
        self.route = _caller(user, "route", 3)
        self.route_raw = _caller(user, "route_raw", 1)
        self.aggregate = _caller(user, "aggregate", 2)
        self.aggregate_raw = _caller(user, "aggregate_raw", 1)
        self.send_feedback = _feedback_caller(user)
        self.send_feedback_raw = _caller(user, "send_feedback_raw", 1)
        self.health_status = _caller(user, "health_status", 0)
        self.health_status_raw = _caller(user, "health_status_raw", 0)
        self._tags = _caller(user, "tags", 0)
        self._metrics = _caller(user, "metrics", 0)
        self._class_names = _caller(user, "class_names", 0)
        self._feature_names = _caller(user, "feature_names", 0)
        self._metadata = _caller(user, "init_metadata", 0) or _caller(user, "metadata", 0)
        self.load = _caller(user, "load", 0)
        # Open Inference Protocol (V2) extras: named tensors in and out, and tensor metadata
        self.predict_tensors = _caller(user, "predict_tensors", 2)
        self.infer_tensors = _caller(user, "infer_tensors", 2)  # whole tensors, their parameters too
        self._tensor_metadata = _caller(user, "tensor_metadata", 0)
        self.v2_output_name = str(getattr(user, "v2_output_name", "") or "output-0")

    @property
    def has_class_names(self) -> bool:
        return self._class_names is not None or _names_attribute(self.user, "class_names") is not None

    @property
    def has_feature_names(self) -> bool:
        return self._feature_names is not None or _names_attribute(self.user, "feature_names") is not None

    def tags(self) -> dict[str, Any]:
        if self._tags is None:
            return {}
        tags = self._tags()
        if not isinstance(tags, dict):
            raise UserCodeError(f"tags() must return a dict, got {type(tags).__name__}")
        return tags

    def metrics(self) -> list[dict[str, Any]]:
        return [] if self._metrics is None else check_metrics(self._metrics())

    def class_names(self) -> list[str] | None:
        if self._class_names is None:
            return _names_attribute(self.user, "class_names")
        return [str(n) for n in self._class_names()]

    def feature_names(self) -> list[str] | None:
        if self._feature_names is None:
            return _names_attribute(self.user, "feature_names")
        return [str(n) for n in self._feature_names()]

    def tensor_metadata(self) -> dict[str, Any]:
        """V2 `inputs`/`outputs` (`[{name, datatype, shape}]`); empty when the component declares none."""
        if self._tensor_metadata is None:
            return {}
        meta = self._tensor_metadata()
        if not isinstance(meta, dict):
            raise UserCodeError(f"tensor_metadata must return a dict, got {type(meta).__name__}")
        return meta

    def metadata(self) -> dict[str, Any] | None:
        if self._metadata is None:
            return None
        meta = self._metadata()
        if meta is not None and not isinstance(meta, dict):
            raise UserCodeError(f"metadata must be a dict, got {type(meta).__name__}")
        return meta


def check_metrics(metrics: Any) -> list[dict[str, Any]]:
    if not isinstance(metrics, list):
        raise UserCodeError(f"metrics must be a list, got {type(metrics).__name__}")
    for metric in metrics:
        if (
            not isinstance(metric, dict)
            or not isinstance(metric.get("key"), str)
            or metric.get("type") not in _METRIC_TYPES
            or not isinstance(metric.get("value"), int | float)
            or isinstance(metric.get("value"), bool)
        ):
            raise UserCodeError(
                f"bad metric {metric!r}: needs key (str), type (COUNTER, GAUGE, TIMER or HISTOGRAM) "
                "and a numeric value"
            )
        if "tags" in metric and not isinstance(metric["tags"], dict):
            raise UserCodeError(f"bad metric {metric!r}: tags must be a dict")
    return metrics


def _names_attribute(user: object, name: str) -> list[str] | None:
    value = getattr(user, name, None)
    return [str(n) for n in value] if isinstance(value, list | tuple) else None


def _method(user: object, name: str) -> Call | None:
    method = getattr(user, name, None)
    if method is None or not callable(method) or getattr(method, UNIMPLEMENTED_MARK, False):
        return None
    return method  # type: ignore[no-any-return]


def _caller(user: object, name: str, max_args: int) -> Call | None:
    """A function taking `max_args` positional arguments that calls the user's method with what it accepts.

    Seldon's contract allows e.g. `predict(X, names, meta)`, `predict(X, names, **kwargs)` and
    `predict(X, names)`; the third argument is passed positionally, as `meta=` or not at all.
    """
    method = _method(user, name)
    if method is None:
        return None
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return _guarded(name, method, user)
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_positional = any(p.kind == p.VAR_POSITIONAL for p in params)
    var_keyword = any(p.kind == p.VAR_KEYWORD for p in params)
    if var_positional or len(positional) >= max_args:
        return _guarded(name, method, user)
    if max_args == 3 and len(positional) == 2 and (var_keyword or "meta" in signature.parameters):

        def with_meta_keyword(x: Any, names: Any, meta: Any) -> Any:
            return method(x, names, meta=meta)

        return _guarded(name, with_meta_keyword, user)
    accepted = len(positional)

    def truncated(*args: Any) -> Any:
        return method(*args[:accepted])

    return _guarded(name, truncated, user)


def _feedback_caller(user: object) -> Call | None:
    """`send_feedback(features, names, reward, truth, routing=None)`; `routing` only if accepted."""
    method = _method(user, "send_feedback")
    if method is None:
        return None
    params = inspect.signature(method).parameters
    takes_routing = "routing" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def call(features: Any, names: Any, reward: float, truth: Any, routing: int | None) -> Any:
        if takes_routing:
            return method(features, names, reward, truth, routing=routing)
        return method(*(features, names, reward, truth)[: len(positional)])

    return _guarded("send_feedback", call, user)


def _guarded(name: str, function: Call, user: object) -> Call:
    handler = getattr(user, "model_error_handler", None)
    replies = None if handler is None else _ErrorReplies(handler)

    def call(*args: Any) -> Any:
        try:
            return function(*args)
        except RuntimeFailure:
            raise
        except Exception as exc:
            reply = None if replies is None else replies.reply(exc)
            if reply is not None:
                raise reply from exc
            status = getattr(exc, "status_code", None)
            if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
                log.info("user method %s raised %s (HTTP %d)", name, type(exc).__name__, status)
                reason = getattr(exc, "reason", None) or Reason.BAD_DATA
                raise UserStatusError(_message(exc), status, str(reason)) from exc
            log.exception("user method %s raised", name)
            raise UserCodeError(f"{name} raised {type(exc).__name__}: {exc}") from exc

    return call


def _message(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else str(exc)


class _ErrorReplies:
    """A user's `model_error_handler` Blueprint run in a small Flask app of its own, only to turn an
    exception into the reply its handler makes (status, body, content type). Flask is the user's
    dependency: Seldon's docs import it in the class. Exceptions it does not handle go on as usual."""

    def __init__(self, blueprint: Any) -> None:
        self.blueprint = blueprint
        self.app: Any = None

    def reply(self, exc: Exception) -> UserStatusError | None:
        try:
            import flask
        except ImportError:
            return None
        try:
            if self.app is None:
                app = flask.Flask("seldon_mesh_model_errors")
                app.register_blueprint(self.blueprint)
                self.app = app
            with self.app.test_request_context():
                try:
                    made = self.app.handle_user_exception(exc)
                except Exception:
                    return None  # no handler for it
                response = self.app.make_response(made)
        except Exception:
            log.exception("model_error_handler could not be used")
            return None
        status = int(response.status_code)
        reason = str(getattr(exc, "reason", None) or Reason.INTERNAL_ERROR)
        return UserStatusError(
            _message(exc), status, reason, body=response.get_data(), content_type=response.content_type
        )
