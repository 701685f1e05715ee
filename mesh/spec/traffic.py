"""Traffic policy of one deployment, read from its `seldon.io/*` annotations: timeouts, retries, message
size and sticky splitting, each with the default that suits a model server.

Here in `mesh.spec` because every rendering of the same spec must read it the same way: xds_controller
programs Envoy with it locally (`xds_controller.translate.policy` re-exports it), and `mesh.render` writes
it into Istio and Gateway API routes. `annotations.check_annotations` validates the values (so a bad value
never gets here from a parsed spec); this module only reads them, falling back to the default for anything
it cannot read, because rendering is pure and never fails on a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mesh.spec import annotations as names

# Two retries: a replica that answers 503 (busy, restarting) or resets a stream is tried twice more,
# preferably on another replica, before the client sees the error.
DEFAULT_RETRIES = 2
# Envoy buffers a request body up to this for retries and shadows when no message size is annotated
# (its per-connection default, 1 MiB, would quietly turn off retries for a larger request).
DEFAULT_BUFFER_BYTES = 4 * 2**20
# The one request-size limit of every route, REST and gRPC, single models and graphs alike, unless
# `seldon.io/grpc-max-message-size` sets it: Seldon's executor default for that annotation (MaxInt32),
# also the largest message gRPC carries. Seldon's executor reads REST bodies without a limit.
DEFAULT_REQUEST_LIMIT_BYTES = 2**31 - 1


@dataclass(frozen=True)
class TrafficPolicy:
    """Per-deployment route and cluster settings. Durations in milliseconds, sizes in bytes; None means
    not annotated, and each rendering keeps its platform's default (Envoy over xDS: route timeout 15 s,
    per-try timeout = the route timeout; Istio: no timeout)."""

    rest_timeout_ms: int | None = None
    grpc_timeout_ms: int | None = None
    per_try_timeout_ms: int | None = None
    retries: int = DEFAULT_RETRIES
    retry_on: str = names.DEFAULT_RETRY_ON
    max_message_bytes: int | None = None
    sticky_header: str | None = None

    @property
    def buffer_bytes(self) -> int:
        return max(self.max_message_bytes or 0, DEFAULT_BUFFER_BYTES)

    @property
    def request_limit_bytes(self) -> int:
        """Largest request (and answer) in bytes: 413 / RESOURCE_EXHAUSTED above it."""
        return min(self.max_message_bytes or DEFAULT_REQUEST_LIMIT_BYTES, DEFAULT_REQUEST_LIMIT_BYTES)


def _millis(raw: str | None) -> int | None:
    if raw is None or not raw.strip().isdigit() or int(raw) <= 0:
        return None
    return int(raw)


def policy_of(annotations: Mapping[str, str]) -> TrafficPolicy:
    retries = annotations.get(names.RETRIES, "")
    retry_on = names.retry_on_tokens(annotations.get(names.RETRY_ON, ""))
    sticky = annotations.get(names.STICKY_HEADER, "").strip().lower()
    return TrafficPolicy(
        rest_timeout_ms=_millis(annotations.get(names.REST_TIMEOUT)),
        grpc_timeout_ms=_millis(annotations.get(names.GRPC_TIMEOUT)),
        per_try_timeout_ms=_millis(annotations.get(names.PER_TRY_TIMEOUT)),
        retries=min(int(retries), names.MAX_RETRIES) if retries.strip().isdigit() else DEFAULT_RETRIES,
        retry_on=",".join(retry_on) if retry_on else names.DEFAULT_RETRY_ON,
        max_message_bytes=_millis(annotations.get(names.GRPC_MAX_MESSAGE_SIZE)),
        sticky_header=sticky or None,
    )
