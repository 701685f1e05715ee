"""ClusterState and the snapshot it builds: readiness from EndpointSlices, what each kind of change
re-versions (a weight: routes only; scaling: endpoints only), invalid specs skipped."""

from __future__ import annotations

import logging

import pytest

from tests.xds_kube.cluster import endpoint, endpoint_slice, sdep
from xds_controller import resource_types
from xds_controller.builder import SnapshotBuilder
from xds_controller.kube import SERVICE_NODE, ClusterState, ControllerSettings
from xds_controller.kube.endpoints import parse_slice, service_endpoints
from xds_controller.snapshot import Snapshot
from xds_controller.translate import ComponentEndpoints, ComponentKey, Upstream

NS = "models"
MAIN = ComponentKey(NS, "iris", "main", SERVICE_NODE)
CANARY = ComponentKey(NS, "iris", "canary", SERVICE_NODE)


def _slice(name: str, service: str, *endpoints: dict[str, object]) -> dict[str, object]:
    return endpoint_slice(name, NS, service, list(endpoints), 9000, 9500)


def test_only_ready_endpoints_count_and_serving_terminating_ones_when_none_is() -> None:
    parsed = parse_slice(
        _slice(
            "s", "iris-main",
            endpoint("10.0.0.1"),
            endpoint("10.0.0.2", ready=False),
            endpoint("10.0.0.3", ready=False, terminating=True),
        )
    )  # fmt: skip
    assert parsed is not None
    assert service_endpoints([parsed]) == ComponentEndpoints(
        http=(Upstream("10.0.0.1", 9000),), grpc=(Upstream("10.0.0.1", 9500),)
    )
    rolling = parse_slice(_slice("s", "iris-main", endpoint("10.0.0.3", ready=False, terminating=True)))
    assert rolling is not None
    assert service_endpoints([rolling]).http == (Upstream("10.0.0.3", 9000),)
    unconditioned = _slice("s", "iris-main", {"addresses": ["10.0.0.4"]})
    parsed = parse_slice(unconditioned)
    assert parsed is not None
    assert service_endpoints([parsed]).http == (Upstream("10.0.0.4", 9000),)


def test_slices_without_a_service_or_with_fqdn_addresses_are_ignored() -> None:
    orphan = _slice("s", "x", endpoint("10.0.0.1"))
    orphan["metadata"] = {"name": "s", "namespace": NS}
    assert parse_slice(orphan) is None
    assert parse_slice({**_slice("s", "x", endpoint("a.example")), "addressType": "FQDN"}) is None


def _build(state: ClusterState, builder: SnapshotBuilder, snapshot: Snapshot | None = None) -> Snapshot:
    changes = state.take_changes()
    if snapshot is None:
        return builder.build(list(state.deployments.values()), state.endpoints)
    return builder.update(changes.changed, changes.removed, state.endpoints)


def _versions(snapshot: Snapshot) -> dict[str, str]:
    return {url: snapshot.version(url) for url in resource_types.PUSH_ORDER}


def test_endpoints_follow_slices_of_the_predictor_services() -> None:
    state = ClusterState()
    state.put_slice(_slice("iris-main-1", "iris-main", endpoint("10.0.0.1")))
    state.put_deployment(sdep("iris", NS, [("main", 75), ("canary", 25)]))
    state.put_slice(_slice("iris-main-2", "iris-main", endpoint("10.0.0.2")))
    state.put_slice(_slice("iris-canary-1", "iris-canary", endpoint("10.0.1.1")))
    assert [u.host for u in state.endpoints[MAIN].http] == ["10.0.0.1", "10.0.0.2"]
    assert [u.host for u in state.endpoints[CANARY].grpc] == ["10.0.1.1"]
    state.delete_slice((NS, "iris-main-1"))
    assert [u.host for u in state.endpoints[MAIN].http] == ["10.0.0.2"]
    custom = sdep("other", NS, [("p", 100)])
    custom["spec"]["predictors"][0]["annotations"] = {"seldon.io/svc-name": "iris-canary"}
    state.put_deployment(custom)
    assert state.endpoints[ComponentKey(NS, "other", "p", SERVICE_NODE)] == state.endpoints[CANARY]


def test_a_weight_change_reversions_routes_only_and_scaling_endpoints_only() -> None:
    state = ClusterState()
    builder = SnapshotBuilder(ControllerSettings().gateway())
    state.put_deployment(sdep("iris", NS, [("main", 75), ("canary", 25)]))
    state.put_slice(_slice("iris-main-1", "iris-main", endpoint("10.0.0.1")))
    base = _build(state, builder)
    base.consistency_check()
    before = _versions(base)

    state.put_deployment(sdep("iris", NS, [("main", 50), ("canary", 50)]))
    weighted = _build(state, builder, base)
    after = _versions(weighted)
    changed = {url for url in before if before[url] != after[url]}
    assert changed == {resource_types.ROUTE}

    state.put_slice(_slice("iris-main-1", "iris-main", endpoint("10.0.0.1"), endpoint("10.0.0.2")))
    scaled = _build(state, builder, weighted)
    changed = {url for url, version in _versions(scaled).items() if after[url] != version}
    assert changed == {resource_types.ENDPOINT}


def test_an_invalid_spec_is_skipped_and_logged_once_and_the_last_good_one_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = ClusterState()
    assert state.put_deployment(sdep("iris", NS, [("main", 100)]))
    state.take_changes()
    broken = sdep("iris", NS, [("main", 100)])
    broken["spec"]["predictors"][0]["traffic"] = 101
    broken["metadata"]["resourceVersion"] = "7"
    with caplog.at_level(logging.WARNING):
        assert not state.put_deployment(broken)
        assert not state.put_deployment(broken)
    assert next(r.message for r in caplog.records if "skipped" in r.message).count("traffic") >= 1
    assert len([r for r in caplog.records if "skipped" in r.message]) == 1
    assert (NS, "iris") in state.deployments
    assert not state.take_changes()
    state.delete_deployment((NS, "iris"))
    changes = state.take_changes()
    assert changes.removed == [(NS, "iris")] and MAIN not in state.endpoints
