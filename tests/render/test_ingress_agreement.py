"""The Istio and Gateway API renderings route as the local gateway does, for the same SeldonDeployment.

For each spec of a corpus (canary, 3-way split, shadows with percentages, a sticky header, retries and
timeouts, retries off, one predictor, gRPC and REST transports), xds_controller translates the spec into
the local gateway's RouteConfiguration and mesh.render renders the VirtualService and DestinationRules,
the HTTPRoute and the GRPCRoute; each is reduced to one normalized meaning (`ingress_meaning`) and the
meanings must be equal. Where an API cannot say what the local gateway does, the test says so by name:
Istio's consistent hash picks a replica, not the predictor; the standard Gateway API has no retries, no
gRPC timeouts and no stickiness. Every object rendered is valid for its real CRD schema, and a few cases
are kept as golden files (UPDATE_GOLDENS=1 rewrites them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_pb2

from mesh.local.envoy import find_envoy_binary
from mesh.render import RenderSettings, gateway_api, istio
from mesh.render.gateway_api import parent_ref, render_gateway_api
from mesh.render.istio import render_istio
from mesh.render.names import predictor_service
from mesh.render.routing import GRPC_PATH_REGEX, GRPC_SERVICE_PREFIXES, content_length_over
from mesh.spec import SeldonDeployment, load_path, parse_deployment
from tests.helpers import xds
from tests.helpers.k8s_schemas import validate_all
from tests.render.ingress_meaning import (
    Meaning,
    envoy_meaning,
    gateway_meaning,
    gateway_millis,
    istio_meaning,
)
from xds_controller.translate import GatewaySettings, translate
from xds_controller.translate import routes as local_routes

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "render" / "golden-ingress"
SPECS = sorted((Path(__file__).resolve().parents[1] / "data" / "specs").glob("*.yaml"))
SETTINGS = RenderSettings()


def predictor(
    name: str, traffic: int = 0, shadow: bool = False, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "traffic": traffic,
        "graph": {"name": "model", "implementation": "SKLEARN_SERVER", "modelUri": "gs://models/iris"},
    }
    if shadow:
        spec["shadow"] = True
    if annotations:
        spec["annotations"] = annotations
    return spec


def sdep(name: str, *predictors: dict[str, Any], transport: str = "", **annotations: str) -> SeldonDeployment:
    spec: dict[str, Any] = {"predictors": list(predictors)}
    if transport:
        spec["transport"] = transport
    return parse_deployment(
        {
            "apiVersion": "machinelearning.seldon.io/v1",
            "kind": "SeldonDeployment",
            "metadata": {"name": name, "namespace": "models", "annotations": annotations},
            "spec": spec,
        }
    )


CORPUS = {
    "single": sdep("iris", predictor("default")),
    "canary": sdep("canary", predictor("main", 80), predictor("canary", 20)),
    "three-way": sdep("abc", predictor("a", 50), predictor("b", 30), predictor("c", 20)),
    "shadows": sdep(
        "shadows",
        predictor("main", 100),
        predictor("quarter", 25, shadow=True),
        predictor("unset", 0, shadow=True),
        predictor("all", 100, shadow=True),
    ),
    "sticky": sdep(
        "sticky",
        predictor("main", 75),
        predictor("canary", 25),
        predictor("dark", 30, shadow=True),
        **{"seldon.io/sticky-header": "X-User"},
    ),
    "policy": sdep(
        "policy",
        predictor("main", 90),
        predictor("canary", 10),
        **{
            "seldon.io/rest-timeout": "1500",
            "seldon.io/grpc-timeout": "250000",
            "seldon.io/retries": "4",
            "seldon.io/retry-on": "5xx,reset,deadline-exceeded",
            "seldon.io/per-try-timeout": "700",
        },
    ),
    "per-try-over-timeout": sdep(
        "slow",
        predictor("default"),
        **{"seldon.io/rest-timeout": "2000", "seldon.io/per-try-timeout": "3000"},
    ),
    "no-retries": sdep("once", predictor("main", 60), predictor("canary", 40), **{"seldon.io/retries": "0"}),
    "grpc-transport": sdep(
        "grpc",
        predictor("main", 70),
        predictor("canary", 30),
        predictor("dark", 50, shadow=True),
        transport="grpc",
        **{"seldon.io/grpc-timeout": "800"},
    ),
    "custom-service": sdep(
        "named",
        predictor("main", 50, annotations={"seldon.io/svc-name": "named-primary"}),
        predictor("canary", 50),
    ),
    "limited": sdep("small", predictor("default"), **{"seldon.io/grpc-max-message-size": "1048576"}),
}
GOLDEN_CASES = ("canary", "sticky", "policy")


def local_config(deployment: SeldonDeployment) -> route_pb2.RouteConfiguration:
    (config,) = xds.route_configs(translate([deployment], {}, GatewaySettings(listen_port=8123)))
    return config


def local_meaning(deployment: SeldonDeployment) -> Meaning:
    return envoy_meaning(local_config(deployment), deployment)


def services(deployment: SeldonDeployment) -> dict[str, str]:
    return {predictor_service(deployment, p): p.name for p in deployment.spec.predictors}


def rendered_istio(deployment: SeldonDeployment) -> Meaning:
    return istio_meaning(render_istio(deployment, SETTINGS), SETTINGS.istio_gateway)


def rendered_gateway_api(deployment: SeldonDeployment) -> Meaning:
    return gateway_meaning(
        render_gateway_api(deployment, SETTINGS), services(deployment), parent_ref(SETTINGS)
    )


def without_sticky(meaning: Meaning) -> Meaning:
    return dataclasses.replace(meaning, sticky=None)


def as_gateway_api_can(meaning: Meaning) -> Meaning:
    """What the standard Gateway API can say of a local meaning: no retries, no gRPC timeout, no sticky."""
    routes = tuple(
        dataclasses.replace(
            route, retries=None, timeout_ms=None if route.match[0] == "grpc" else route.timeout_ms
        )
        for route in meaning.routes
    )
    return Meaning(routes, None)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_istio_routes_as_the_local_gateway_does(case: str) -> None:
    deployment = CORPUS[case]
    local, istio = local_meaning(deployment), rendered_istio(deployment)
    assert without_sticky(istio) == without_sticky(local)
    if local.sticky is not None:
        # Istio's consistentHash picks a replica within the predictor a weight picked; locally the hash
        # picks the predictor. The closest rendering, documented in mesh.render.istio.
        assert istio.sticky == (local.sticky[0], "replica")
        assert local.sticky[1] == "predictor"
    else:
        assert istio.sticky is None


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_gateway_api_routes_as_the_local_gateway_does_where_the_api_can(case: str) -> None:
    deployment = CORPUS[case]
    assert rendered_gateway_api(deployment) == as_gateway_api_can(local_meaning(deployment))


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_every_rendered_object_is_valid_for_its_crd(case: str) -> None:
    deployment = CORPUS[case]
    validate_all([*render_istio(deployment, SETTINGS), *render_gateway_api(deployment, SETTINGS)])


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_the_example_specs_render_valid_ingress(path: Path) -> None:
    for deployment in load_path(path):
        validate_all([*render_istio(deployment, SETTINGS), *render_gateway_api(deployment, SETTINGS)])


def test_durations_are_written_as_each_api_reads_them() -> None:
    assert [istio.duration(ms) for ms in (1, 700, 1500, 30000, 250000)] == [
        "0.001s",
        "0.7s",
        "1.5s",
        "30s",
        "250s",
    ]
    assert [gateway_api.duration(ms) for ms in (1, 1500, 90250, 3_600_000, 10**13)] == [
        "1ms",
        "1s500ms",
        "1m30s250ms",
        "1h",
        "99999h",
    ]


def test_the_corpus_exercises_what_it_claims() -> None:
    """The agreement above is not vacuous: pins, splits, mirrors, stickiness, policies are all present."""
    meanings = {case: local_meaning(d) for case, d in CORPUS.items()}
    assert [len(r.weights) for r in meanings["three-way"].routes if r.pinned is None] == [3, 3]
    assert meanings["shadows"].routes[-1].mirrors == (("all", 100), ("quarter", 25), ("unset", 100))
    assert meanings["sticky"].sticky == ("x-user", "predictor")
    policy = meanings["policy"].routes
    assert {(r.match[0], r.timeout_ms) for r in policy} == {("grpc", 250000), ("rest", 1500)}
    assert {r.retries for r in policy} == {(4, "5xx,reset,deadline-exceeded", 700)}
    assert {r.retries for r in meanings["no-retries"].routes} == {(0, "", None)}
    assert {r.retries for r in meanings["single"].routes} == {
        (2, "connect-failure,refused-stream,unavailable,5xx", None)
    }
    assert [r.pinned for r in meanings["canary"].routes] == ["main", "canary", None, "main", "canary", None]
    assert [r.pinned for r in meanings["single"].routes] == [None, None]


def test_the_grpc_services_are_the_local_gateways() -> None:
    assert GRPC_SERVICE_PREFIXES == local_routes.GRPC_SERVICE_PREFIXES
    assert GRPC_PATH_REGEX == local_routes._GRPC_PATH_REGEX


def test_per_try_timeout_is_the_backend_request_timeout_within_the_request_timeout() -> None:
    timeouts = {
        case: [r.get("timeouts") for r in render_gateway_api(CORPUS[case], SETTINGS)[0]["spec"]["rules"]]
        for case in ("policy", "per-try-over-timeout", "canary")
    }
    assert timeouts["policy"] == [{"request": "1s500ms", "backendRequest": "700ms"}] * 3
    assert timeouts["per-try-over-timeout"] == [{"request": "2s", "backendRequest": "2s"}]
    assert timeouts["canary"] == [None, None, None]
    assert gateway_millis("4m10s") == 250000


def test_destination_rules_carry_the_local_clusters_resilience() -> None:
    deployment = CORPUS["canary"]
    resources = translate([deployment], {}, GatewaySettings(listen_port=8123))
    cluster: cluster_pb2.Cluster = xds.clusters(resources)["models.canary.main.model.http"]
    rules = [m for m in render_istio(deployment, SETTINGS) if m["kind"] == "DestinationRule"]
    assert [r["spec"]["host"] for r in rules] == [
        "canary-main.models.svc.cluster.local",
        "canary-canary.models.svc.cluster.local",
    ]
    policy = rules[0]["spec"]["trafficPolicy"]
    outlier, limits = cluster.outlier_detection, cluster.circuit_breakers.thresholds[0]
    assert policy["outlierDetection"] == {
        "consecutive5xxErrors": outlier.consecutive_5xx.value,
        "consecutiveGatewayErrors": outlier.consecutive_gateway_failure.value,
        "interval": f"{outlier.interval.seconds}s",
        "baseEjectionTime": f"{outlier.base_ejection_time.seconds}s",
        "maxEjectionPercent": outlier.max_ejection_percent.value,
    }
    assert policy["connectionPool"] == {
        "tcp": {
            "maxConnections": limits.max_connections.value,
            "connectTimeout": f"{cluster.connect_timeout.seconds}s",
        },
        "http": {
            "http1MaxPendingRequests": limits.max_pending_requests.value,
            "http2MaxRequests": limits.max_requests.value,
        },
    }
    assert policy["retryBudget"] == {
        "percent": limits.retry_budget.budget_percent.value,
        "minRetryConcurrency": limits.retry_budget.min_retry_concurrency.value,
    }
    assert cluster.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN
    assert policy["loadBalancer"] == {"simple": "ROUND_ROBIN"}
    assert [r["spec"]["subsets"] for r in rules] == [
        [{"name": "main", "labels": {"seldon-predictor": "main"}}],
        [{"name": "canary", "labels": {"seldon-predictor": "canary"}}],
    ]


def _golden_text(deployment: SeldonDeployment) -> str:
    docs = [*render_istio(deployment, SETTINGS), *render_gateway_api(deployment, SETTINGS)]
    return "".join("---\n" + yaml.safe_dump(doc, sort_keys=False) for doc in docs)


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_renderings(case: str) -> None:
    path = GOLDEN / f"{case}.yaml"
    text = _golden_text(CORPUS[case])
    if os.environ.get("UPDATE_GOLDENS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text, f"{path} differs: UPDATE_GOLDENS=1 rewrites it, then review the diff"


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_istio_refuses_the_repository_extension_as_the_local_gateway_does(case: str) -> None:
    from mesh.render.istio import REPOSITORY_GRPC_PREFIX
    from xds_controller.translate.routes import REPOSITORY_GRPC_PREFIX as LOCAL_GRPC_PREFIX
    from xds_controller.translate.routes import REPOSITORY_REST

    deployment = CORPUS[case]
    (service,) = [m for m in render_istio(deployment, SETTINGS) if m["kind"] == "VirtualService"]
    rest, grpc, *others = service["spec"]["http"]
    assert rest["directResponse"]["status"] == grpc["directResponse"]["status"] == 404
    assert [r["directResponse"]["status"] for r in others if "directResponse" in r] == [413, 413]
    prefix = rest["match"][0]["uri"]["prefix"]
    assert re.fullmatch(REPOSITORY_REST, prefix + "/models/m/unload")
    assert grpc["match"][0]["uri"]["prefix"] == REPOSITORY_GRPC_PREFIX == LOCAL_GRPC_PREFIX
    meta = deployment.metadata
    assert grpc["match"][0]["headers"] == {
        "seldon": {"exact": meta.name},
        "namespace": {"exact": meta.namespace},
    }


def _local_too_large(deployment: SeldonDeployment) -> Any:
    meta = deployment.metadata
    (route,) = [r for r in local_config(deployment).virtual_hosts[0].routes if r.name.endswith(".too-large")]
    assert route.name == f"{meta.namespace}.{meta.name}.too-large"
    return route


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_istio_refuses_an_over_limit_body_as_the_local_gateway_does(case: str) -> None:
    deployment = CORPUS[case]
    local = _local_too_large(deployment)
    (length,) = local.match.headers
    assert length.name == "content-length"
    start, limit = length.range_match.start, length.range_match.start - 1  # Envoy's range: [start, end)
    (service,) = [m for m in render_istio(deployment, SETTINGS) if m["kind"] == "VirtualService"]
    routes = service["spec"]["http"]
    v2, seldon = [r for r in routes if ".too-large" in r["name"]]
    assert [r["name"] for r in routes[2:4]] == [v2["name"], seldon["name"]]  # after the 404s, first
    assert seldon["name"] == local.name and v2["name"] == local.name + ".v2"
    assert seldon["match"][0]["uri"]["prefix"] == local.match.prefix
    assert v2["match"][0]["uri"]["prefix"] == local.match.prefix + "v2/"
    info = local_routes.TOO_LARGE_INFO.format(limit=limit)
    assert local.direct_response.body.inline_string == info
    for route in (v2, seldon):
        assert route["directResponse"]["status"] == local.direct_response.status == 413
        assert route["headers"] == {"response": {"set": {"content-type": "application/json"}}}
    assert json.loads(v2["directResponse"]["body"]["string"]) == {"error": info}
    assert json.loads(seldon["directResponse"]["body"]["string"]) == {
        "status": {"code": 413, "info": info, "reason": "PAYLOAD_TOO_LARGE", "status": "FAILURE"}
    }
    (header,) = seldon["match"][0]["headers"].items()
    assert v2["match"][0]["headers"] == dict([header])
    name, matcher = header
    assert name == "content-length"
    over = re.compile(matcher["regex"])  # RE2 and Python agree on this syntax; Envoy matches in full
    lengths = [0, 1, limit // 2, limit - 1, limit, start, start + 1, limit * 10, 2**63 - 1]
    lengths += random.Random(case).sample(range(limit * 20), 2000)
    for value in lengths:
        for text in (str(value), f"00{value}"):
            assert bool(over.fullmatch(text)) == (value >= start), text
    assert not over.fullmatch("") and not over.fullmatch("-5") and not over.fullmatch(f"{start} ")


def test_the_default_limit_is_seldons_and_the_annotation_sets_it() -> None:
    assert istio.TOO_LARGE_INFO == local_routes.TOO_LARGE_INFO
    assert _local_too_large(CORPUS["single"]).match.headers[0].range_match.start == 2**31
    assert _local_too_large(CORPUS["limited"]).match.headers[0].range_match.start == 2**20 + 1
    assert content_length_over(2**31 - 1).startswith("0*([1-9][0-9]{10,}|[3-9][0-9]{9}|2[2-9][0-9]{8}|")


@pytest.mark.parametrize("limit", [2**31 - 1, 2**20, 9, 0])
def test_envoy_compiles_the_length_pattern_with_its_default_regex_limits(tmp_path: Path, limit: int) -> None:
    """Istio hands the pattern to Envoy's safe_regex: RE2 refuses a program over Envoy's default size."""
    match = {"safe_regex": {"regex": content_length_over(limit)}}
    route = {
        "match": {"prefix": "/", "headers": [{"name": "content-length", "string_match": match}]},
        "direct_response": {"status": 413},
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "limit",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]},
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    listener = {
        "name": "limit",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps({"static_resources": {"listeners": [listener]}}))
    result = subprocess.run(
        [str(find_envoy_binary()), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
