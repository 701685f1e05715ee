"""The `seldon.io/*` annotations seldon-mesh acts on (reference 1.7) and the checks on their values.

Timeouts, retries, message sizes and sticky splitting become Envoy route and cluster settings, so a bad
value must be rejected with its path rather than silently ignored. Deployment-wide annotations are
`metadata.annotations` overlaid by `spec.annotations` (see `SeldonDeployment.annotations`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from mesh.spec.errors import FieldError, map_key
from mesh.spec.graph import parse_bool

REST_TIMEOUT = "seldon.io/rest-timeout"  # ms, the REST route's whole-request timeout
GRPC_TIMEOUT = "seldon.io/grpc-timeout"  # ms, the gRPC route's whole-request timeout
GRPC_MAX_MESSAGE_SIZE = "seldon.io/grpc-max-message-size"  # bytes, largest request or response
RETRIES = "seldon.io/retries"  # count of retries after the first try; 0 turns retrying off
RETRY_ON = "seldon.io/retry-on"  # comma-separated Envoy retry_on / retry-grpc-on tokens
PER_TRY_TIMEOUT = "seldon.io/per-try-timeout"  # ms, one try's timeout
STICKY_HEADER = "seldon.io/sticky-header"  # request header whose value keeps a user on one predictor
ENGINE_SEPARATE_POD = "seldon.io/engine-separate-pod"
NO_ENGINE = "seldon.io/no-engine"
HEADLESS_SVC = "seldon.io/headless-svc"
SVC_NAME = "seldon.io/svc-name"
NO_STORAGE_INITIALIZER = "seldon.io/no-storage-initializer"
LOGGER_QUEUE_SIZE = "seldon.io/executor-logger-queue-size"
LOGGER_WRITE_TIMEOUT_MS = "seldon.io/executor-logger-write-timeout-ms"

ISTIO_GATEWAY = "seldon.io/istio-gateway"  # `namespace/name` of the Istio Gateway for this deployment
PAYLOAD_LOG_STREAM = "seldon.io/payload-log-stream"  # log a single model over ext_proc, not in process
ROUTING_INJECTION = "seldon.io/routing-injection"
CONTROLLER_ID = "seldon.io/controller-id"  # a label: which operator owns the deployment

# Seldon annotations accepted and not acted on, with the reason apply gives.
NO_EFFECT = {
    ENGINE_SEPARATE_POD: "seldon-mesh runs no engine pod: Envoy routes, extproc runs graphs",
    LOGGER_QUEUE_SIZE: "payload logs are written to a disk spool, not queued in memory",
    LOGGER_WRITE_TIMEOUT_MS: "payload logs are written to a disk spool and delivered with retries",
    "seldon.io/engine-java-opts": "seldon-mesh runs no Java engine",
    "seldon.io/rest-read-timeout": "use seldon.io/rest-timeout",
    "seldon.io/rest-connection-timeout": "use seldon.io/rest-timeout",
    "seldon.io/grpc-read-timeout": "use seldon.io/grpc-timeout",
}

# What a 503 from an overloaded runtime, a refused connection or a reset stream is retried on when
# `seldon.io/retry-on` is not given: failures where the model never saw the request, or said it was busy.
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,5xx"

# Envoy's x-envoy-retry-on tokens (HTTP) and x-envoy-retry-grpc-on tokens (gRPC status names); both
# kinds go in one RetryPolicy.retry_on.
HTTP_RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "http3-post-connect-failure",
    }
)
GRPC_RETRY_ON = frozenset({"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"})
RETRY_ON_TOKENS = HTTP_RETRY_ON | GRPC_RETRY_ON

POSITIVE_INTEGERS = frozenset(
    {
        REST_TIMEOUT,
        GRPC_TIMEOUT,
        GRPC_MAX_MESSAGE_SIZE,
        PER_TRY_TIMEOUT,
        LOGGER_QUEUE_SIZE,
        LOGGER_WRITE_TIMEOUT_MS,
    }
)
NON_NEGATIVE_INTEGERS = frozenset({RETRIES})
FLAGS = frozenset({ENGINE_SEPARATE_POD, HEADLESS_SVC, NO_STORAGE_INITIALIZER})
# Flags Seldon reads by presence alone: any value, even "false", turns them on.
PRESENCE_FLAGS = frozenset({NO_ENGINE})
# Envoy caps retries per route at this many; more would only queue behind a failing runtime.
MAX_RETRIES = 10
# HTTP/2 flow-control windows are at most 2^31-1 bytes, so no message can be larger than that.
MAX_MESSAGE_SIZE = 2**31 - 1
# An HTTP header name (RFC 9110 token), lower-cased on the wire by Envoy.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def is_set(annotations: Mapping[str, str], name: str) -> bool:
    """A flag annotation is on when its value is true-ish ("true", "yes", "1", ...); a presence flag
    (`seldon.io/no-engine`) whenever it is there."""
    if name in PRESENCE_FLAGS:
        return name in annotations
    try:
        return parse_bool(annotations.get(name, "false"))
    except ValueError:
        return False


def retry_on_tokens(value: str) -> list[str]:
    """The tokens of a `seldon.io/retry-on` value, stripped, empty items dropped."""
    return [token.strip() for token in value.split(",") if token.strip()]


def check_annotations(annotations: Mapping[str, str], path: str) -> Iterator[FieldError]:
    for name, value in annotations.items():
        where = path + map_key(name)
        if name in POSITIVE_INTEGERS and not _is_int(value, minimum=1):
            yield FieldError(where, f"must be a positive integer, got {value!r}")
        elif name in NON_NEGATIVE_INTEGERS and not _is_int(value, minimum=0):
            yield FieldError(where, f"must be a non-negative integer, got {value!r}")
        elif name == RETRIES and int(value) > MAX_RETRIES:
            yield FieldError(where, f"at most {MAX_RETRIES} retries, got {value}")
        elif name == GRPC_MAX_MESSAGE_SIZE and int(value) > MAX_MESSAGE_SIZE:
            yield FieldError(where, f"at most {MAX_MESSAGE_SIZE} bytes (2^31-1), got {value}")
        elif name == RETRY_ON:
            yield from _check_retry_on(value, where)
        elif name == STICKY_HEADER and (not isinstance(value, str) or not _HEADER_NAME.fullmatch(value)):
            yield FieldError(where, f"must be an HTTP header name, got {value!r}")
        elif name in FLAGS:
            try:
                parse_bool(value)
            except ValueError as error:
                yield FieldError(where, str(error))


def _check_retry_on(value: str, where: str) -> Iterator[FieldError]:
    if not isinstance(value, str) or not retry_on_tokens(value):
        yield FieldError(where, f"must be a comma-separated list of retry conditions, got {value!r}")
        return
    unknown = [token for token in retry_on_tokens(value) if token not in RETRY_ON_TOKENS]
    if unknown:
        known = ", ".join(sorted(RETRY_ON_TOKENS))
        yield FieldError(where, f"unknown retry condition(s) {', '.join(map(repr, unknown))}; known: {known}")


def _is_int(value: str, minimum: int) -> bool:
    if not isinstance(value, str):
        return False
    text = value.strip()
    return re.fullmatch(r"[0-9]+", text) is not None and int(text) >= minimum


def annotation_warnings(annotations: Mapping[str, str], path: str) -> Iterator[FieldError]:
    """`seldon.io/*` annotations that change nothing here (named, with the reason), and ones no version
    of Seldon or seldon-mesh reads (a misspelling, most likely)."""
    for name in annotations:
        if not name.startswith("seldon.io/"):
            continue
        where = path + map_key(name)
        if name in NO_EFFECT:
            yield FieldError(where, f"has no effect: {NO_EFFECT[name]}")
        elif name not in READ:
            yield FieldError(where, "not an annotation seldon-mesh reads, ignored")


READ = frozenset(
    {
        REST_TIMEOUT,
        GRPC_TIMEOUT,
        GRPC_MAX_MESSAGE_SIZE,
        RETRIES,
        RETRY_ON,
        PER_TRY_TIMEOUT,
        STICKY_HEADER,
        NO_ENGINE,
        HEADLESS_SVC,
        SVC_NAME,
        NO_STORAGE_INITIALIZER,
        ISTIO_GATEWAY,
        PAYLOAD_LOG_STREAM,
        ROUTING_INJECTION,
        CONTROLLER_ID,
    }
)
