"""The ADS server against a scripted client: ACK, NACK, stale nonces, push order, reconnects."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import duration_pb2
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.xds_controller import builders as b
from tests.xds_controller.harness import ControlPlane, wait_until
from xds_controller import resource_types
from xds_controller.snapshot import Snapshot
from xds_controller.translate import GatewaySettings, translate

NODE = "test-node"
TIMEOUT = 10.0


class AdsClient:
    """One ADS stream driven by hand: send requests, receive responses with a deadline."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._requests: queue.Queue[discovery_pb2.DiscoveryRequest | None] = queue.Queue()
        self._responses: queue.Queue[discovery_pb2.DiscoveryResponse | Exception] = queue.Queue()
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self._call = stub.StreamAggregatedResources(self._outgoing())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._first = True

    def _outgoing(self) -> Iterator[discovery_pb2.DiscoveryRequest]:
        while (request := self._requests.get()) is not None:
            yield request

    def _read(self) -> None:
        try:
            for response in self._call:
                self._responses.put(response)
        except grpc.RpcError as error:
            self._responses.put(error)

    def send(
        self,
        type_url: str,
        names: tuple[str, ...] = (),
        version: str = "",
        nonce: str = "",
        error: str | None = None,
    ) -> None:
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url, resource_names=names, version_info=version, response_nonce=nonce
        )
        if self._first:
            request.node.CopyFrom(base_pb2.Node(id=NODE))
            self._first = False
        if error is not None:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        self._requests.put(request)

    def ack(self, response: discovery_pb2.DiscoveryResponse, names: tuple[str, ...] = ()) -> None:
        self.send(response.type_url, names, response.version_info, response.nonce)

    def receive(self) -> discovery_pb2.DiscoveryResponse:
        item = self._responses.get(timeout=TIMEOUT)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()
        self._reader.join(TIMEOUT)


@pytest.fixture
def plane() -> Iterator[ControlPlane]:
    control = ControlPlane().start()
    yield control
    control.stop()


@pytest.fixture
def channel(plane: ControlPlane) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(plane.address) as chan:
        yield chan


def _snapshot(*names: str, timeout_s: int = 1) -> Snapshot:
    clusters = [
        cluster_pb2.Cluster(
            name=name,
            type=cluster_pb2.Cluster.STATIC,
            connect_timeout=duration_pb2.Duration(seconds=timeout_s),
        )
        for name in names
    ]
    return Snapshot.of(clusters)


def test_ack_then_update_then_nack_is_never_resent(plane: ControlPlane, channel: grpc.Channel) -> None:
    plane.cache.set_snapshot(NODE, _snapshot("a"))
    client = AdsClient(channel)
    client.send(resource_types.CLUSTER)
    first = client.receive()
    assert first.type_url == resource_types.CLUSTER
    assert first.version_info == _snapshot("a").version(resource_types.CLUSTER)
    assert [r.type_url for r in first.resources] == [resource_types.CLUSTER]
    client.ack(first)
    wait_until(
        lambda: plane.cache.status(NODE).acked.get(resource_types.CLUSTER) == first.version_info,
        TIMEOUT,
        "ACK",
    )

    bad = _snapshot("a", "b")
    plane.cache.set_snapshot(NODE, bad)
    second = client.receive()
    assert second.version_info == bad.version(resource_types.CLUSTER)
    assert second.nonce != first.nonce
    client.send(
        resource_types.CLUSTER, version=first.version_info, nonce=second.nonce, error="cluster b is bad"
    )
    wait_until(lambda: plane.cache.status(NODE).last_nack is not None, TIMEOUT, "NACK recorded")
    status = plane.cache.status(NODE)
    assert status.last_nack is not None
    assert (status.last_nack.type_url, status.last_nack.version) == (
        resource_types.CLUSTER,
        second.version_info,
    )
    assert status.last_nack.message == "cluster b is bad"
    assert status.acked[resource_types.CLUSTER] == first.version_info
    assert plane.recorder.nacks == [(NODE, resource_types.CLUSTER, second.version_info, "cluster b is bad")]
    client.close()

    # A new stream (Envoy reconnecting) must not get the rejected version: the first thing it receives is
    # the listener response it asks for after its cluster request.
    again = AdsClient(channel)
    again.send(resource_types.CLUSTER)
    again.send(resource_types.LISTENER)
    assert again.receive().type_url == resource_types.LISTENER
    fixed = _snapshot("a", "c")
    plane.cache.set_snapshot(NODE, fixed)
    assert again.receive().version_info == fixed.version(resource_types.CLUSTER)
    assert plane.recorder.sent(resource_types.CLUSTER, bad.version(resource_types.CLUSTER)) == 1
    again.close()


def test_stale_nonce_is_ignored(plane: ControlPlane, channel: grpc.Channel) -> None:
    plane.cache.set_snapshot(NODE, _snapshot("a"))
    client = AdsClient(channel)
    client.send(resource_types.CLUSTER)
    first = client.receive()
    client.ack(first)
    wait_until(lambda: bool(plane.recorder.acks), TIMEOUT, "first ACK")
    plane.cache.set_snapshot(NODE, _snapshot("a", "b"))
    second = client.receive()
    # A late NACK carrying the first response's nonce is stale: no NACK is recorded, nothing is resent.
    client.send(resource_types.CLUSTER, version=first.version_info, nonce=first.nonce, error="late")
    client.ack(second)
    wait_until(lambda: len(plane.recorder.acks) == 2, TIMEOUT, "second ACK")
    assert plane.recorder.nacks == []
    assert plane.cache.status(NODE).last_nack is None
    assert plane.cache.status(NODE).acked[resource_types.CLUSTER] == second.version_info
    client.close()


def test_unchanged_snapshot_is_not_pushed(plane: ControlPlane, channel: grpc.Channel) -> None:
    assert plane.cache.set_snapshot(NODE, _snapshot("a"))
    client = AdsClient(channel)
    client.send(resource_types.CLUSTER)
    client.ack(client.receive())
    assert not plane.cache.set_snapshot(NODE, _snapshot("a"))  # same content, same versions
    plane.cache.set_snapshot(NODE, _snapshot("a", timeout_s=2))
    assert client.receive().version_info == _snapshot("a", timeout_s=2).version(resource_types.CLUSTER)
    assert len([r for _, r in plane.recorder.responses if r.type_url == resource_types.CLUSTER]) == 2
    client.close()


def test_push_order_and_routes_wait_for_their_clusters_and_endpoints(
    plane: ControlPlane, channel: grpc.Channel
) -> None:
    resources = translate([b.single("iris"), b.single("wine")], {}, GatewaySettings())
    snapshot = resources.to_snapshot()
    cluster_names = tuple(sorted(snapshot.get(resource_types.CLUSTER)))
    client = AdsClient(channel)
    # Subscribe in the "wrong" order before any snapshot exists, then publish everything at once.
    client.send(resource_types.ROUTE, ("seldon-gateway",))
    client.send(resource_types.LISTENER)
    client.send(resource_types.ENDPOINT, ("default.iris.default.model.http",))
    client.send(resource_types.CLUSTER)
    wait_until(lambda: plane.cache.status(NODE).connected, TIMEOUT, "stream registered")
    plane.cache.set_snapshot(NODE, snapshot)
    got = [client.receive() for _ in range(3)]
    assert [r.type_url for r in got] == [
        resource_types.CLUSTER,
        resource_types.ENDPOINT,
        resource_types.LISTENER,
    ]
    assert len(got[0].resources) == len(resources.clusters)  # wildcard: every cluster
    assert len(got[1].resources) == 1  # named: only the subscribed assignment
    # The routes name clusters whose endpoints are not applied yet: they are held back until they are.
    client.ack(got[0])
    client.ack(got[2])
    client.ack(got[1], ("default.iris.default.model.http",))
    client.send(resource_types.ENDPOINT, cluster_names, got[1].version_info, got[1].nonce)
    endpoints = client.receive()
    assert endpoints.type_url == resource_types.ENDPOINT
    assert len(endpoints.resources) == len(cluster_names)
    assert plane.recorder.sent(resource_types.ROUTE, snapshot.version(resource_types.ROUTE)) == 0
    client.ack(endpoints, cluster_names)
    routes = client.receive()
    assert (routes.type_url, routes.version_info) == (
        resource_types.ROUTE,
        snapshot.version(resource_types.ROUTE),
    )
    client.ack(routes, ("seldon-gateway",))
    wait_until(
        lambda: plane.cache.status(NODE).acked.get(resource_types.ROUTE) == routes.version_info,
        TIMEOUT,
        "ACK",
    )

    # Removing wine: first the routes stop naming its clusters, and only once they are applied do the
    # clusters go (make before break).
    smaller = translate([b.single("iris")], {}, GatewaySettings()).to_snapshot()
    plane.cache.set_snapshot(NODE, smaller)
    routes = client.receive()
    assert (routes.type_url, routes.version_info) == (
        resource_types.ROUTE,
        smaller.version(resource_types.ROUTE),
    )
    client.ack(routes, ("seldon-gateway",))
    clusters = client.receive()
    assert (clusters.type_url, clusters.version_info) == (
        resource_types.CLUSTER,
        smaller.version(resource_types.CLUSTER),
    )
    assert all(".wine." not in c.value.decode(errors="replace") for c in clusters.resources)
    client.close()


def test_first_request_without_node_is_refused(channel: grpc.Channel) -> None:
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    call = stub.StreamAggregatedResources(
        iter([discovery_pb2.DiscoveryRequest(type_url=resource_types.CLUSTER)])
    )
    with pytest.raises(grpc.RpcError) as raised:
        next(iter(call))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_and_connected_flag(plane: ControlPlane, channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    assert not plane.cache.status(NODE).connected
    client = AdsClient(channel)
    client.send(resource_types.CLUSTER)
    wait_until(lambda: plane.cache.status(NODE).connected, TIMEOUT, "connected")
    client.close()
    wait_until(lambda: not plane.cache.status(NODE).connected, TIMEOUT, "disconnected")
