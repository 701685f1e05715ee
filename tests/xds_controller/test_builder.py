"""SnapshotBuilder: the same resources as translate + Snapshot.of, rebuilt only where things changed."""

from __future__ import annotations

import dataclasses

import pytest
from google.protobuf.message import Message

from tests.xds_controller import builders as b
from xds_controller import resource_types
from xds_controller.builder import SnapshotBuilder
from xds_controller.snapshot import Snapshot
from xds_controller.translate import ComponentEndpoints, ComponentKey, GatewaySettings, Upstream, translate
from xds_controller.translate.clusters import component_keys
from xds_controller.translate.tracing import GatewayTracingSettings

GATEWAY = GatewaySettings(listen_port=8000, reflection=Upstream("127.0.0.1", 9000))
SCOPED = dataclasses.replace(GATEWAY, scoped=True, extproc=Upstream("127.0.0.1", 9100))


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


@pytest.mark.parametrize("gateway", [GATEWAY, SCOPED], ids=["one-route-config", "scoped"])
def test_builder_holds_what_translate_gives(gateway: GatewaySettings) -> None:
    deployments, endpoints = _deployments(5), _endpoints(5)
    built = SnapshotBuilder(gateway).build(deployments, endpoints)
    reference = translate(deployments, endpoints, gateway).to_snapshot()
    assert _unpacked(built) == _unpacked(reference)
    same = [resource_types.CLUSTER, resource_types.ENDPOINT, resource_types.LISTENER]
    if gateway.scoped:  # no spliced route configuration: every version is the same
        same = list(resource_types.PUSH_ORDER)
        assert len(built.get(resource_types.SCOPED_ROUTE)) == 6  # five deployments and the default
    for url in same:
        assert built.version(url) == reference.version(url)
        assert built.versions_of(url) == reference.versions_of(url)
    assert built.links == reference.links
    built.consistency_check()


@pytest.mark.parametrize("gateway", [GATEWAY, SCOPED], ids=["one-route-config", "scoped"])
def test_only_changed_deployments_are_rendered_and_versions_follow_content(gateway: GatewaySettings) -> None:
    builder = SnapshotBuilder(gateway)
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
    assert _unpacked(third) == _unpacked(translate(changed, moved, gateway).to_snapshot())
    changed_clusters = {
        n
        for n, v in third.versions_of(resource_types.ENDPOINT).items()
        if first.versions_of(resource_types.ENDPOINT)[n] != v
    }
    assert changed_clusters == {"default.m3.main.model.http"}

    # Removing a deployment removes its resources; adding it back gives the first versions again.
    fewer = builder.build(deployments[:-1], endpoints)
    assert "default.m49.main.model.http" not in fewer.get(resource_types.CLUSTER)
    if gateway.scoped:
        assert "seldon-gateway/default/m49" not in fewer.get(resource_types.ROUTE)
        assert "seldon-gateway/default/m49" not in fewer.get(resource_types.SCOPED_ROUTE)
        fewer.consistency_check()
    assert builder.build(deployments, endpoints).versions == first.versions


def test_a_scoped_snapshot_names_what_changed_since_the_one_before() -> None:
    builder = SnapshotBuilder(SCOPED)
    deployments, endpoints = _deployments(20), _endpoints(20)
    first = builder.build(deployments, endpoints)
    changed = [*deployments[:3], _deployments(5, canary=60)[3], *deployments[4:19]]  # m3 changed, m19 gone
    second = builder.build(changed, endpoints)
    for url in (
        resource_types.CLUSTER,
        resource_types.ENDPOINT,
        resource_types.ROUTE,
        resource_types.SCOPED_ROUTE,
    ):
        since = first.versions_of(url)
        differ = {n for n, _ in second.versions_of(url).items() ^ since.items()}
        named = second.changed_names(url, since)
        assert differ <= named, url  # every difference is named (the hint may name a few more)
        assert all(".m3." in n or "/m3" in n or ".m19." in n or "/m19" in n for n in named), named
    unrelated = SnapshotBuilder(SCOPED).build(deployments, endpoints)  # no hint relative to it: a diff
    assert second.changed_names(resource_types.ROUTE, unrelated.versions_of(resource_types.ROUTE)) == {
        "seldon-gateway/default/m3",
        "seldon-gateway/default/m19",
    }


@pytest.mark.parametrize("gateway", [GATEWAY, SCOPED], ids=["one-route-config", "scoped"])
def test_update_upserts_and_removes_only_the_named_deployments(gateway: GatewaySettings) -> None:
    builder = SnapshotBuilder(gateway)
    deployments, endpoints = _deployments(30), _endpoints(31)
    builder.build(deployments, endpoints)
    changed = _deployments(8, canary=60)[7]
    added = _deployments(31)[30]
    updated = builder.update([changed, added], [("default", "m12"), ("default", "absent")], endpoints)
    assert builder.rendered == 2
    final = [d for d in deployments if d.metadata.name not in ("m7", "m12")] + [changed, added]
    assert _unpacked(updated) == _unpacked(translate(final, endpoints, gateway).to_snapshot())
    assert updated.versions == SnapshotBuilder(gateway).build(final, endpoints).versions
    assert updated.links == translate(final, endpoints, gateway).to_snapshot().links
    updated.consistency_check()
    assert builder.update([changed], [], endpoints).versions == updated.versions  # unchanged: nothing
    assert builder.rendered == 0
    # many applies fold the layers back together; contents stay exact
    for i in range(40):
        builder.update([_deployments(1, canary=i)[0]], [], endpoints)
    last = builder.update([], [("default", "m0")], endpoints)
    final = [d for d in final if d.metadata.name != "m0"]
    assert _unpacked(last) == _unpacked(translate(final, endpoints, gateway).to_snapshot())
    assert last.versions == SnapshotBuilder(gateway).build(final, endpoints).versions
    assert len(last.get(resource_types.CLUSTER)) == len(list(last.get(resource_types.CLUSTER)))


def test_an_update_is_checked_from_its_hints_and_a_removal_in_full() -> None:
    builder = SnapshotBuilder(SCOPED)
    deployments, endpoints = _deployments(10), _endpoints(11)
    first = builder.build(deployments, endpoints)
    first.consistency_check()
    added = builder.update(_deployments(11)[10:], [], endpoints)
    assert added._consistent_since(first)  # judged from the hints alone
    added.consistency_check(since=first)
    removed = builder.update([], [("default", "m3")], endpoints)
    assert not removed._consistent_since(added)  # a removal: the full check decides
    removed.consistency_check(since=added)


@dataclasses.dataclass(frozen=True)
class _V2Spec:
    predictors: tuple[b.Predictor, ...]
    protocol: str = "v2"


def _varied(name: str, namespace: str = "default") -> list[b.Deployment | b.V2Deployment]:
    """One deployment of each shape, named `name`+shape index (so same-length names share a shape)."""
    tree = b.Unit("combiner", (b.Unit("left"), b.Unit("right", (b.Unit("leaf"),))))
    logger = {"mode": "all", "url": "http://sink"}
    made: list[b.Deployment | b.V2Deployment] = [
        b.deployment(f"{name}0", b.Predictor("main", b.Unit("model"), traffic=75),
                     b.Predictor("canary", b.Unit("model"), traffic=25), namespace=namespace),
        b.deployment(f"{name}1", b.Predictor("main", b.Unit("model"), traffic=100),
                     b.Predictor("shadow-a", b.Unit("model"), traffic=20, shadow=True),
                     b.Predictor("shadow-b", b.Unit("model"), shadow=True), namespace=namespace),
        b.deployment(f"{name}2", b.Predictor("graph", tree, traffic=100), namespace=namespace),
        b.deployment(f"{name}3", b.Predictor("main", b.Unit("model", logger=logger), traffic=60),
                     b.Predictor("canary", b.Unit("model"), traffic=40), namespace=namespace,
                     **{"seldon.io/sticky-header": "x-user", "seldon.io/retries": "2",
                        "seldon.io/rest-timeout": "1500", "seldon.io/grpc-timeout": "2500",
                        "seldon.io/per-try-timeout": "300", "seldon.io/grpc-max-message-size": "52428800"}),
        b.V2Deployment(b.Meta(f"{name}4", namespace), _V2Spec((b.Predictor("v2", b.Unit("triton"), 100),))),
        # the deployment's name is also its predictor's and node's
        b.deployment(f"{name}5", b.Predictor(f"{name}5", b.Unit(f"{name}5"), traffic=100),
                     namespace=namespace),
    ]  # fmt: skip
    return made


TRACED = dataclasses.replace(
    SCOPED, tracing=GatewayTracingSettings("127.0.0.1", 4317, 50.0), extproc_rest=Upstream("127.0.0.1", 9200)
)


@pytest.mark.parametrize("gateway", [GATEWAY, SCOPED, TRACED], ids=["one-route-config", "scoped", "traced"])
def test_routes_from_shape_templates_equal_the_plain_translation(gateway: GatewaySettings) -> None:
    deployments = [
        *_varied("alpha"),
        *_varied("bravo"),  # same lengths as alpha: filled from alpha's templates
        *_varied("omega", namespace="other"),  # same lengths as default
        *_varied("my-model-"),
        *_varied("my.v2-a-", namespace="team-a"),
        *_varied("my.v2-b-", namespace="team-b"),
        *_varied("a"),  # one-letter names
    ]
    endpoints = {
        key: ComponentEndpoints(http=(Upstream("127.0.0.1", 7000 + i),), grpc=(Upstream("::1", 0),))
        for i, key in enumerate(component_keys(deployments))
    }
    builder = SnapshotBuilder(gateway)
    built = builder.build(deployments, endpoints)
    # bravo and my.v2-b- share shapes 0-4 with alpha and my.v2-a- (5 names its predictor after itself)
    assert builder._parts.filled == 2 * 5
    assert None not in builder._parts._templates.values()  # every shape passed its check
    reference = translate(deployments, endpoints, gateway).to_snapshot()
    assert _unpacked(built) == _unpacked(reference)
    for url in resource_types.PUSH_ORDER:
        if gateway.scoped or url != resource_types.ROUTE:
            assert built.versions_of(url) == reference.versions_of(url), url
    assert built.links == reference.links
    built.consistency_check()


@dataclasses.dataclass(frozen=True)
class _ListSpec:
    predictors: list[b.Predictor]  # a frozen dataclass that cannot be hashed: the list inside


def test_a_spec_that_cannot_be_hashed_is_templated_by_its_repr() -> None:
    def made(name: str) -> b.V2Deployment:
        return b.V2Deployment(b.Meta(name), _ListSpec([b.Predictor("main", b.Unit("model"), traffic=100)]))

    deployments, endpoints = [made("first"), made("other")], _endpoints(0)
    builder = SnapshotBuilder(SCOPED)
    built = builder.build(deployments, endpoints)
    assert builder._parts.filled == 1  # "other" from the template of "first"
    (key,) = builder._parts._templates  # one shape, its spec (at index -2) keyed by repr
    assert isinstance(key[-2], tuple) and key[-2][0] == "repr"
    assert _unpacked(built) == _unpacked(translate(deployments, endpoints, SCOPED).to_snapshot())


def test_names_beyond_ascii_are_rendered_in_full() -> None:
    # "éabc" has the length (in characters) and punctuation (none) of "abcd", not its length in bytes:
    # filled from the template of "abcd", its length prefixes would be wrong
    deployments = [b.single("abcd"), b.single("éabc")]
    builder = SnapshotBuilder(SCOPED)
    built = builder.build(deployments, {})
    assert builder._parts.filled == 0
    assert _unpacked(built) == _unpacked(translate(deployments, {}, SCOPED).to_snapshot())
