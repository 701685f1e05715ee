"""SnapshotBuilder: the same resources as translate + Snapshot.of, rebuilt only where things changed."""

from __future__ import annotations

from google.protobuf.message import Message

from tests.xds_controller import builders as b
from xds_controller import resource_types
from xds_controller.builder import SnapshotBuilder
from xds_controller.snapshot import Snapshot
from xds_controller.translate import ComponentEndpoints, ComponentKey, GatewaySettings, Upstream, translate

GATEWAY = GatewaySettings(listen_port=8000, reflection=Upstream("127.0.0.1", 9000))


def _deployments(count: int, canary: int = 25) -> list[b.Deployment]:
    made = []
    for i in range(count):
        dep = b.deployment(
            f"m{i}",
            b.Predictor("main", b.Unit("model"), traffic=100 - canary),
            b.Predictor("canary", b.Unit("model"), traffic=canary),
        )
        made.append(dep)
    return made


def _endpoints(count: int, port: int = 7000) -> dict[ComponentKey, ComponentEndpoints]:
    return {
        ComponentKey("default", f"m{i}", p, "model"): ComponentEndpoints(
            http=(Upstream("127.0.0.1", port + i),)
        )
        for i in range(count)
        for p in ("main", "canary")
    }


def _unpacked(snapshot: Snapshot) -> dict[str, dict[str, Message]]:
    return {
        url: {name: snapshot.unpack(url, name) for name in snapshot.get(url)}
        for url in resource_types.PUSH_ORDER
    }


def test_builder_holds_what_translate_gives() -> None:
    deployments, endpoints = _deployments(5), _endpoints(5)
    built = SnapshotBuilder(GATEWAY).build(deployments, endpoints)
    reference = translate(deployments, endpoints, GATEWAY).to_snapshot()
    assert _unpacked(built) == _unpacked(reference)
    for url in (resource_types.CLUSTER, resource_types.ENDPOINT, resource_types.LISTENER):
        assert built.version(url) == reference.version(url)
    assert built.links == reference.links
    built.consistency_check()


def test_only_changed_deployments_are_rendered_and_versions_follow_content() -> None:
    builder = SnapshotBuilder(GATEWAY)
    deployments, endpoints = _deployments(50), _endpoints(50)
    first = builder.build(deployments, endpoints)
    assert builder.rendered == 50
    again = builder.build(list(reversed(deployments)), dict(endpoints))
    assert builder.rendered == 0
    assert again.versions == first.versions

    changed = list(deployments)
    changed[7] = _deployments(8, canary=60)[7]
    moved = {**endpoints, ComponentKey("default", "m3", "main", "model"): ComponentEndpoints()}
    third = builder.build(changed, moved)
    assert builder.rendered == 2
    assert _unpacked(third) == _unpacked(translate(changed, moved, GATEWAY).to_snapshot())
    changed_clusters = {
        n
        for n, v in third.versions_of(resource_types.ENDPOINT).items()
        if first.versions_of(resource_types.ENDPOINT)[n] != v
    }
    assert changed_clusters == {"default.m3.main.model.http"}

    # Removing a deployment removes its resources; adding it back gives the first versions again.
    fewer = builder.build(deployments[:-1], endpoints)
    assert "default.m49.main.model.http" not in fewer.get(resource_types.CLUSTER)
    assert builder.build(deployments, endpoints).versions == first.versions
