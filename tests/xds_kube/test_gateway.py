"""End to end in "cluster" shape: SeldonDeployments and EndpointSlices in a Kubernetes API emulator,
`python -m xds_controller.kube` watching it, a real Envoy it programs, real iris runtimes behind it."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import grpc
import kmock
import pytest

from tests.helpers.runtime import RunningRuntime
from tests.xds_controller.harness import HttpUpstream
from tests.xds_kube.cluster import (
    Gateway,
    curl,
    endpoint,
    endpoint_slice,
    grpcurl,
    running_gateway,
    sdep,
    wait_for,
)

NS = "seldon"
PREDICT = f"/seldon/{NS}/iris/api/v1.0/predictions"
ROW = '{"data":{"ndarray":[[5.1,3.5,1.4,0.2]]}}'


def runtime_slice(name: str, service: str, runtime: RunningRuntime, ready: bool = True) -> dict[str, object]:
    return endpoint_slice(
        name, NS, service, [endpoint("127.0.0.1", ready)], runtime.http_port, runtime.grpc_port
    )


async def predict(gateway: Gateway) -> tuple[int, str, dict[str, str]]:
    code, out, err = await curl(
        "-i", "-X", "POST", "-H", "content-type: application/json", "-d", ROW, gateway.url + PREDICT
    )
    if code != 0:  # not listening yet: the listener arrives over xDS
        return 0, err, {}
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, body, headers


def _call_unknown_service(port: int) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/mystery.Service/Method")
        try:
            call(b"", metadata=(("seldon", "iris"), ("namespace", NS)), timeout=10)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return code
    return grpc.StatusCode.OK


async def split(gateway: Gateway, requests: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(requests):
        status, body, headers = await predict(gateway)
        assert status == 200, body
        seen[headers["seldon-predictor"]] += 1
    return seen


@pytest.mark.asyncio
async def test_rest_and_grpc_predictions_answer_and_traffic_moves_the_split(
    kmock: kmock.KubernetesEmulator, runtimes: tuple[RunningRuntime, RunningRuntime], tmp_path: Path
) -> None:
    main, canary = runtimes
    async with running_gateway(kmock, tmp_path) as gateway:
        await gateway.create(sdep("iris", NS, [("main", 100), ("canary", 0)]))
        await gateway.create(runtime_slice("iris-main-a", "iris-main", main))
        await gateway.create(runtime_slice("iris-canary-a", "iris-canary", canary))

        async def answers() -> bool:
            return (await predict(gateway))[0] == 200

        await wait_for(answers, 30, "the prediction to answer through Envoy")
        status, body, headers = await predict(gateway)
        assert status == 200
        assert json.loads(body)["data"]["names"] == ["t:0", "t:1", "t:2"]
        assert headers["seldon-predictor"] == "main"

        code, out, err = await grpcurl(
            "-H", "seldon: iris", "-H", f"namespace: {NS}", "-d", ROW,
            f"127.0.0.1:{gateway.port}", "seldon.protos.Seldon/Predict",
        )  # fmt: skip
        assert code == 0, err + gateway.log()
        assert json.loads(out)["data"]["names"] == ["t:0", "t:1", "t:2"]
        # a service no deployment answers: refused by the gateway, as before it was scoped
        code, out, err = await grpcurl(
            "-H", "seldon: iris", "-H", f"namespace: {NS}", "-d", "{}",
            f"127.0.0.1:{gateway.port}", "grpc.health.v1.Health/Check",
        )  # fmt: skip
        assert code == 0, err
        unknown = await asyncio.to_thread(_call_unknown_service, gateway.port)
        assert unknown == grpc.StatusCode.UNIMPLEMENTED

        # all traffic to the canary: the split seen at Envoy follows the emulator's spec
        await gateway.patch(sdep("iris", NS, [("main", 0), ("canary", 100)]))

        async def moved() -> bool:
            return (await predict(gateway))[2].get("seldon-predictor") == "canary"

        await wait_for(moved, 30, "the traffic change to reach Envoy")
        assert await split(gateway, 10) == Counter({"canary": 10})
        await gateway.patch(sdep("iris", NS, [("main", 50), ("canary", 50)]))

        async def both() -> bool:
            return len(await split(gateway, 10)) == 2

        await wait_for(both, 30, "a 50/50 split to reach both predictors")


@pytest.mark.asyncio
async def test_a_not_ready_endpoint_gets_no_traffic_and_an_invalid_spec_changes_nothing(
    kmock: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    first, second = HttpUpstream("first").start(), HttpUpstream("second").start()
    try:
        async with running_gateway(kmock, tmp_path) as gateway:
            await gateway.create(sdep("iris", NS, [("main", 100)]))
            for name, upstream in (("a", first), ("b", second)):
                await gateway.create(
                    endpoint_slice(
                        f"iris-main-{name}", NS, "iris-main", [endpoint("127.0.0.1")], upstream.port
                    )
                )

            async def both_serve() -> bool:
                await predict(gateway)
                return first.count() > 0 and second.count() > 0

            await wait_for(both_serve, 30, "both ready endpoints to get traffic")

            # the second pod fails its readiness probe
            await gateway.patch(
                endpoint_slice(
                    "iris-main-b", NS, "iris-main", [endpoint("127.0.0.1", ready=False)], second.port
                )
            )

            async def only_first() -> bool:
                before = second.count()
                for _ in range(10):
                    await predict(gateway)
                return second.count() == before

            await wait_for(only_first, 30, "the not-ready endpoint to leave the load balancer")
            before_first, before_second = first.count(), second.count()
            for _ in range(20):
                status, _, _ = await predict(gateway)
                assert status == 200
            assert second.count() == before_second
            assert first.count() == before_first + 20

            # an update mesh.spec rejects is skipped (logged): the deployment keeps being served
            broken = sdep("iris", NS, [("main", 100)])
            broken["spec"]["predictors"][0]["traffic"] = 101
            await gateway.patch(broken)
            await wait_for(lambda: "skipped" in gateway.log(), 30, "the controller to log the invalid spec")
            assert (await predict(gateway))[0] == 200
            assert gateway.controller.poll() is None
    finally:
        first.stop()
        second.stop()


# seldon.io/grpc-max-message-size of the deployment below: a body over it still fits in one HTTP/2 stream
# window (64 KiB), so that curl reads the 413 Envoy sends before the body is in (with more still to send,
# curl 7.88 drops the answer when Envoy then resets the stream, exit 92: so does a bare Envoy 1.40 with
# one direct-response route). Even so curl may still be sending when the 413 and the reset arrive (2 in
# 60 attempts on a quiet machine, a third of test runs on a loaded one): over HTTP/2 an exit 92 is tried
# again, up to `H2_ATTEMPTS` times.
LIMIT = 2**14
H2_ATTEMPTS = 10
CURL_HTTP2_STREAM_ERROR = 92
TOO_LARGE = f"request body over the {LIMIT} byte limit (seldon.io/grpc-max-message-size)"


async def _post_file(gateway: Gateway, path: str, body: Path, *flags: str) -> tuple[int, str, dict[str, str]]:
    for _ in range(H2_ATTEMPTS if "--http2-prior-knowledge" in flags else 1):
        code, out, err = await curl(
            "-i", *flags, "-X", "POST", "-H", "content-type: application/json",
            "--data-binary", f"@{body}", gateway.url + path,
        )  # fmt: skip
        if code != CURL_HTTP2_STREAM_ERROR:
            break
    assert code == 0, err + gateway.log()
    head, _, text = out.partition("\r\n\r\n")
    while head.split()[1] == "100":  # curl's Expect: 100-continue, if Envoy sent one
        head, _, text = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), text, headers


@pytest.mark.asyncio
async def test_a_body_over_the_deployments_limit_is_refused_413_by_the_in_cluster_gateway(
    kmock: kmock.KubernetesEmulator, runtimes: tuple[RunningRuntime, RunningRuntime], tmp_path: Path
) -> None:
    """The scoped routes of the in-cluster gateway start with the same 413 route as the local gateway's,
    on its HTTP/1.1 (path-scoped) and h2c (Lua-scoped) connection managers alike."""
    main, _ = runtimes
    limited = sdep("iris", NS, [("main", 100)])
    limited["metadata"]["annotations"] = {"seldon.io/grpc-max-message-size": str(LIMIT)}
    big = tmp_path / "big.json"
    head, tail = b'{"data":{"ndarray":[', b"[1,2,3,4]]}}"
    big.write_bytes(head + b" " * (LIMIT + 1 - len(head) - len(tail)) + tail)
    assert big.stat().st_size == LIMIT + 1
    async with running_gateway(kmock, tmp_path) as gateway:
        await gateway.create(limited)
        await gateway.create(runtime_slice("iris-main-a", "iris-main", main))

        async def answers() -> bool:
            return (await predict(gateway))[0] == 200

        await wait_for(answers, 30, "the prediction to answer through Envoy")
        for flags in (("--http1.1",), ("--http2-prior-knowledge",)):
            status, text, headers = await _post_file(gateway, PREDICT, big, *flags)
            assert status == 413, (flags, text)
            assert headers["content-type"] == "application/json"
            assert json.loads(text) == {
                "status": {"code": 413, "info": TOO_LARGE, "reason": "PAYLOAD_TOO_LARGE", "status": "FAILURE"}
            }
            v2 = f"/seldon/{NS}/iris/v2/models/classifier/infer"
            status, text, _ = await _post_file(gateway, v2, big, *flags)
            assert (status, json.loads(text)) == (413, {"error": TOO_LARGE}), flags
        assert (await predict(gateway))[0] == 200  # a request within the limit still answers


def _route_configs(gateway: Gateway) -> set[str]:
    """The RouteConfigurations Envoy holds, by name."""
    dump = gateway.envoy.config_dump(include_eds=False)
    return {
        str(config["route_config"]["name"])
        for section in dump["configs"]
        if section["@type"].endswith("RoutesConfigDump")
        for config in section.get("dynamic_route_configs", ())
    }


@pytest.mark.asyncio
async def test_a_deployments_routes_reach_envoy_with_the_first_request_that_needs_them(
    kmock: kmock.KubernetesEmulator, runtimes: tuple[RunningRuntime, RunningRuntime], tmp_path: Path
) -> None:
    """Envoy holds every deployment's route scope but asks for its RouteConfiguration (on demand) when a
    request first selects the scope: a gRPC call, scoped by its headers on the h2c manager, as well as a
    REST request, is answered by its first attempt."""
    main, _ = runtimes
    async with running_gateway(kmock, tmp_path) as gateway:
        for name in ("iris", "other"):
            await gateway.create(sdep(name, NS, [("main", 100)]))
            await gateway.create(runtime_slice(f"{name}-main-a", f"{name}-main", main))

        async def answers() -> bool:
            return (await predict(gateway))[0] == 200

        await wait_for(answers, 30, "the prediction to answer through Envoy")
        routes = _route_configs(gateway)
        assert f"seldon-gateway/{NS}/iris" in routes
        assert f"seldon-gateway/{NS}/other" not in routes, routes  # no request selected it yet
        code, out, err = await grpcurl(
            "-H", "seldon: other", "-H", f"namespace: {NS}", "-d", ROW,
            f"127.0.0.1:{gateway.port}", "seldon.protos.Seldon/Predict",
        )  # fmt: skip
        assert code == 0, err + gateway.log()
        assert json.loads(out)["data"]["names"] == ["t:0", "t:1", "t:2"]
        assert f"seldon-gateway/{NS}/other" in _route_configs(gateway)
