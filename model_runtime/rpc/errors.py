"""The one place runtime errors become gRPC status codes."""

from __future__ import annotations

import grpc

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

_GRPC_STATUS: dict[type[RuntimeFailure], grpc.StatusCode] = {
    BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    BadParameter: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UserCodeError: grpc.StatusCode.INTERNAL,
    NotImplementedByComponent: grpc.StatusCode.UNIMPLEMENTED,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    LoadError: grpc.StatusCode.UNAVAILABLE,
}


# a user exception's HTTP status_code, as gRPC says it (the mapping of grpc-gateway and Envoy)
_FROM_HTTP: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_status(error: RuntimeFailure) -> grpc.StatusCode:
    if isinstance(error, UserStatusError):
        code = error.status_code
        fallback = grpc.StatusCode.FAILED_PRECONDITION if 400 <= code < 500 else grpc.StatusCode.INTERNAL
        return _FROM_HTTP.get(code, fallback)
    for cls in type(error).__mro__:
        if cls in _GRPC_STATUS:
            return _GRPC_STATUS[cls]
    return grpc.StatusCode.INTERNAL
