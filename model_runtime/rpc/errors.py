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


def grpc_status(error: RuntimeFailure) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _GRPC_STATUS:
            return _GRPC_STATUS[cls]
    return grpc.StatusCode.INTERNAL
