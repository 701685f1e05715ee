"""Canary and A/B splits through the real Envoy: weights, header pinning and sticky hashing."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import grpc
import httpx
import pytest

from generated.seldon import prediction_pb2, prediction_pb2_grpc
from tests.traffic.helpers import at, key, predictors_served, predictors_served_concurrently, rest, split
from tests.xds_controller.harness import Gateway, GrpcUpstream, HttpUpstream
from xds_controller.translate import ComponentEndpoints, ComponentKey

pytestmark = pytest.mark.slow

STICKY = "seldon.io/sticky-header"


@pytest.fixture(scope="module")
def main_and_canary() -> Iterator[dict[str, HttpUpstream]]:
    upstreams = {"main": HttpUpstream("main").start(), "canary": HttpUpstream("canary").start()}
    yield upstreams
    for upstream in upstreams.values():
        upstream.stop()


@pytest.fixture(scope="module")
def grpc_pair() -> Iterator[dict[str, GrpcUpstream]]:
    upstreams = {"main": GrpcUpstream("main").start(), "canary": GrpcUpstream("canary").start()}
    yield upstreams
    for upstream in upstreams.values():
        upstream.stop()


def _both(
    name: str, rest_ups: dict[str, HttpUpstream], grpc_ups: dict[str, GrpcUpstream]
) -> dict[ComponentKey, ComponentEndpoints]:
    return {key(name, p): ComponentEndpoints(http=at(rest_ups[p]), grpc=at(grpc_ups[p])) for p in rest_ups}


def test_75_25_canary_splits_4000_requests_within_3_points(
    gateway: Gateway, main_and_canary: dict[str, HttpUpstream]
) -> None:
    gateway.apply(gateway.resources([split("ab", {"main": 75, "canary": 25})], rest("ab", main_and_canary)))
    before = {name: up.count("/split-75") for name, up in main_and_canary.items()}
    served = predictors_served_concurrently(f"{gateway.url}/seldon/default/ab/split-75", 4000)
    assert set(served) == {"main", "canary"}
    assert abs(served["canary"] / 4000 - 0.25) <= 0.03, served
    # The header names the predictor that really answered.
    assert {name: up.count("/split-75") - before[name] for name, up in main_and_canary.items()} == served


def test_100_0_sends_nothing_to_the_zero(gateway: Gateway, main_and_canary: dict[str, HttpUpstream]) -> None:
    gateway.apply(gateway.resources([split("all", {"main": 100, "canary": 0})], rest("all", main_and_canary)))
    with httpx.Client() as client:
        served = predictors_served(client, f"{gateway.url}/seldon/default/all/split-100", 300)
    assert served == Counter({"main": 300})
    assert main_and_canary["canary"].count("/split-100") == 0


def test_seldon_predictor_header_pins_rest_and_grpc(
    gateway: Gateway, main_and_canary: dict[str, HttpUpstream], grpc_pair: dict[str, GrpcUpstream]
) -> None:
    gateway.apply(
        gateway.resources(
            [split("pin", {"main": 90, "canary": 10})], _both("pin", main_and_canary, grpc_pair)
        )
    )
    with httpx.Client() as client:
        pinned = predictors_served(
            client, f"{gateway.url}/seldon/default/pin/pinned", 100, **{"Seldon-Predictor": "canary"}
        )
        assert pinned == Counter({"canary": 100})
        response = client.get(
            f"{gateway.url}/seldon/default/pin/pinned", headers={"Seldon-Predictor": "canary"}
        )
        assert response.json()["upstream"] == "canary"
        # An unknown predictor name falls through to the split.
        unknown = predictors_served(
            client, f"{gateway.url}/seldon/default/pin/pinned", 50, **{"Seldon-Predictor": "nope"}
        )
        assert set(unknown) <= {"main", "canary"}
    with grpc.insecure_channel(gateway.address) as channel:
        stub = prediction_pb2_grpc.SeldonStub(channel)
        for _ in range(50):
            reply, call = stub.Predict.with_call(
                prediction_pb2.SeldonMessage(),
                metadata=(("seldon", "pin"), ("namespace", "default"), ("seldon-predictor", "canary")),
                timeout=10,
            )
            assert json.loads(reply.strData)["upstream"] == "canary"
            assert dict(call.initial_metadata())["seldon-predictor"] == "canary"


def test_sticky_header_keeps_each_user_on_one_predictor_rest_and_grpc(
    gateway: Gateway, main_and_canary: dict[str, HttpUpstream], grpc_pair: dict[str, GrpcUpstream]
) -> None:
    deployment = split("sticky", {"main": 50, "canary": 50}, annotations={STICKY: "X-User"})
    gateway.apply(gateway.resources([deployment], _both("sticky", main_and_canary, grpc_pair)))
    users = [f"user-{i}" for i in range(40)]
    rest_choice: dict[str, str] = {}
    with httpx.Client() as client:
        for user in users:
            served = predictors_served(
                client, f"{gateway.url}/seldon/default/sticky/s", 10, **{"X-User": user}
            )
            assert len(served) == 1, (user, served)  # every request of one user lands on one predictor
            rest_choice[user] = next(iter(served))
    assert set(rest_choice.values()) == {"main", "canary"}  # and users are spread over both
    with grpc.insecure_channel(gateway.address) as channel:
        stub = prediction_pb2_grpc.SeldonStub(channel)
        grpc_choice: dict[str, str] = {}
        for user in users:
            seen = set()
            for _ in range(5):
                reply = stub.Predict(
                    prediction_pb2.SeldonMessage(),
                    metadata=(("seldon", "sticky"), ("namespace", "default"), ("x-user", user)),
                    timeout=10,
                )
                seen.add(json.loads(reply.strData)["upstream"])
            assert len(seen) == 1, (user, seen)
            grpc_choice[user] = seen.pop()
    assert set(grpc_choice.values()) == {"main", "canary"}
