"""Istio ingress: one VirtualService per SeldonDeployment and one DestinationRule per predictor Service.

The VirtualService binds to `settings.istio_gateway` for every host and spells out `routing.rules`: named
routes, gRPC first (the `seldon` and `namespace` headers, Seldon's service regex), then REST (the
`/seldon/<ns>/<name>/` prefix rewritten to `/`); a `Seldon-Predictor` header pin per predictor before each
split; the split as destination weights; every shadow in `mirrors[]` (Istio 1.22+); retries and timeouts
from the `seldon.io/*` annotations; `Seldon-Predictor` set on each response. Retries are always written
out, because a route without them gets Istio's own default policy rather than the deployment's. A
DestinationRule gives each predictor its subset (pods labelled `seldon-predictor: <name>`) and the local
gateway's cluster resilience: circuit-breaker limits, retry budget, outlier ejection, round robin.

What Istio cannot express, and what is rendered instead:
- Sticky splitting (`seldon.io/sticky-header`). Locally Envoy hashes the header to pick the predictor
  (`weighted_clusters.use_hash_policy`); Istio has no field for that: its `consistentHash` chooses an
  endpoint within the one subset a route destination already picked, and the weighted split stays random
  per request. Rendered: `loadBalancer.consistentHash.httpHeaderName`, so one header value keeps to one
  replica of each predictor, and no more. An EnvoyFilter could set `use_hash_policy` on the generated route,
  but it would have to live in the gateway's namespace (no owner reference across namespaces, so nothing
  collects it) and patch Istio's internal route layout: not rendered. Where a user must stay on one
  predictor, the seldon-mesh gateway ingress does it.
- The request body buffer Envoy keeps for retries and shadows (`request_body_buffer_limit`): Istio has no
  per-route field; the gateway's per-connection buffer applies.

As at the local gateway, the V2 repository extension (load, unload, index) is administration, not
inference: the VirtualService answers it 404 first (`directResponse`), so no client unloads a model.
Next, a REST request whose Content-Length is over the deployment's request limit (`seldon.io/grpc-max-
message-size`, 2 GiB - 1 without it) is answered 413 with its body unread, in V2's `{"error": ...}` on
`/v2/` paths and Seldon's error JSON elsewhere, as the local gateway answers it (Istio has no range match:
the length is matched by `routing.content_length_over`'s regular expression). A chunked body, and gRPC
messages, are bounded behind, by the runtime's `--max-request-bytes` / `--grpc-max-message-bytes` and by
extproc, which read the same annotation (413 / RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import json
from typing import Any

from mesh.render.labels import PREDICTOR_LABEL, Manifest, label_value, object_meta
from mesh.render.names import ingress_name, predictor_service, subset
from mesh.render.routing import (
    GRPC_PATH_REGEX,
    PINNING_HEADER,
    PREDICTOR_HEADER,
    Backend,
    Rule,
    Transport,
    content_length_over,
    request_limit,
    rest_prefix,
    rules,
    service_host,
    sticky_header,
)
from mesh.render.settings import RenderSettings
from mesh.spec import PredictorSpec, SeldonDeployment
from mesh.spec import annotations as annotation_names

API_VERSION = "networking.istio.io/v1"
# The local gateway's cluster resilience (xds_controller.translate.clusters; the agreement test compares
# them): limits a model runtime saturates long before, retries at most a fifth of the requests in flight,
# a replica failing 5 times in a row (3 connect failures or timeouts) out for 30 s, at most half at once.
CONNECT_TIMEOUT = "1s"
MAX_CONNECTIONS = 1024
MAX_PENDING_REQUESTS = 1024
MAX_REQUESTS = 1024
RETRY_BUDGET_PERCENT = 20
MIN_RETRY_CONCURRENCY = 8
CONSECUTIVE_5XX = 5
CONSECUTIVE_GATEWAY_ERRORS = 3
OUTLIER_INTERVAL = "5s"
BASE_EJECTION_TIME = "30s"
MAX_EJECTION_PERCENT = 50


def duration(millis: int) -> str:
    """Milliseconds as a protobuf JSON duration (`1.5s`), which Istio reads and its CEL rules accept."""
    seconds, rest = divmod(millis, 1000)
    return f"{seconds}.{rest:03d}".rstrip("0").rstrip(".") + "s"


def _destination(
    deployment: SeldonDeployment, backend: Backend, transport: Transport, settings: RenderSettings
) -> dict[str, Any]:
    predictor = _predictor(deployment, backend.predictor)
    return {
        "host": service_host(deployment, predictor, settings),
        "subset": subset(predictor),
        "port": {"number": transport.port},
    }


def _predictor(deployment: SeldonDeployment, name: str) -> PredictorSpec:
    found = deployment.predictor(name)
    assert found is not None, name  # routing.rules names only the deployment's own predictors
    return found


def _response_header(predictor: str) -> dict[str, Any]:
    return {"response": {"set": {PREDICTOR_HEADER: predictor}}}


def _match(deployment: SeldonDeployment, rule: Rule) -> dict[str, Any]:
    meta = deployment.metadata
    headers: dict[str, Any] = {}
    if rule.transport is Transport.GRPC:
        # `content-type: application/grpc...` is what Envoy's `grpc` route match checks locally.
        match: dict[str, Any] = {"uri": {"regex": GRPC_PATH_REGEX}}
        headers = {
            "content-type": {"prefix": "application/grpc"},
            "seldon": {"exact": meta.name},
            "namespace": {"exact": meta.namespace},
        }
    else:
        match = {"uri": {"prefix": rest_prefix(deployment)}}
    if rule.pinned:
        headers[PINNING_HEADER] = {"exact": rule.pinned}
    if headers:
        match["headers"] = headers
    return match


def _http_route(deployment: SeldonDeployment, rule: Rule, settings: RenderSettings) -> dict[str, Any]:
    route: dict[str, Any] = {"name": rule.name, "match": [_match(deployment, rule)]}
    if rule.transport is Transport.REST:
        route["rewrite"] = {"uri": "/"}
    destinations = []
    for backend in rule.backends:
        destination: dict[str, Any] = {
            "destination": _destination(deployment, backend, rule.transport, settings)
        }
        if len(rule.backends) > 1:
            destination["weight"] = backend.share
            destination["headers"] = _response_header(backend.predictor)
        destinations.append(destination)
    route["route"] = destinations
    if len(rule.backends) == 1:
        route["headers"] = _response_header(rule.backends[0].predictor)
    if rule.mirrors:
        route["mirrors"] = [
            {
                "destination": _destination(deployment, mirror, rule.transport, settings),
                "percentage": {"value": mirror.share},
            }
            for mirror in rule.mirrors
        ]
    retries: dict[str, Any] = {"attempts": rule.retries.attempts}
    if rule.retries.attempts > 0:
        retries["retryOn"] = rule.retries.retry_on
        if rule.retries.per_try_timeout_ms is not None:
            retries["perTryTimeout"] = duration(rule.retries.per_try_timeout_ms)
    route["retries"] = retries
    if rule.timeout_ms is not None:
        route["timeout"] = duration(rule.timeout_ms)
    return route


REPOSITORY_GRPC_PREFIX = "/inference.GRPCInferenceService/Repository"
NOT_FOUND_BODY = (
    '{"status":{"code":404,"info":"not served through the gateway","reason":"NOT_FOUND","status":"FAILURE"}}'
)


def repository_routes(deployment: SeldonDeployment) -> list[dict[str, Any]]:
    """The repository extension over REST and gRPC, answered 404 before any route reaches a runtime."""
    meta = deployment.metadata
    grpc_headers = {"seldon": {"exact": meta.name}, "namespace": {"exact": meta.namespace}}
    return [
        {
            "name": f"{meta.namespace}.{meta.name}.repository.rest",
            "match": [{"uri": {"prefix": rest_prefix(deployment) + "v2/repository"}}],
            "directResponse": {"status": 404, "body": {"string": NOT_FOUND_BODY}},
        },
        {
            "name": f"{meta.namespace}.{meta.name}.repository.grpc",
            "match": [{"uri": {"prefix": REPOSITORY_GRPC_PREFIX}, "headers": grpc_headers}],
            "directResponse": {"status": 404},
        },
    ]


# The local gateway's 413 message (xds_controller.translate.routes.TOO_LARGE_INFO; a test compares them).
TOO_LARGE_INFO = "request body over the {limit} byte limit (seldon.io/grpc-max-message-size)"


def too_large_routes(deployment: SeldonDeployment) -> list[dict[str, Any]]:
    """A REST request announcing a body over the deployment's limit: 413 at once, V2's shape on `/v2/`."""
    meta, limit, prefix = deployment.metadata, request_limit(deployment), rest_prefix(deployment)
    info = TOO_LARGE_INFO.format(limit=limit)
    seldon = {"status": {"code": 413, "info": info, "reason": "PAYLOAD_TOO_LARGE", "status": "FAILURE"}}
    answers = ((f"{prefix}v2/", ".v2", {"error": info}), (prefix, "", seldon))
    return [
        {
            "name": f"{meta.namespace}.{meta.name}.too-large{suffix}",
            "match": [
                {
                    "uri": {"prefix": matched},
                    "headers": {"content-length": {"regex": content_length_over(limit)}},
                }
            ],
            "directResponse": {"status": 413, "body": {"string": json.dumps(body, separators=(",", ":"))}},
            "headers": {"response": {"set": {"content-type": "application/json"}}},
        }
        for matched, suffix, body in answers
    ]


def virtual_service(deployment: SeldonDeployment, settings: RenderSettings) -> Manifest:
    routes = [_http_route(deployment, rule, settings) for rule in rules(deployment)]
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualService",
        "metadata": object_meta(deployment, settings, ingress_name(deployment)),
        "spec": {
            "hosts": ["*"],
            # Seldon's per-deployment `seldon.io/istio-gateway`, else the cluster's setting.
            "gateways": [
                deployment.annotations.get(annotation_names.ISTIO_GATEWAY) or settings.istio_gateway
            ],
            "http": [*repository_routes(deployment), *too_large_routes(deployment), *routes],
        },
    }


def _traffic_policy(sticky: str | None) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "connectionPool": {
            "tcp": {"maxConnections": MAX_CONNECTIONS, "connectTimeout": CONNECT_TIMEOUT},
            "http": {"http1MaxPendingRequests": MAX_PENDING_REQUESTS, "http2MaxRequests": MAX_REQUESTS},
        },
        "retryBudget": {"percent": RETRY_BUDGET_PERCENT, "minRetryConcurrency": MIN_RETRY_CONCURRENCY},
        "outlierDetection": {
            "consecutive5xxErrors": CONSECUTIVE_5XX,
            "consecutiveGatewayErrors": CONSECUTIVE_GATEWAY_ERRORS,
            "interval": OUTLIER_INTERVAL,
            "baseEjectionTime": BASE_EJECTION_TIME,
            "maxEjectionPercent": MAX_EJECTION_PERCENT,
        },
    }
    if sticky:
        # Within the subset only: see the module docstring.
        policy["loadBalancer"] = {"consistentHash": {"httpHeaderName": sticky}}
    else:
        policy["loadBalancer"] = {"simple": "ROUND_ROBIN"}
    return policy


def destination_rules(deployment: SeldonDeployment, settings: RenderSettings) -> list[Manifest]:
    """One DestinationRule per predictor Service (named after it, as Seldon does), one subset for each
    predictor behind it: two predictors share a Service only when `seldon.io/svc-name` says so."""
    by_service: dict[str, list[PredictorSpec]] = {}
    for predictor in deployment.spec.predictors:
        by_service.setdefault(predictor_service(deployment, predictor), []).append(predictor)
    sticky = sticky_header(deployment)
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "DestinationRule",
            "metadata": object_meta(deployment, settings, service),
            "spec": {
                "host": service_host(deployment, predictors[0], settings),
                "trafficPolicy": _traffic_policy(sticky),
                "subsets": [
                    {"name": subset(p), "labels": {PREDICTOR_LABEL: label_value(p.name)}} for p in predictors
                ],
            },
        }
        for service, predictors in by_service.items()
    ]


def render_istio(deployment: SeldonDeployment, settings: RenderSettings) -> list[Manifest]:
    return [*destination_rules(deployment, settings), virtual_service(deployment, settings)]
