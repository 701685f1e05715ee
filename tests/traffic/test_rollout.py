"""Rollouts under steady load through the real Envoy, over delta and state-of-the-world ADS: weight
shifts and predictor swaps drop no request, and a config Envoy rejects is never re-sent while the last
good one keeps serving."""

from __future__ import annotations

import dataclasses
import http.client
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from envoy.config.cluster.v3 import cluster_pb2

from tests.traffic.helpers import rest, split
from tests.xds_controller.harness import ControlPlane, Gateway, HttpUpstream, wait_until
from xds_controller import resource_types
from xds_controller.translate import Resources

pytestmark = pytest.mark.slow

TIMEOUT = 30.0


@pytest.fixture(params=["delta", "sotw"])
def any_gateway(request: pytest.FixtureRequest, plane: ControlPlane, tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(plane, tmp_path / "envoy", delta=request.param == "delta", scoped=True)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def versions() -> Iterator[dict[str, HttpUpstream]]:
    made = {name: HttpUpstream(name).start() for name in ("v1", "v2", "v3")}
    yield made
    for upstream in made.values():
        upstream.stop()


class Load:
    """Two clients sending requests back to back until stopped; counts statuses and predictors."""

    def __init__(self, gateway: Gateway, path: str) -> None:
        self._port = gateway.settings.listen_port
        self._path = path
        self._stop = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.predictors: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT)

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=TIMEOUT)
        while not self._stop.is_set():
            connection.request("POST", self._path, body=b"{}", headers={"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            with self._lock:
                self.statuses[response.status] += 1
                self.predictors[response.headers.get("Seldon-Predictor", "")] += 1
        connection.close()

    def total(self) -> int:
        with self._lock:
            return sum(self.statuses.values())


def _serve_some(load: Load, count: int = 30) -> None:
    target = load.total() + count
    wait_until(lambda: load.total() >= target, TIMEOUT, f"{count} more requests")


def test_canary_shift_and_predictor_swap_under_load_give_no_errors(
    any_gateway: Gateway, versions: dict[str, HttpUpstream]
) -> None:
    gw = any_gateway
    ups = {"v1": versions["v1"], "v2": versions["v2"]}
    gw.apply(gw.resources([split("roll", {"v1": 90, "v2": 10})], rest("roll", ups)))
    with Load(gw, "/seldon/default/roll/api/v1.0/predictions") as load:
        _serve_some(load)
        for canary in (10, 30, 50, 70, 90):
            gw.apply(gw.resources([split("roll", {"v1": 100 - canary, "v2": canary})], rest("roll", ups)))
            _serve_some(load)
        # Swap v1 out for a brand-new v3: its clusters must exist before the route names them, and v1's
        # clusters may go only after the route stops naming them.
        swapped = {"v2": versions["v2"], "v3": versions["v3"]}
        gw.apply(gw.resources([split("roll", {"v2": 50, "v3": 50})], rest("roll", swapped)))
        _serve_some(load)
        gw.apply(gw.resources([split("roll", {"v3": 100})], rest("roll", {"v3": versions["v3"]})))
        _serve_some(load)
    assert set(load.statuses) == {200}, load.statuses
    assert {"v1", "v2", "v3"} <= set(load.predictors)


def _refusing(resources: Resources, deployment: str) -> Resources:
    """The translation, except that `deployment`'s clusters carry a value Envoy must refuse."""
    clusters = []
    for message in resources.clusters:
        cluster = cluster_pb2.Cluster()
        cluster.CopyFrom(message)
        if f".{deployment}." in cluster.name:
            cluster.connect_timeout.seconds = -1
        clusters.append(cluster)
    return dataclasses.replace(resources, clusters=tuple(clusters))


def test_a_rejected_cluster_is_never_resent_and_its_route_never_sent(
    any_gateway: Gateway, versions: dict[str, HttpUpstream]
) -> None:
    gw = any_gateway
    good = gw.apply(gw.resources([split("iris", {"v1": 100})], rest("iris", {"v1": versions["v1"]})))
    deployments = [split("iris", {"v1": 100}), split("broken", {"v2": 100})]
    endpoints = {**rest("iris", {"v1": versions["v1"]}), **rest("broken", {"v2": versions["v2"]})}
    rejected = _refusing(gw.resources(deployments, endpoints), "broken").to_snapshot()
    gw.publish(rejected)
    status = lambda: gw.plane.cache.status(gw.node_id)  # noqa: E731
    wait_until(lambda: status().last_nack is not None, TIMEOUT, "the NACK")
    nack = status().last_nack
    assert nack is not None
    assert nack.type_url == resource_types.CLUSTER
    assert "duration" in nack.message.lower()
    # Envoy never ran the routes naming the refused clusters (scoped over SotW it may ACK the good ones
    # again, under another label, when it subscribes to the new scope's route configuration)
    assert status().acked[resource_types.ROUTE] != rejected.version(resource_types.ROUTE)
    assert good.version(resource_types.ROUTE) != rejected.version(resource_types.ROUTE)
    with httpx.Client() as client:
        assert client.get(f"{gw.url}/seldon/default/iris/x").status_code == 200
        # The route naming the refused cluster was never sent: the deployment does not exist for Envoy.
        refused = client.get(f"{gw.url}/seldon/default/broken/x")
        assert refused.status_code == 404
        assert refused.json()["status"]["reason"] == "NOT_FOUND"
    assert (
        gw.plane.recorder.sent(resource_types.ROUTE, rejected.version(resource_types.ROUTE), gw.node_id) == 0
    )

    # An endpoint change elsewhere publishes a new snapshot: the refused clusters are still not re-sent.
    moved = {**endpoints, **rest("iris", {"v1": versions["v3"]})}
    updated = _refusing(gw.resources(deployments, moved), "broken").to_snapshot()
    gw.publish(updated)
    wait_until(
        lambda: httpx.get(f"{gw.url}/seldon/default/iris/x").json()["upstream"] == "v3",
        TIMEOUT,
        "iris moved to v3",
    )
    broken_cluster = "default.broken.v2.model.http"
    version = rejected.versions_of(resource_types.CLUSTER)[broken_cluster]
    sent = gw.plane.recorder.sent_resource(resource_types.CLUSTER, broken_cluster, version, gw.node_id) + sum(
        1
        for node, r in gw.plane.recorder.responses
        if node == gw.node_id
        and r.type_url == resource_types.CLUSTER
        and any(broken_cluster.encode() in packed.value for packed in r.resources)
    )
    assert sent == 1
    assert httpx.get(f"{gw.url}/seldon/default/broken/x").status_code == 404

    # Fixed, it goes through.
    gw.apply(gw.resources(deployments, moved))
    assert httpx.get(f"{gw.url}/seldon/default/broken/x").json()["upstream"] == "v2"
