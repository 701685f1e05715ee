"""The `seldon.io/*` annotations seldon-mesh acts on (reference 1.7) and the checks on their values.

Timeouts, retries and message sizes become Envoy route and cluster settings, so a bad value must be
rejected with its path rather than silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from mesh.spec.errors import FieldError, map_key
from mesh.spec.graph import parse_bool

REST_TIMEOUT = "seldon.io/rest-timeout"
GRPC_TIMEOUT = "seldon.io/grpc-timeout"
GRPC_MAX_MESSAGE_SIZE = "seldon.io/grpc-max-message-size"
RETRIES = "seldon.io/retries"
PER_TRY_TIMEOUT = "seldon.io/per-try-timeout"
ENGINE_SEPARATE_POD = "seldon.io/engine-separate-pod"
NO_ENGINE = "seldon.io/no-engine"
HEADLESS_SVC = "seldon.io/headless-svc"
SVC_NAME = "seldon.io/svc-name"
NO_STORAGE_INITIALIZER = "seldon.io/no-storage-initializer"
LOGGER_QUEUE_SIZE = "seldon.io/executor-logger-queue-size"
LOGGER_WRITE_TIMEOUT_MS = "seldon.io/executor-logger-write-timeout-ms"

POSITIVE_INTEGERS = frozenset(
    {
        REST_TIMEOUT,
        GRPC_TIMEOUT,
        GRPC_MAX_MESSAGE_SIZE,
        RETRIES,
        PER_TRY_TIMEOUT,
        LOGGER_QUEUE_SIZE,
        LOGGER_WRITE_TIMEOUT_MS,
    }
)
FLAGS = frozenset({ENGINE_SEPARATE_POD, NO_ENGINE, HEADLESS_SVC, NO_STORAGE_INITIALIZER})


def is_set(annotations: Mapping[str, str], name: str) -> bool:
    """A flag annotation is on when its value is true-ish ("true", "yes", "1", ...)."""
    try:
        return parse_bool(annotations.get(name, "false"))
    except ValueError:
        return False


def check_annotations(annotations: Mapping[str, str], path: str) -> Iterator[FieldError]:
    for name, value in annotations.items():
        where = path + map_key(name)
        if name in POSITIVE_INTEGERS and not _is_positive_int(value):
            yield FieldError(where, f"must be a positive integer, got {value!r}")
        elif name in FLAGS:
            try:
                parse_bool(value)
            except ValueError as error:
                yield FieldError(where, str(error))


def _is_positive_int(value: str) -> bool:
    text = value.strip()
    return re.fullmatch(r"[0-9]+", text) is not None and int(text) > 0
