"""`SeldonComponent`, the optional base class of a Seldon Python model, and `SeldonResponse`.

Every method of the base class is a placeholder the runtime treats as absent (it carries the mark
`model_runtime.component` looks for), so a subclass is served exactly as the same class without the base:
only the methods it defines are used. Calling a placeholder directly raises `SeldonNotImplementedError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from model_runtime.response import SeldonResponse as _Response
from seldon_core.flask_utils import SeldonMicroserviceException

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__seldon_mesh_unimplemented__"  # model_runtime.component.UNIMPLEMENTED_MARK


class SeldonNotImplementedError(SeldonMicroserviceException):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="MICROSERVICE_NOT_IMPLEMENTED")


class SeldonResponse(_Response):
    """`SeldonResponse(data, tags=None, metrics=None)` returned from any method: per-request tags (they
    win over `tags()`) and metrics (added to `metrics()`)."""

    __slots__ = ()

    def __init__(
        self,
        data: Any,
        tags: dict[str, Any] | None = None,
        metrics: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(data, dict(tags or {}), list(metrics or []))


def _placeholder(function: F) -> F:
    setattr(function, _MARK, True)
    return function


def _unimplemented(name: str) -> SeldonNotImplementedError:
    return SeldonNotImplementedError(f"{name} is not implemented")


class SeldonComponent:
    def __init__(self, **kwargs: Any) -> None:
        pass

    @_placeholder
    def tags(self) -> dict[str, Any]:
        raise _unimplemented("tags")

    @_placeholder
    def class_names(self) -> Any:
        raise _unimplemented("class_names")

    @_placeholder
    def load(self) -> None:
        pass

    @_placeholder
    def predict(self, X: Any, names: Any, meta: Any = None) -> Any:
        raise _unimplemented("predict")

    @_placeholder
    def predict_raw(self, msg: Any) -> Any:
        raise _unimplemented("predict_raw")

    @_placeholder
    def send_feedback_raw(self, feedback: Any) -> Any:
        raise _unimplemented("send_feedback_raw")

    @_placeholder
    def transform_input(self, X: Any, names: Any, meta: Any = None) -> Any:
        raise _unimplemented("transform_input")

    @_placeholder
    def transform_input_raw(self, msg: Any) -> Any:
        raise _unimplemented("transform_input_raw")

    @_placeholder
    def transform_output(self, X: Any, names: Any, meta: Any = None) -> Any:
        raise _unimplemented("transform_output")

    @_placeholder
    def transform_output_raw(self, msg: Any) -> Any:
        raise _unimplemented("transform_output_raw")

    @_placeholder
    def metrics(self) -> list[dict[str, Any]]:
        raise _unimplemented("metrics")

    @_placeholder
    def feature_names(self) -> Any:
        raise _unimplemented("feature_names")

    @_placeholder
    def send_feedback(
        self, features: Any, feature_names: Any, reward: float, truth: Any, routing: int | None = None
    ) -> Any:
        raise _unimplemented("send_feedback")

    @_placeholder
    def route(self, features: Any, feature_names: Any) -> int:
        raise _unimplemented("route")

    @_placeholder
    def route_raw(self, msg: Any) -> Any:
        raise _unimplemented("route_raw")

    @_placeholder
    def aggregate(self, features_list: Any, feature_names_list: Any) -> Any:
        raise _unimplemented("aggregate")

    @_placeholder
    def aggregate_raw(self, msgs: Any) -> Any:
        raise _unimplemented("aggregate_raw")

    @_placeholder
    def health_status(self) -> Any:
        raise _unimplemented("health_status")

    @_placeholder
    def health_status_raw(self) -> Any:
        raise _unimplemented("health_status_raw")

    @_placeholder
    def init_metadata(self) -> dict[str, Any]:
        raise _unimplemented("init_metadata")


__all__ = ["SeldonComponent", "SeldonNotImplementedError", "SeldonResponse"]
