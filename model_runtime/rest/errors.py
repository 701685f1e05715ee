"""The one place runtime errors become HTTP statuses and Seldon error bodies."""

from __future__ import annotations

from model_runtime.errors import (
    BadParameter,
    BadRequest,
    LoadError,
    NotFound,
    NotImplementedByComponent,
    NotReady,
    PayloadTooLarge,
    RuntimeFailure,
    UserCodeError,
    UserStatusError,
)

_HTTP_STATUS: dict[type[RuntimeFailure], int] = {
    BadRequest: 400,
    BadParameter: 400,
    NotFound: 404,
    PayloadTooLarge: 413,
    UserCodeError: 500,
    NotImplementedByComponent: 501,
    NotReady: 503,
    LoadError: 503,
}


def http_status(error: RuntimeFailure) -> int:
    if isinstance(error, UserStatusError):
        return error.status_code
    for cls in type(error).__mro__:
        if cls in _HTTP_STATUS:
            return _HTTP_STATUS[cls]
    return 500
