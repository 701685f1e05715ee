"""One normalized routing meaning, read back from each rendering of a SeldonDeployment's ingress.

The local gateway's RouteConfiguration (xds_controller), the Istio VirtualService and DestinationRules,
and the Gateway API HTTPRoute and GRPCRoute are each reduced to the same `Meaning`: per route (by name, in
match order) what it matches, which predictor a pin requires, the split's weights as fractions, the
mirrored predictors with their percentage, the `Seldon-Predictor` response header per destination, the
timeout and the retries; and what a sticky header's hash picks. Each reducer checks, as it reads, what
the meaning leaves out: that a destination is the named predictor's Service on the transport's port.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from envoy.config.route.v3 import route_pb2
from google.protobuf import duration_pb2

from mesh.spec import SeldonDeployment

PIN = "seldon-predictor"
HEADER = "Seldon-Predictor"
PORTS = {"http": 8000, "grpc": 5001}

# ("rest", path prefix without its trailing slash, rewritten to) or ("grpc", path regex, required headers)
Match = tuple[str, str, tuple[tuple[str, str], ...] | str]
Retries = tuple[int, str, int | None]


@dataclass(frozen=True)
class Route:
    name: str
    match: Match
    pinned: str | None
    weights: tuple[tuple[str, Fraction], ...]
    mirrors: tuple[tuple[str, int], ...]
    predictor_header: tuple[tuple[str, str], ...]  # (destination predictor, header value)
    timeout_ms: int | None
    retries: Retries | None  # None: the API has no retries


@dataclass(frozen=True)
class Meaning:
    routes: tuple[Route, ...]
    sticky: tuple[str, str] | None  # (header, what its hash picks: "predictor" or "replica")


def _weights(pairs: Sequence[tuple[str, int]]) -> tuple[tuple[str, Fraction], ...]:
    total = sum(weight for _, weight in pairs)
    return tuple(sorted((name, Fraction(weight, total)) for name, weight in pairs))


def _retries(attempts: int, retry_on: str, per_try_ms: int | None) -> Retries:
    # With no retries, the conditions and the per-try timeout mean nothing.
    return (0, "", None) if attempts == 0 else (attempts, retry_on, per_try_ms)


def _millis(duration: duration_pb2.Duration) -> int:
    return duration.seconds * 1000 + duration.nanos // 1_000_000


# --- the local gateway (xds_controller) -------------------------------------------------------------


def _cluster_predictor(cluster: str, transport: str) -> str:
    _, _, predictor, _, suffix = cluster.split(".")  # <ns>.<deployment>.<predictor>.<node>.<transport>
    assert suffix == transport, cluster
    return predictor


def _envoy_header(headers: Sequence[Any]) -> str | None:
    values = [h.header.value for h in headers if h.header.key == HEADER]
    return values[0] if values else None


def envoy_meaning(config: route_pb2.RouteConfiguration, deployment: SeldonDeployment) -> Meaning:
    meta = deployment.metadata
    host = config.virtual_hosts[0]
    routes, sticky = [], None
    for route in host.routes:
        if not route.name.startswith(f"{meta.namespace}.{meta.name}.") or route.HasField("direct_response"):
            continue  # (a direct response, the size limit's 413, routes nowhere)
        transport = route.name.rsplit(".", 1)[1]
        action = route.route
        headers = {h.name: h.string_match.exact for h in route.match.headers}
        pinned = headers.pop(PIN, None)
        match: Match
        if transport == "grpc":
            assert route.match.HasField("grpc")
            match = ("grpc", route.match.safe_regex.regex, tuple(sorted(headers.items())))
        else:
            assert not headers
            match = ("rest", route.match.prefix.rstrip("/"), action.prefix_rewrite)
        if action.HasField("weighted_clusters"):
            clusters = action.weighted_clusters.clusters
            weights = [(_cluster_predictor(c.name, transport), c.weight.value) for c in clusters]
            named = [
                (_cluster_predictor(c.name, transport), _envoy_header(c.response_headers_to_add))
                for c in clusters
            ]
            if action.weighted_clusters.use_hash_policy.value:
                (policy,) = action.hash_policy
                sticky = (policy.header.header_name, "predictor")
        else:
            predictor = _cluster_predictor(action.cluster, transport)
            weights = [(predictor, 1)]
            named = [(predictor, _envoy_header(route.response_headers_to_add))]
        mirrors = []
        for mirror in action.request_mirror_policies:
            percent = 100
            if mirror.HasField("runtime_fraction"):
                fraction = mirror.runtime_fraction.default_value
                assert fraction.denominator == fraction.HUNDRED
                percent = fraction.numerator
            mirrors.append((_cluster_predictor(mirror.cluster, transport), percent))
        retry = action.retry_policy if action.HasField("retry_policy") else host.retry_policy
        per_try = _millis(retry.per_try_timeout) if retry.HasField("per_try_timeout") else None
        routes.append(
            Route(
                name=route.name,
                match=match,
                pinned=pinned,
                weights=_weights(weights),
                mirrors=tuple(sorted(mirrors)),
                predictor_header=tuple(sorted((p, v or "") for p, v in named)),
                # 0 s is Envoy's "no timeout", what Istio and Gateway API mean by leaving it out.
                timeout_ms=(_millis(action.timeout) or None) if action.HasField("timeout") else None,
                retries=_retries(retry.num_retries.value, retry.retry_on, per_try),
            )
        )
    return Meaning(tuple(routes), sticky)


# --- Istio --------------------------------------------------------------------------------------------


def _istio_millis(text: str) -> int:
    assert text.endswith("s") and not text.endswith("ms"), text
    return int(Fraction(text[:-1]) * 1000)


def _istio_predictor(destination: Mapping[str, Any], transport: str, hosts: Mapping[str, str]) -> str:
    predictor = str(destination["subset"])
    assert destination["host"] == hosts[predictor], destination
    assert destination["port"] == {"number": PORTS[transport]}, destination
    return predictor


def _istio_header(headers: Mapping[str, Any] | None) -> str:
    return str(((headers or {}).get("response") or {}).get("set", {}).get(HEADER, ""))


def istio_meaning(manifests: Sequence[Mapping[str, Any]], gateway: str) -> Meaning:
    rules = [m for m in manifests if m["kind"] == "DestinationRule"]
    (service,) = [m for m in manifests if m["kind"] == "VirtualService"]
    assert service["spec"]["hosts"] == ["*"] and service["spec"]["gateways"] == [gateway]
    hosts = {s["name"]: r["spec"]["host"] for r in rules for s in r["spec"]["subsets"]}
    routes = []
    for route in service["spec"]["http"]:
        if "directResponse" in route:  # the repository 404s: compared by their own test
            continue
        transport = route["name"].rsplit(".", 1)[1]
        (match,) = route["match"]
        headers = {k: v["exact"] for k, v in match.get("headers", {}).items() if k != "content-type"}
        pinned = headers.pop(PIN, None)
        if transport == "grpc":
            assert match["headers"]["content-type"] == {"prefix": "application/grpc"}
            matched: Match = ("grpc", match["uri"]["regex"], tuple(sorted(headers.items())))
        else:
            assert not headers
            matched = ("rest", match["uri"]["prefix"].rstrip("/"), route["rewrite"]["uri"])
        destinations = route["route"]
        weights = [
            (_istio_predictor(d["destination"], transport, hosts), d.get("weight", 100)) for d in destinations
        ]
        if len(destinations) == 1:
            named = [(weights[0][0], _istio_header(route.get("headers")))]
        else:
            named = [
                (p, _istio_header(d.get("headers"))) for (p, _), d in zip(weights, destinations, strict=True)
            ]
        mirrors = [
            (_istio_predictor(m["destination"], transport, hosts), m["percentage"]["value"])
            for m in route.get("mirrors", [])
        ]
        retries = route["retries"]
        per_try = retries.get("perTryTimeout")
        routes.append(
            Route(
                name=route["name"],
                match=matched,
                pinned=pinned,
                weights=_weights(weights),
                mirrors=tuple(sorted(mirrors)),
                predictor_header=tuple(sorted(named)),
                timeout_ms=_istio_millis(route["timeout"]) if "timeout" in route else None,
                retries=_retries(
                    retries["attempts"],
                    retries.get("retryOn", ""),
                    _istio_millis(per_try) if per_try else None,
                ),
            )
        )
    hashes = {
        r["spec"]["trafficPolicy"]["loadBalancer"].get("consistentHash", {}).get("httpHeaderName")
        for r in rules
    }
    assert len(hashes) == 1, hashes  # every predictor of a deployment is sticky, or none
    header = hashes.pop()
    return Meaning(tuple(routes), (header, "replica") if header else None)


# --- Gateway API --------------------------------------------------------------------------------------

_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


def gateway_millis(text: str) -> int:
    return sum(int(n) * _UNIT_MS[unit] for n, unit in re.findall(r"([0-9]+)(h|ms|m|s)", text))


def _gateway_predictor(ref: Mapping[str, Any], transport: str, services: Mapping[str, str]) -> str:
    assert ref["port"] == PORTS[transport], ref
    return services[ref["name"]]


def _set_header(filters: Sequence[Mapping[str, Any]]) -> str:
    values = [
        h["value"]
        for f in filters
        if f["type"] == "ResponseHeaderModifier"
        for h in f["responseHeaderModifier"]["set"]
        if h["name"] == HEADER
    ]
    return values[0] if values else ""


def _assert_pins_take_precedence(rules: Sequence[Mapping[str, Any]]) -> None:
    """Gateway API rules are not ordered: among equal paths and methods, the match with more header
    matches wins. A pinned rule must have more than the split, so the pin comes first, as it does locally."""
    counts = [len(rule["matches"][0].get("headers", [])) for rule in rules]
    assert all(count > counts[-1] for count in counts[:-1]), counts


def gateway_meaning(
    manifests: Sequence[Mapping[str, Any]], services: Mapping[str, str], parent: Mapping[str, str]
) -> Meaning:
    """`services`: predictor Service name -> predictor."""
    routes = []
    for kind, transport in (("GRPCRoute", "grpc"), ("HTTPRoute", "http")):
        (manifest,) = [m for m in manifests if m["kind"] == kind]
        assert manifest["spec"]["parentRefs"] == [parent]
        _assert_pins_take_precedence(manifest["spec"]["rules"])
        for rule in manifest["spec"]["rules"]:
            (match,) = rule["matches"]
            headers = {h["name"]: h["value"] for h in match.get("headers", []) if h["type"] == "Exact"}
            pinned = headers.pop(PIN, None)
            filters = rule.get("filters", [])
            if transport == "grpc":
                method = match["method"]
                assert method["type"] == "RegularExpression" and "method" not in method
                matched: Match = ("grpc", f"/{method['service']}/[^/]+", tuple(sorted(headers.items())))
            else:
                assert match["path"]["type"] == "PathPrefix" and not headers
                (rewrite,) = [f["urlRewrite"]["path"] for f in filters if f["type"] == "URLRewrite"]
                assert rewrite["type"] == "ReplacePrefixMatch"
                matched = ("rest", match["path"]["value"].rstrip("/"), rewrite["replacePrefixMatch"])
            refs = rule["backendRefs"]
            weights = [(_gateway_predictor(r, transport, services), r.get("weight", 1)) for r in refs]
            if len(refs) == 1:
                named = [(weights[0][0], _set_header(filters))]
            else:
                named = [
                    (p, _set_header(r.get("filters", []))) for (p, _), r in zip(weights, refs, strict=True)
                ]
            mirrors = [
                (
                    _gateway_predictor(f["requestMirror"]["backendRef"], transport, services),
                    f["requestMirror"]["percent"],
                )
                for f in filters
                if f["type"] == "RequestMirror"
            ]
            timeout = rule.get("timeouts", {}).get("request")
            routes.append(
                Route(
                    name=rule["name"],
                    match=matched,
                    pinned=pinned,
                    weights=_weights(weights),
                    mirrors=tuple(sorted(mirrors)),
                    predictor_header=tuple(sorted(named)),
                    timeout_ms=gateway_millis(timeout) if timeout else None,
                    retries=None,
                )
            )
    return Meaning(tuple(routes), None)
