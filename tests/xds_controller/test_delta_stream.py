"""The delta ADS server against a scripted client: only changes pushed, removals, subscriptions,
reconnects with initial versions, and NACKed resource versions never re-sent."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import duration_pb2
from google.rpc import status_pb2

from tests.xds_controller.harness import ControlPlane, wait_until
from xds_controller import resource_types
from xds_controller.snapshot import Snapshot

NODE = "delta-node"
TIMEOUT = 10.0


class DeltaClient:
    def __init__(self, channel: grpc.Channel) -> None:
        self._requests: queue.Queue[discovery_pb2.DeltaDiscoveryRequest | None] = queue.Queue()
        self._responses: queue.Queue[discovery_pb2.DeltaDiscoveryResponse | Exception] = queue.Queue()
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self._call = stub.DeltaAggregatedResources(self._outgoing())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._first = True

    def _outgoing(self) -> Iterator[discovery_pb2.DeltaDiscoveryRequest]:
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
        subscribe: tuple[str, ...] = (),
        unsubscribe: tuple[str, ...] = (),
        nonce: str = "",
        error: str | None = None,
        initial: Mapping[str, str] | None = None,
    ) -> None:
        request = discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=subscribe,
            resource_names_unsubscribe=unsubscribe,
            response_nonce=nonce,
            initial_resource_versions=dict(initial or {}),
        )
        if self._first:
            request.node.CopyFrom(base_pb2.Node(id=NODE))
            self._first = False
        if error is not None:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        self._requests.put(request)

    def ack(self, response: discovery_pb2.DeltaDiscoveryResponse) -> None:
        self.send(response.type_url, nonce=response.nonce)

    def receive(self) -> discovery_pb2.DeltaDiscoveryResponse:
        item = self._responses.get(timeout=TIMEOUT)
        if isinstance(item, Exception):
            raise item
        return item

    def receive_names(self, names: list[str]) -> discovery_pb2.DeltaDiscoveryResponse:
        response = self.receive()
        assert sorted(r.name for r in response.resources) == names
        return response

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


def _clusters(**timeouts: int) -> Snapshot:
    return Snapshot.of(
        cluster_pb2.Cluster(
            name=name, type=cluster_pb2.Cluster.STATIC, connect_timeout=duration_pb2.Duration(seconds=seconds)
        )
        for name, seconds in timeouts.items()
    )


def _names(response: discovery_pb2.DeltaDiscoveryResponse) -> dict[str, str]:
    return {r.name: r.version for r in response.resources}


def test_only_changed_resources_are_pushed_and_removals_are_named(
    plane: ControlPlane, channel: grpc.Channel
) -> None:
    first = _clusters(a=1, b=1, c=1)
    plane.cache.set_snapshot(NODE, first)
    client = DeltaClient(channel)
    client.send(resource_types.CLUSTER)  # no names: legacy wildcard
    response = client.receive()
    assert _names(response) == dict(first.versions_of(resource_types.CLUSTER))
    assert response.system_version_info == first.version(resource_types.CLUSTER)
    client.ack(response)
    wait_until(
        lambda: (
            plane.cache.status(NODE).acked.get(resource_types.CLUSTER)
            == first.version(resource_types.CLUSTER)
        ),
        TIMEOUT,
        "ACK",
    )

    second = _clusters(a=1, b=2, d=1)
    plane.cache.set_snapshot(NODE, second)
    response = client.receive()
    assert _names(response) == {name: second.versions_of(resource_types.CLUSTER)[name] for name in ("b", "d")}
    assert list(response.removed_resources) == ["c"]
    client.ack(response)
    wait_until(lambda: len(plane.recorder.acks) == 2, TIMEOUT, "second ACK")

    # Same content again: nothing is pushed (the next response is the following real change).
    assert not plane.cache.set_snapshot(NODE, _clusters(a=1, b=2, d=1))
    plane.cache.set_snapshot(NODE, _clusters(a=3, b=2, d=1))
    assert list(_names(client.receive())) == ["a"]
    client.close()


def test_reconnect_with_initial_versions_gets_only_the_difference(
    plane: ControlPlane, channel: grpc.Channel
) -> None:
    snapshot = _clusters(a=1, b=2, c=1)
    plane.cache.set_snapshot(NODE, snapshot)
    versions = snapshot.versions_of(resource_types.CLUSTER)
    client = DeltaClient(channel)
    client.send(resource_types.CLUSTER, initial={"a": versions["a"], "b": "stale", "z": "gone-long-ago"})
    response = client.receive()
    assert _names(response) == {"b": versions["b"], "c": versions["c"]}
    assert list(response.removed_resources) == ["z"]
    client.close()


def test_named_subscriptions_resubscribe_and_missing_names(
    plane: ControlPlane, channel: grpc.Channel
) -> None:
    snapshot = Snapshot.of(
        [
            endpoint_pb2.ClusterLoadAssignment(cluster_name="x"),
            endpoint_pb2.ClusterLoadAssignment(cluster_name="y"),
        ]
    )
    plane.cache.set_snapshot(NODE, snapshot)
    client = DeltaClient(channel)
    client.send(resource_types.ENDPOINT, subscribe=("x",))
    response = client.receive()
    assert list(_names(response)) == ["x"]
    client.ack(response)
    client.send(resource_types.ENDPOINT, subscribe=("missing",))
    response = client.receive()
    assert (list(response.resources), list(response.removed_resources)) == ([], ["missing"])
    client.ack(response)
    # Subscribing again to what the client has: it is sent again (Envoy re-subscribes after a cluster update).
    client.send(resource_types.ENDPOINT, subscribe=("x",))
    assert list(_names(client.receive())) == ["x"]
    client.close()


def test_a_nacked_resource_version_is_never_sent_again(plane: ControlPlane, channel: grpc.Channel) -> None:
    plane.cache.set_snapshot(NODE, _clusters(a=1))
    client = DeltaClient(channel)
    client.send(resource_types.CLUSTER)
    client.ack(client.receive())
    bad = _clusters(a=1, b=5)
    plane.cache.set_snapshot(NODE, bad)
    response = client.receive()
    assert list(_names(response)) == ["b"]
    client.send(resource_types.CLUSTER, nonce=response.nonce, error="b is bad")
    wait_until(lambda: plane.cache.status(NODE).last_nack is not None, TIMEOUT, "NACK")
    nack = plane.cache.status(NODE).last_nack
    assert nack is not None
    assert (nack.version, nack.message) == (bad.version(resource_types.CLUSTER), "b is bad")
    client.close()

    # Reconnecting (Envoy restarted its stream): b at the rejected version is not offered again, while a
    # new cluster is; a fixed b goes through.
    again = DeltaClient(channel)
    again.send(resource_types.CLUSTER, initial={"a": bad.versions_of(resource_types.CLUSTER)["a"]})
    plane.cache.set_snapshot(NODE, _clusters(a=1, b=5, c=1))
    again.ack(again.receive_names(["c"]))
    fixed = _clusters(a=1, b=6, c=1)
    plane.cache.set_snapshot(NODE, fixed)
    assert _names(again.receive()) == {"b": fixed.versions_of(resource_types.CLUSTER)["b"]}
    again.close()
    bad_b = bad.versions_of(resource_types.CLUSTER)["b"]
    assert plane.recorder.sent_resource(resource_types.CLUSTER, "b", bad_b) == 1


def test_on_demand_clusters_are_sent_only_when_named_and_hold_no_route(
    plane: ControlPlane, channel: grpc.Channel
) -> None:
    """A wildcard CDS subscription gets only the eager clusters (answered even when there are none);
    one named by Envoy's on-demand filter comes with its later changes; a route naming an on-demand
    cluster Envoy does not have is sent at once (make-before-break would hold it otherwise)."""
    route = route_pb2.RouteConfiguration(
        name="r",
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name="h",
                domains=["*"],
                routes=[
                    route_components_pb2.Route(
                        match=route_components_pb2.RouteMatch(prefix="/"),
                        route=route_components_pb2.RouteAction(cluster="lazy"),
                    )
                ],
            )
        ],
    )

    def snapshot(lazy_timeout: int, eager: frozenset[str]) -> Snapshot:
        clusters = [
            cluster_pb2.Cluster(
                name=name, type=cluster_pb2.Cluster.STATIC, connect_timeout=duration_pb2.Duration(seconds=s)
            )
            for name, s in (("lazy", lazy_timeout), ("other", 1), *(("static", 1),) * bool(eager))
        ]
        return Snapshot.of([*clusters, route], eager_clusters=eager)

    plane.cache.set_snapshot(NODE, snapshot(1, frozenset()))
    client = DeltaClient(channel)
    client.send(resource_types.CLUSTER)
    empty = client.receive_names([])  # nothing eager: an empty answer, so Envoy's init goes on
    client.ack(empty)
    client.send(resource_types.ROUTE, subscribe=("r",))
    client.ack(client.receive_names(["r"]))  # not held for "lazy"
    plane.cache.set_snapshot(NODE, snapshot(1, frozenset({"static"})))
    client.ack(client.receive_names(["static"]))
    client.send(resource_types.CLUSTER, subscribe=("lazy",))  # the on_demand filter asks
    client.ack(client.receive_names(["lazy"]))
    plane.cache.set_snapshot(NODE, snapshot(2, frozenset({"static"})))
    client.receive_names(["lazy"])  # a cluster Envoy asked for gets its changes; "other" never came
    client.close()


def test_a_change_to_routes_envoy_never_asked_for_is_answered_empty_with_its_version(
    plane: ControlPlane, channel: grpc.Channel
) -> None:
    """With on-demand clusters (and so on-demand scoped routes) Envoy subscribes to a RouteConfiguration
    only once a request selects its scope: a snapshot changing only others still reaches Envoy as an
    empty answer with the snapshot's version, which its ACK records, so the node is seen in sync."""

    def snapshot(prefix: str) -> Snapshot:
        routes = [
            route_pb2.RouteConfiguration(
                name=name,
                virtual_hosts=[
                    route_components_pb2.VirtualHost(
                        name="h",
                        domains=["*"],
                        routes=[
                            route_components_pb2.Route(
                                match=route_components_pb2.RouteMatch(prefix=p),
                                direct_response=route_components_pb2.DirectResponseAction(status=404),
                            )
                        ],
                    )
                ],
            )
            for name, p in (("asked", "/"), ("lazy", prefix))
        ]
        return Snapshot.of(routes, eager_clusters=frozenset())

    plane.cache.set_snapshot(NODE, snapshot("/a"))
    client = DeltaClient(channel)
    client.send(resource_types.ROUTE, subscribe=("asked",))
    client.ack(client.receive_names(["asked"]))
    changed = snapshot("/b")
    plane.cache.set_snapshot(NODE, changed)
    empty = client.receive_names([])
    assert empty.system_version_info == changed.version(resource_types.ROUTE)
    client.ack(empty)
    wait_until(
        lambda: (
            plane.cache.status(NODE).acked.get(resource_types.ROUTE) == changed.version(resource_types.ROUTE)
        ),
        TIMEOUT,
        "the empty answer's ACK",
    )
    client.close()
