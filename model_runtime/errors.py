"""The one error hierarchy of the model runtime.

Everything below the transport edges raises these; `rest.app` maps them to an HTTP status plus the Seldon
error JSON and `rpc.server` maps them to a gRPC status code, each in exactly one place.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """The `status.reason` strings Seldon clients already recognise."""

    BAD_DATA = "MICROSERVICE_BAD_DATA"
    BAD_PARAMETER = "MICROSERVICE_BAD_PARAMETER"
    INTERNAL_ERROR = "MICROSERVICE_INTERNAL_ERROR"
    NOT_READY = "MICROSERVICE_NOT_READY"
    LOAD_FAILED = "MICROSERVICE_LOAD_FAILED"
    NOT_IMPLEMENTED = "MICROSERVICE_NOT_IMPLEMENTED"
    NOT_FOUND = "MICROSERVICE_NOT_FOUND"
    TOO_LARGE = "MICROSERVICE_PAYLOAD_TOO_LARGE"


class RuntimeFailure(Exception):
    """Base class: a message for the caller and a Seldon reason."""

    reason: str = Reason.INTERNAL_ERROR

    def __init__(self, info: str) -> None:
        super().__init__(info)
        self.info = info


class BadRequest(RuntimeFailure):
    """The payload cannot be decoded or does not fit the model (HTTP 400, INVALID_ARGUMENT)."""

    reason = Reason.BAD_DATA


class BadParameter(RuntimeFailure):
    """A graph parameter cannot be converted to its declared type (a startup error)."""

    reason = Reason.BAD_PARAMETER


class UserCodeError(RuntimeFailure):
    """The user's component raised (HTTP 500, INTERNAL)."""

    reason = Reason.INTERNAL_ERROR


class NotReady(RuntimeFailure):
    """The model is still loading or failed to load (HTTP 503, UNAVAILABLE)."""

    reason = Reason.NOT_READY


class NotImplementedByComponent(RuntimeFailure):
    """The component has no method for this endpoint (HTTP 501, UNIMPLEMENTED)."""

    reason = Reason.NOT_IMPLEMENTED


class NotFound(RuntimeFailure):
    """An unknown model name or path (HTTP 404, NOT_FOUND)."""

    reason = Reason.NOT_FOUND


class PayloadTooLarge(RuntimeFailure):
    """The request body is over the configured limit (HTTP 413, RESOURCE_EXHAUSTED)."""

    reason = Reason.TOO_LARGE


class LoadError(RuntimeFailure):
    """The model or user class could not be loaded; the text is shown by `/ready` (HTTP 503, UNAVAILABLE)."""

    reason = Reason.LOAD_FAILED


class UserStatusError(RuntimeFailure):
    """User code raised an exception carrying its own HTTP `status_code` and `reason`, as Seldon's
    `SeldonMicroserviceException` does (400 and MICROSERVICE_BAD_DATA unless given). `body`, when set, is
    the whole response a user's `model_error_handler` made, sent as it is with `content_type`."""

    def __init__(
        self,
        info: str,
        status_code: int,
        reason: str = Reason.BAD_DATA,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> None:
        super().__init__(info)
        self.status_code = status_code
        self.reason = reason
        self.body = body
        self.content_type = content_type
