"""Gateway API ingress: one HTTPRoute (REST) and one GRPCRoute per SeldonDeployment (standard channel, v1).

Both attach to the Gateway `settings.gateway_api_parent` and spell out `routing.rules` as named rules: a
`Seldon-Predictor` header pin per predictor (more header matches take precedence over the split, as the
API's rule precedence orders them), the split as `backendRefs` weights, every shadow as a `RequestMirror`
filter with its `percent`, `Seldon-Predictor` set on each response (on the rule, or on each backendRef of a
split). REST matches the `/seldon/<ns>/<name>` path prefix and rewrites it to `/` (URLRewrite,
ReplacePrefixMatch); gRPC matches the `seldon` and `namespace` headers and Seldon's services by regular
expression (implementation-specific support in the API).

What the standard API cannot express, and is left to the gateway implementation's defaults:
- retries (neither route kind has them in the standard channel; the local gateway retries
  `seldon.io/retries` times on `seldon.io/retry-on`); `seldon.io/per-try-timeout` becomes the REST
  rule's `timeouts.backendRequest`, one try's timeout, which without retries is the whole request's;
- timeouts on gRPC (GRPCRoute has no `timeouts`): `seldon.io/grpc-timeout` is not rendered;
- sticky splitting (`seldon.io/sticky-header`): no session persistence in the standard channel;
- outlier ejection, circuit-breaker limits and retry budgets: no standard policy for them;
- the request limit's 413 at the gateway (the local gateway, and Istio's VirtualService, answer a REST
  request whose Content-Length is over `seldon.io/grpc-max-message-size` at once): a rule can match the
  header by regular expression, but the API has no direct response, so no rule can answer by itself. The
  limit is kept behind the route instead: the runtime's `--max-request-bytes` / `--grpc-max-message-bytes`
  and extproc read the same annotation and answer 413 / RESOURCE_EXHAUSTED in the protocol's shape, once
  the gateway has sent them the body.
The parent Gateway must give HTTPRoutes and GRPCRoutes separate listeners (`allowedRoutes.kinds`): on one
listener, the API accepts only one of an HTTPRoute and a GRPCRoute whose hostnames intersect. A route has
at most 16 rules, so at most 15 predictors can be pinned.
"""

from __future__ import annotations

from typing import Any

from mesh.render.labels import Manifest, object_meta
from mesh.render.names import ingress_name
from mesh.render.routing import (
    GRPC_SERVICE_REGEX,
    PINNING_HEADER,
    PREDICTOR_HEADER,
    Backend,
    Rule,
    Transport,
    rest_prefix,
    rules,
)
from mesh.render.settings import RenderSettings
from mesh.spec import SeldonDeployment

API_GROUP = "gateway.networking.k8s.io"
API_VERSION = f"{API_GROUP}/v1"
# GEP-2257 durations allow at most 5 digits per unit.
_UNITS = (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))
_MAX_HOURS = 99_999


def duration(millis: int) -> str:
    """Milliseconds as a Gateway API duration (`1m30s250ms`); past 99999 h (11 years), 99999 h."""
    if millis >= _MAX_HOURS * 3_600_000:
        return f"{_MAX_HOURS}h"
    parts = []
    for unit, size in _UNITS:
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parent_ref(settings: RenderSettings) -> dict[str, Any]:
    namespace, _, name = settings.gateway_api_parent.rpartition("/")
    ref: dict[str, Any] = {"group": API_GROUP, "kind": "Gateway", "name": name}
    if namespace:
        ref["namespace"] = namespace
    return ref


def _service_ref(backend: Backend, transport: Transport) -> dict[str, Any]:
    return {"name": backend.service, "port": transport.port}


def _set_predictor(predictor: str) -> dict[str, Any]:
    return {
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {"set": [{"name": PREDICTOR_HEADER, "value": predictor}]},
    }


def _mirror(backend: Backend, transport: Transport) -> dict[str, Any]:
    return {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": _service_ref(backend, transport), "percent": backend.share},
    }


def _backend_refs(rule: Rule) -> list[dict[str, Any]]:
    if len(rule.backends) == 1:
        return [_service_ref(rule.backends[0], rule.transport)]
    return [
        {
            **_service_ref(backend, rule.transport),
            "weight": backend.share,
            "filters": [_set_predictor(backend.predictor)],
        }
        for backend in rule.backends
    ]


def _filters(rule: Rule) -> list[dict[str, Any]]:
    filters = []
    if rule.transport is Transport.REST:
        rewrite = {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}
        filters.append({"type": "URLRewrite", "urlRewrite": rewrite})
    filters += [_mirror(mirror, rule.transport) for mirror in rule.mirrors]
    if len(rule.backends) == 1:
        filters.append(_set_predictor(rule.backends[0].predictor))
    return filters


def _pin(rule: Rule) -> list[dict[str, Any]]:
    return [{"type": "Exact", "name": PINNING_HEADER, "value": rule.pinned}] if rule.pinned else []


def _http_rule(deployment: SeldonDeployment, rule: Rule) -> dict[str, Any]:
    match: dict[str, Any] = {"path": {"type": "PathPrefix", "value": rest_prefix(deployment).rstrip("/")}}
    if rule.pinned:
        match["headers"] = _pin(rule)
    out: dict[str, Any] = {
        "name": rule.name,
        "matches": [match],
        "filters": _filters(rule),
        "backendRefs": _backend_refs(rule),
    }
    timeouts = {}
    if rule.timeout_ms is not None:
        timeouts["request"] = duration(rule.timeout_ms)
    per_try = rule.retries.per_try_timeout_ms
    if per_try is not None:
        # no longer than the request's (the API requires it; Envoy would stop at the request's anyway)
        timeouts["backendRequest"] = duration(min(per_try, rule.timeout_ms or per_try))
    if timeouts:
        out["timeouts"] = timeouts
    return out


def _grpc_rule(deployment: SeldonDeployment, rule: Rule) -> dict[str, Any]:
    meta = deployment.metadata
    headers = [
        {"type": "Exact", "name": "seldon", "value": meta.name},
        {"type": "Exact", "name": "namespace", "value": meta.namespace},
        *_pin(rule),
    ]
    match = {"method": {"type": "RegularExpression", "service": GRPC_SERVICE_REGEX}, "headers": headers}
    return {
        "name": rule.name,
        "matches": [match],
        "filters": _filters(rule),
        "backendRefs": _backend_refs(rule),
    }


def _route(deployment: SeldonDeployment, settings: RenderSettings, kind: str, rules_: list[Any]) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": object_meta(deployment, settings, ingress_name(deployment)),
        "spec": {"parentRefs": [parent_ref(settings)], "rules": rules_},
    }


def render_gateway_api(deployment: SeldonDeployment, settings: RenderSettings) -> list[Manifest]:
    every = rules(deployment)
    http = [_http_rule(deployment, r) for r in every if r.transport is Transport.REST]
    grpc = [_grpc_rule(deployment, r) for r in every if r.transport is Transport.GRPC]
    return [
        _route(deployment, settings, "HTTPRoute", http),
        _route(deployment, settings, "GRPCRoute", grpc),
    ]
