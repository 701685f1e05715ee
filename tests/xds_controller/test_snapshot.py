from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from tests.xds_controller import builders as b
from xds_controller import resource_types
from xds_controller.snapshot import EMPTY_VERSION, InconsistentSnapshotError, Layers, Links, Snapshot, Version
from xds_controller.translate import ComponentEndpoints, ComponentKey, GatewaySettings, Upstream, translate

KEY = ComponentKey("default", "iris", "default", "model")


def _resources(port: int = 9000) -> list[Message]:
    endpoints = {KEY: ComponentEndpoints(http=(Upstream("127.0.0.1", port),))}
    return list(translate([b.single()], endpoints, GatewaySettings()).all())


def test_same_content_gives_the_same_versions() -> None:
    first = Snapshot.of(_resources())
    second = Snapshot.of(reversed(_resources()))
    assert first.versions == second.versions
    assert all(
        v != EMPTY_VERSION
        for url, v in first.versions.items()
        if url not in (resource_types.SECRET, resource_types.SCOPED_ROUTE)
    )


def test_changed_endpoints_change_only_the_endpoint_version() -> None:
    before, after = Snapshot.of(_resources(9000)), Snapshot.of(_resources(9001))
    changed = {url for url in resource_types.PUSH_ORDER if before.version(url) != after.version(url)}
    assert changed == {resource_types.ENDPOINT}


def test_duplicate_names_are_refused() -> None:
    cluster = cluster_pb2.Cluster(name="a")
    with pytest.raises(ValueError, match="duplicate CDS resource 'a'"):
        Snapshot.of([cluster, cluster])


def test_translated_resources_are_consistent() -> None:
    Snapshot.of(_resources()).consistency_check()


def test_consistency_check_names_every_dangling_reference() -> None:
    resources = _resources()
    without = [
        r
        for r in resources
        if not (isinstance(r, endpoint_pb2.ClusterLoadAssignment) and r.cluster_name.endswith(".http"))
        and not (isinstance(r, cluster_pb2.Cluster) and r.name.endswith(".grpc"))
    ]
    with pytest.raises(InconsistentSnapshotError) as raised:
        Snapshot.of(without).consistency_check()
    problems = " | ".join(raised.value.problems)
    assert "names missing cluster 'default.iris.default.model.grpc'" in problems
    assert "EDS cluster 'default.iris.default.model.http' has no ClusterLoadAssignment" in problems

    listeners_only = [r for r in resources if resource_types.type_url_of(r) == resource_types.LISTENER]
    with pytest.raises(InconsistentSnapshotError, match="names missing route configuration 'seldon-gateway'"):
        Snapshot.of(listeners_only).consistency_check()


def _hinted(clusters: dict[str, str], routes: dict[str, frozenset[str]], since: Snapshot | None) -> Snapshot:
    """A snapshot whose change hints name every resource as changed since `since`."""
    resources = {
        resource_types.CLUSTER: {n: any_pb2.Any() for n in clusters},
        resource_types.ENDPOINT: {n: any_pb2.Any() for n in clusters.values()},
        resource_types.ROUTE: {n: any_pb2.Any() for n in routes},
    }
    versions = {url: {n: Version("v") for n in named} for url, named in resources.items()}
    changes = {url: (since.versions_of(url), frozenset(versions[url])) for url in versions} if since else None
    return Snapshot.assemble(resources, versions, Links({}, routes, clusters), changes=changes)


def test_a_hinted_change_with_a_dangling_reference_is_caught() -> None:
    first = _hinted({"c1": "c1"}, {"r1": frozenset({"c1"})}, None)
    first.consistency_check()
    second = _hinted({"c1": "c1"}, {"r1": frozenset({"c1"}), "r2": frozenset({"c2"})}, first)
    with pytest.raises(InconsistentSnapshotError, match="missing cluster 'c2'"):
        second.consistency_check(since=first)


def test_layers_freeze_views_that_later_changes_do_not_touch() -> None:
    layers: Layers[int] = Layers()
    views = []
    expected: dict[str, int] = {}
    for step in range(300):
        name = f"n{step % 97}"
        if step % 5 == 4:
            layers.pop(name)
            expected.pop(name, None)
        elif step % 3:
            layers[name] = step
            expected[name] = step
        else:
            layers.update({name: step, "n4": step})
            expected.update({name: step, "n4": step})
        views.append((layers.freeze(), dict(expected)))
    for view, contents in views:
        assert dict(view) == contents
        assert len(view) == len(contents)
        assert all((name in view) == (name in contents) for name in ("n1", "n4", "absent"))


def test_swapping_two_resources_contents_changes_the_type_version() -> None:
    # each resource's share of its type's version is its own digest: its bytes carry its name, so two
    # resources trading endpoints do not cancel out in the XOR
    def assignments(first: int, second: int) -> Snapshot:
        up = ComponentEndpoints(http=(Upstream("127.0.0.1", first),))
        down = ComponentEndpoints(http=(Upstream("127.0.0.1", second),))
        other = ComponentKey("default", "wine", "default", "model")
        deployments = [b.single(), b.single("wine")]
        return translate(deployments, {KEY: up, other: down}, GatewaySettings()).to_snapshot()

    before, after = assignments(9000, 9001), assignments(9001, 9000)
    assert before.version(resource_types.ENDPOINT) != after.version(resource_types.ENDPOINT)
    assert before.version(resource_types.CLUSTER) == after.version(resource_types.CLUSTER)
