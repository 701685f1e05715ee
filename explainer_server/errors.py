"""The server's one error hierarchy, each with the HTTP status it is answered with (see `payloads`)."""

from __future__ import annotations


class ExplainerError(Exception):
    status = 500
    reason = "EXPLAINER_ERROR"


class BadRequest(ExplainerError):
    status = 400
    reason = "BAD_REQUEST"


class NotFound(ExplainerError):
    status = 404
    reason = "NOT_FOUND"


class ModelUnavailable(ExplainerError):
    """The predictor's model did not answer (down, not ready, unreachable): Seldon's 503."""

    status = 503
    reason = "MODEL_UNAVAILABLE"


class ModelTimeout(ExplainerError):
    status = 504
    reason = "MODEL_TIMEOUT"


class ModelRefused(ExplainerError):
    """The model answered an error for the explainer's request (a 4xx: the input does not fit it)."""

    status = 400
    reason = "MODEL_REFUSED"


class ConfigError(ExplainerError):
    """The explainer cannot be built from its spec: the component fails to load, with this reason."""

    reason = "LOAD_FAILED"


class ExplainerNotReady(ExplainerError):
    status = 503
    reason = "NOT_READY"


def root_cause(error: BaseException) -> ExplainerError | None:
    """Ours, when alibi wrapped one of our errors (it raises its own around a failed predictor call)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ExplainerError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
