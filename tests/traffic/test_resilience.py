"""Shadows, retries, timeouts and outlier ejection through the real Envoy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import httpx
import pytest

from generated.seldon import prediction_pb2, prediction_pb2_grpc
from tests.helpers.envoy import free_port
from tests.traffic.helpers import at, key, rest, split
from tests.xds_controller import builders as b
from tests.xds_controller.harness import Gateway, GrpcUpstream, HttpUpstream, wait_until
from xds_controller.translate import ComponentEndpoints, Upstream

pytestmark = pytest.mark.slow

TIMEOUT = 30.0


@pytest.fixture
def upstreams() -> Iterator[dict[str, HttpUpstream]]:
    made = {
        "main": HttpUpstream("main").start(),
        "dark-a": HttpUpstream("dark-a").start(),
        "dark-b": HttpUpstream("dark-b").start(),
        "broken": HttpUpstream("broken", failing="all").start(),
        "flaky": HttpUpstream("flaky", failing="half").start(),
    }
    yield made
    for upstream in made.values():
        upstream.stop()


def test_two_shadows_get_their_share_and_a_failing_shadow_changes_nothing(
    gateway: Gateway, upstreams: dict[str, HttpUpstream]
) -> None:
    deployment = split("shadowed", {"main": 100}, shadows=[("dark-a", 100), ("dark-b", 50), ("broken", 100)])
    endpoints = rest("shadowed", {p: upstreams[p] for p in ("main", "dark-a", "dark-b", "broken")})
    gateway.apply(gateway.resources([deployment], endpoints))
    requests = 400
    with httpx.Client() as client:
        for i in range(requests):
            response = client.post(f"{gateway.url}/seldon/default/shadowed/mirror?i={i}", json={"i": i})
            assert response.status_code == 200  # the broken shadow's 503s never reach the client
            assert response.json()["upstream"] == "main"
            assert response.headers["Seldon-Predictor"] == "main"
    wait_until(
        lambda: upstreams["dark-a"].count("/mirror") == requests, TIMEOUT, "every request mirrored to dark-a"
    )
    wait_until(
        lambda: upstreams["broken"].count("/mirror") == requests, TIMEOUT, "every request mirrored to broken"
    )
    # dark-b mirrors 50%: 400 draws at p=0.5 land within 140..260 (6 standard deviations).
    wait_until(
        lambda: upstreams["dark-b"].count("/mirror") >= 140, TIMEOUT, "half the requests mirrored to dark-b"
    )
    assert upstreams["dark-b"].count("/mirror") <= 260
    assert upstreams["main"].count("/mirror") == requests


def test_a_replica_failing_half_its_requests_is_retried_transparently(
    gateway: Gateway, upstreams: dict[str, HttpUpstream]
) -> None:
    gateway.apply(
        gateway.resources([split("flaky", {"main": 100})], rest("flaky", {"main": upstreams["flaky"]}))
    )
    with httpx.Client() as client:
        for _ in range(100):
            response = client.post(f"{gateway.url}/seldon/default/flaky/retry", json={})
            assert response.status_code == 200, response.text
    assert upstreams["flaky"].count("/retry") == 200  # each request failed once, then succeeded


def test_grpc_unavailable_is_retried_transparently(gateway: Gateway) -> None:
    upstream = GrpcUpstream("flaky").start()
    try:
        endpoints = {key("grpc-flaky", "main"): ComponentEndpoints(grpc=at(upstream))}
        gateway.apply(gateway.resources([split("grpc-flaky", {"main": 100})], endpoints))
        with grpc.insecure_channel(gateway.address) as channel:
            stub = prediction_pb2_grpc.SeldonStub(channel)
            metadata = (("seldon", "grpc-flaky"), ("namespace", "default"), ("flaky", "1"))
            for _ in range(20):
                reply = stub.Predict(prediction_pb2.SeldonMessage(), metadata=metadata, timeout=10)
                assert json.loads(reply.strData)["upstream"] == "flaky"
        assert upstream.servicer.calls == 40  # every call failed once with UNAVAILABLE, then succeeded
    finally:
        upstream.stop()


def test_retries_zero_shows_the_failure(gateway: Gateway, upstreams: dict[str, HttpUpstream]) -> None:
    deployment = split("once", {"main": 100}, annotations={"seldon.io/retries": "0"})
    gateway.apply(gateway.resources([deployment], rest("once", {"main": upstreams["flaky"]})))
    with httpx.Client() as client:
        codes = [
            client.post(f"{gateway.url}/seldon/default/once/no-retry", json={}).status_code for _ in range(10)
        ]
    assert sorted(codes) == [200] * 5 + [503] * 5


def test_slow_runtime_past_its_timeout_gets_504_json_rest_and_an_error_status_grpc(gateway: Gateway) -> None:
    slow_rest, slow_grpc = HttpUpstream("slow").start(), GrpcUpstream("slow").start()
    try:
        deployment = split(
            "slow",
            {"main": 100},
            annotations={"seldon.io/rest-timeout": "200", "seldon.io/grpc-timeout": "200"},
        )
        endpoints = {key("slow", "main"): ComponentEndpoints(http=at(slow_rest), grpc=at(slow_grpc))}
        gateway.apply(gateway.resources([deployment], endpoints))
        response = httpx.post(f"{gateway.url}/seldon/default/slow/slow/predict", json={})
        assert response.status_code == 504
        assert response.headers["content-type"] == "application/json"
        assert response.json()["status"]["reason"] == "TIMEOUT"
        assert response.json()["status"]["status"] == "FAILURE"
        assert slow_rest.count("/slow") == 1  # a timeout is not retried
        with grpc.insecure_channel(gateway.address) as channel:
            stub = prediction_pb2_grpc.SeldonStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.Predict(
                    prediction_pb2.SeldonMessage(),
                    metadata=(("seldon", "slow"), ("namespace", "default"), ("slow", "1")),
                    timeout=10,
                )
            assert raised.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            assert "timeout" in (raised.value.details() or "").lower()
            slow_grpc.release.set()
            reply = stub.Predict(
                prediction_pb2.SeldonMessage(),
                metadata=(("seldon", "slow"), ("namespace", "default")),
                timeout=10,
            )
            assert json.loads(reply.strData)["upstream"] == "slow"
    finally:
        slow_rest.stop()
        slow_grpc.stop()


def test_an_ejected_replica_stops_receiving_traffic(
    gateway: Gateway, upstreams: dict[str, HttpUpstream]
) -> None:
    good, bad = upstreams["main"], upstreams["broken"]
    endpoints = {key("ejects", "main"): ComponentEndpoints(http=at(good, bad))}
    gateway.apply(gateway.resources([split("ejects", {"main": 100})], endpoints))
    url = f"{gateway.url}/seldon/default/ejects/eject"

    def ejected() -> bool:
        assert httpx.get(url).status_code == 200  # retries hide the bad replica from the client
        _, body = gateway.envoy.admin_get("/clusters")
        return f"127.0.0.1:{bad.port}::health_flags::/failed_outlier_check" in body

    wait_until(ejected, TIMEOUT, "the failing replica ejected")
    before = bad.count("/eject")
    with httpx.Client() as client:
        for _ in range(50):
            assert client.get(url).status_code == 200
    assert bad.count("/eject") == before


def test_a_dead_replica_is_skipped(gateway: Gateway, upstreams: dict[str, HttpUpstream]) -> None:
    dead = Upstream("127.0.0.1", free_port())
    endpoints = {key("dead", "main"): ComponentEndpoints(http=(*at(upstreams["main"]), dead))}
    gateway.apply(
        gateway.resources(
            [b.deployment("dead", b.Predictor("main", b.Unit("model"), traffic=100))], endpoints
        )
    )
    with httpx.Client() as client:
        for _ in range(20):
            assert client.get(f"{gateway.url}/seldon/default/dead/x").status_code == 200


def test_a_50_mb_request_is_served_and_retried_when_the_message_size_allows_it(
    gateway: Gateway, upstreams: dict[str, HttpUpstream]
) -> None:
    deployment = split("big", {"main": 100}, annotations={"seldon.io/grpc-max-message-size": str(64 * 2**20)})
    gateway.apply(gateway.resources([deployment], rest("big", {"main": upstreams["flaky"]})))
    body = b"x" * (50 * 2**20)
    response = httpx.post(f"{gateway.url}/seldon/default/big/large", content=body, timeout=60)
    assert response.status_code == 200, response.text[:200]
    assert response.json()["body_length"] == len(body)
    assert upstreams["flaky"].count("/large") == 2  # the first try failed; Envoy buffered and retried it
