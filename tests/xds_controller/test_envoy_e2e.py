"""Our ADS server programming a real Envoy, with real REST and gRPC upstreams and real clients."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.type.matcher.v3 import regex_pb2

from generated.seldon import prediction_pb2, prediction_pb2_grpc
from tests.helpers import xds
from tests.helpers.envoy import free_port
from tests.xds_controller import builders as b
from tests.xds_controller.harness import ControlPlane, Gateway, GrpcUpstream, HttpUpstream, wait_until
from xds_controller import resource_types
from xds_controller.translate import (
    ComponentEndpoints,
    ComponentKey,
    Resources,
    Upstream,
)

pytestmark = pytest.mark.slow

TIMEOUT = 30.0
GRPCURL = str(Path(sys.executable).parent / "grpcurl")
_nodes = itertools.count(1)
_KINDS = {
    resource_types.CLUSTER: "cds",
    resource_types.LISTENER: "lds",
    resource_types.ROUTE: "rds",
}


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    control = ControlPlane().start()
    yield control
    control.stop()


@pytest.fixture(scope="module")
def rest_upstreams() -> Iterator[tuple[HttpUpstream, HttpUpstream]]:
    first, second = HttpUpstream("rest-a").start(), HttpUpstream("rest-b").start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture(scope="module")
def grpc_upstream() -> Iterator[GrpcUpstream]:
    upstream = GrpcUpstream("grpc-a").start()
    yield upstream
    upstream.stop()


@pytest.fixture(params=[False, True], ids=["one-route-config", "scoped"])
def gateway(plane: ControlPlane, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Gateway]:
    gw = Gateway(plane, tmp_path / "envoy", scoped=request.param)
    yield gw
    gw.stop()


def _key(name: str, predictor: str = "default", node: str = "model") -> ComponentKey:
    return ComponentKey("default", name, predictor, node)


def _at(*ports: int) -> tuple[Upstream, ...]:
    return tuple(Upstream("127.0.0.1", port) for port in ports)


def _seldon_error(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"] == "application/json"
    body: dict[str, object] = response.json()
    return body


def test_rest_prefix_is_rewritten_and_seldon_headers_are_set(
    gateway: Gateway, rest_upstreams: tuple[HttpUpstream, HttpUpstream]
) -> None:
    gateway.apply(
        gateway.resources(
            [b.single("iris")], {_key("iris"): ComponentEndpoints(http=_at(rest_upstreams[0].port))}
        )
    )
    response = httpx.post(
        f"{gateway.url}/seldon/default/iris/api/v1.0/predictions", json={"data": {"ndarray": [[1]]}}
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["upstream"] == "rest-a"
    assert seen["path"] == "/api/v1.0/predictions"
    assert json.loads(seen["body"]) == {"data": {"ndarray": [[1]]}}
    assert response.headers["Seldon-Predictor"] == "default"
    assert response.headers["Seldon-Puid"]
    assert seen["headers"]["seldon-puid"] == response.headers["Seldon-Puid"]

    chosen = httpx.get(
        f"{gateway.url}/seldon/default/iris/api/v1.0/metadata", headers={"Seldon-Puid": "my-id"}
    )
    assert chosen.headers["Seldon-Puid"] == "my-id"
    assert chosen.json()["headers"]["seldon-puid"] == "my-id"


def test_unknown_path_gets_a_seldon_404(gateway: Gateway) -> None:
    gateway.apply(gateway.resources([b.single("iris")], {}))
    response = httpx.get(f"{gateway.url}/seldon/default/nope/api/v1.0/predictions")
    assert response.status_code == 404
    assert _seldon_error(response) == {
        "status": {
            "code": 404,
            "info": "no SeldonDeployment serves /seldon/default/nope/api/v1.0/predictions",
            "reason": "NOT_FOUND",
            "status": "FAILURE",
        }
    }
    assert response.headers["Seldon-Puid"]


def test_missing_or_dead_runtime_gets_a_seldon_503(gateway: Gateway) -> None:
    dead_port = free_port()
    endpoints = {_key("dead"): ComponentEndpoints(http=_at(dead_port))}
    gateway.apply(gateway.resources([b.single("dead"), b.single("starting")], endpoints))
    for name in ("dead", "starting"):
        response = httpx.post(f"{gateway.url}/seldon/default/{name}/api/v1.0/predictions", json={})
        assert response.status_code == 503, name
        status = _seldon_error(response)["status"]
        assert isinstance(status, dict)
        assert (status["code"], status["reason"], status["status"]) == (503, "UNAVAILABLE", "FAILURE")
        assert status["info"]
        assert response.headers["Seldon-Predictor"] == "default"


def test_runtime_timeout_gets_a_seldon_504(
    gateway: Gateway, rest_upstreams: tuple[HttpUpstream, HttpUpstream]
) -> None:
    slow = b.deployment("slow", b.Predictor("default", b.Unit("model"), traffic=100))
    slow.annotations["seldon.io/rest-timeout"] = "200"
    gateway.apply(
        gateway.resources([slow], {_key("slow"): ComponentEndpoints(http=_at(rest_upstreams[0].port))})
    )
    response = httpx.post(f"{gateway.url}/seldon/default/slow/slow/predict", json={})
    assert response.status_code == 504
    status = _seldon_error(response)["status"]
    assert isinstance(status, dict)
    assert (status["code"], status["reason"], status["status"]) == (504, "TIMEOUT", "FAILURE")


def test_shadow_predictor_gets_a_copy_of_the_traffic(
    gateway: Gateway, rest_upstreams: tuple[HttpUpstream, HttpUpstream]
) -> None:
    main, dark = rest_upstreams
    dep = b.deployment(
        "shadowed",
        b.Predictor("default", b.Unit("model"), traffic=100),
        b.Predictor("dark", b.Unit("model"), shadow=True),
    )
    endpoints = {
        _key("shadowed"): ComponentEndpoints(http=_at(main.port)),
        _key("shadowed", "dark"): ComponentEndpoints(http=_at(dark.port)),
    }
    gateway.apply(gateway.resources([dep], endpoints))
    response = httpx.get(f"{gateway.url}/seldon/default/shadowed/api/v1.0/metadata?mark=shadow-test")
    assert response.json()["upstream"] == "rest-a"
    assert response.headers["Seldon-Predictor"] == "default"
    wait_until(
        lambda: "/api/v1.0/metadata?mark=shadow-test" in dark.received, TIMEOUT, "the mirrored request"
    )


def test_multi_node_graph_answers_501_json(gateway: Gateway) -> None:
    graph = b.deployment("graph", b.Predictor("p", b.Unit("router", (b.Unit("a"), b.Unit("b"))), traffic=100))
    gateway.apply(gateway.resources([graph], {}))
    response = httpx.post(f"{gateway.url}/seldon/default/graph/api/v1.0/predictions", json={})
    assert response.status_code == 501
    status = _seldon_error(response)["status"]
    assert isinstance(status, dict)
    assert status["reason"] == "NOT_IMPLEMENTED"
    assert "3-node graph" in str(status["info"])


def test_canary_responses_name_the_predictor_that_served_them(
    gateway: Gateway, rest_upstreams: tuple[HttpUpstream, HttpUpstream]
) -> None:
    dep = b.deployment(
        "ab",
        b.Predictor("main", b.Unit("model"), traffic=50),
        b.Predictor("canary", b.Unit("model"), traffic=50),
    )
    endpoints = {
        _key("ab", "main"): ComponentEndpoints(http=_at(rest_upstreams[0].port)),
        _key("ab", "canary"): ComponentEndpoints(http=_at(rest_upstreams[1].port)),
    }
    gateway.apply(gateway.resources([dep], endpoints))
    served = set()
    expected = {"main": "rest-a", "canary": "rest-b"}
    with httpx.Client() as client:
        for _ in range(40):
            response = client.get(f"{gateway.url}/seldon/default/ab/api/v1.0/metadata")
            predictor = response.headers["Seldon-Predictor"]
            assert response.json()["upstream"] == expected[predictor]
            served.add(predictor)
    assert served <= {"main", "canary"}


def test_grpc_is_routed_by_the_seldon_and_namespace_headers(
    gateway: Gateway, grpc_upstream: GrpcUpstream
) -> None:
    endpoints = {_key("iris"): ComponentEndpoints(grpc=_at(grpc_upstream.port))}
    gateway.apply(gateway.resources([b.single("iris"), b.single("rest-only")], endpoints))
    with grpc.insecure_channel(gateway.address) as channel:
        stub = prediction_pb2_grpc.SeldonStub(channel)
        reply, call = stub.Predict.with_call(
            prediction_pb2.SeldonMessage(),
            metadata=(("seldon", "iris"), ("namespace", "default")),
            timeout=10,
        )
        assert json.loads(reply.strData) == {"upstream": "grpc-a", "seldon": "iris"}
        headers = dict(call.initial_metadata())
        assert headers["seldon-predictor"] == "default"
        assert headers["seldon-puid"]
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(
                prediction_pb2.SeldonMessage(),
                metadata=(("seldon", "nope"), ("namespace", "default")),
                timeout=10,
            )
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert raised.value.details() == (
            "no SeldonDeployment nope in namespace default (the seldon and namespace headers)"
        )
        with pytest.raises(grpc.RpcError) as raised:  # the namespace header forgotten
            stub.Predict(prediction_pb2.SeldonMessage(), metadata=(("seldon", "iris"),), timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert raised.value.details() == (
            "gRPC requests name their SeldonDeployment by two headers, seldon and namespace "
            "(got seldon: iris, namespace: -)"
        )
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(
                prediction_pb2.SeldonMessage(),
                metadata=(("seldon", "rest-only"), ("namespace", "default")),
                timeout=10,
            )
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_grpcurl_lists_services_through_the_gateway(gateway: Gateway, grpc_upstream: GrpcUpstream) -> None:
    gateway.apply(
        gateway.resources(
            [b.single("iris")], {_key("iris"): ComponentEndpoints(grpc=_at(grpc_upstream.port))}
        )
    )
    routed = subprocess.run(
        [GRPCURL, "-plaintext", "-H", "seldon: iris", "-H", "namespace: default", gateway.address, "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "seldon.protos.Seldon" in routed.stdout.split()
    plain = subprocess.run(
        [GRPCURL, "-plaintext", gateway.address, "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "envoy.service.discovery.v3.AggregatedDiscoveryService" in plain.stdout.split()
    # headers naming no deployment: grpcurl says so, whether its reflection call reached the control plane
    # (one route configuration: reflection naming no known deployment) or got the gateway's 404 (scoped: an
    # UNIMPLEMENTED there would read "server does not support the reflection API")
    unknown = ["-H", "seldon: nope", "-H", "namespace: default"]
    invoked = subprocess.run(
        [GRPCURL, "-plaintext", *unknown, "-d", "{}", gateway.address, "seldon.protos.Seldon/Predict"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert invoked.returncode != 0
    assert "no SeldonDeployment nope in namespace default" in invoked.stderr, invoked.stderr
    listed = subprocess.run(
        [GRPCURL, "-plaintext", *unknown, gateway.address, "list"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listed.returncode == 0 or "no SeldonDeployment nope" in listed.stderr, listed.stderr


def _with_bad_regex(resources: Resources) -> Resources:
    """The one route configuration, or (scoped) wine's, with a route Envoy rejects."""
    configs = xds.route_configs(resources)
    config = next((c for c in configs if "wine" in c.name), configs[0])
    broken = route_pb2.RouteConfiguration()
    broken.CopyFrom(config)
    bad = route_components_pb2.Route(
        name="bad",
        match=route_components_pb2.RouteMatch(safe_regex=regex_pb2.RegexMatcher(regex="(unclosed")),
        direct_response=route_components_pb2.DirectResponseAction(status=418),
    )
    broken.virtual_hosts[0].routes.insert(0, bad)
    routes = tuple(broken if c is config else c for c in configs)
    return dataclasses.replace(resources, routes=routes)


def test_rejected_config_is_reported_never_resent_and_the_last_good_one_keeps_serving(
    gateway: Gateway, rest_upstreams: tuple[HttpUpstream, HttpUpstream]
) -> None:
    first, second = rest_upstreams
    iris = {_key("iris"): ComponentEndpoints(http=_at(first.port))}
    good = gateway.apply(gateway.resources([b.single("iris")], iris))

    both = {**iris, _key("wine"): ComponentEndpoints(http=_at(first.port))}
    rejected = _with_bad_regex(gateway.resources([b.single("iris"), b.single("wine")], both)).to_snapshot()
    bad_routes = rejected.version(resource_types.ROUTE)
    gateway.publish(rejected)
    wait_until(lambda: gateway.plane.cache.status(gateway.node_id).last_nack is not None, TIMEOUT, "the NACK")
    status = gateway.plane.cache.status(gateway.node_id)
    assert status.last_nack is not None
    assert (status.last_nack.type_url, status.last_nack.version) == (resource_types.ROUTE, bad_routes)
    assert "unclosed" in status.last_nack.message or "regex" in status.last_nack.message.lower()
    assert status.acked[resource_types.ROUTE] == good.version(resource_types.ROUTE)

    # The old routes still serve; the new deployment's route never arrived.
    assert httpx.get(f"{gateway.url}/seldon/default/iris/api/v1.0/metadata").status_code == 200
    assert httpx.get(f"{gateway.url}/seldon/default/wine/api/v1.0/metadata").status_code == 404

    # Move iris to the other upstream: endpoints change, routes stay the rejected version. Envoy gets the
    # new endpoints, and the rejected routes are still not sent again.
    moved = {**both, _key("iris"): ComponentEndpoints(http=_at(second.port))}
    updated = _with_bad_regex(gateway.resources([b.single("iris"), b.single("wine")], moved)).to_snapshot()
    assert updated.version(resource_types.ROUTE) == bad_routes
    gateway.publish(updated)
    eds = updated.version(resource_types.ENDPOINT)
    wait_until(
        lambda: gateway.plane.cache.status(gateway.node_id).acked.get(resource_types.ENDPOINT) == eds,
        TIMEOUT,
        "the endpoint ACK",
    )
    wait_until(
        lambda: (
            httpx.get(f"{gateway.url}/seldon/default/iris/api/v1.0/metadata").json()["upstream"] == "rest-b"
        ),
        TIMEOUT,
        "iris served by the moved endpoint",
    )
    assert gateway.plane.recorder.sent(resource_types.ROUTE, bad_routes) == 1

    # A fixed config goes through.
    gateway.apply(gateway.resources([b.single("iris"), b.single("wine")], moved))
    assert httpx.get(f"{gateway.url}/seldon/default/wine/api/v1.0/metadata").status_code == 200


def test_two_envoys_run_side_by_side(plane: ControlPlane, tmp_path: Path) -> None:
    gateways = [Gateway(plane, tmp_path / name) for name in ("one", "two")]
    try:
        for gw in gateways:
            gw.apply(gw.resources([b.single("iris")], {}))
        for gw in gateways:
            assert gw.envoy.running
            assert httpx.get(f"{gw.url}/nothing").status_code == 404
        assert len({gw.envoy.admin_socket for gw in gateways}) == 2
        assert all(gw.envoy.admin_get("/ready")[0] == 200 for gw in gateways)
    finally:
        for gw in gateways:
            gw.envoy.stop()
            plane.cache.forget(gw.node_id)
