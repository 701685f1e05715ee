"""Make before break, as a pure function: routes wait for applied clusters; dropped clusters outlive
the routes that name them."""

from __future__ import annotations

from tests.xds_controller import builders as b
from xds_controller import resource_types
from xds_controller.sequencing import Held, desired
from xds_controller.snapshot import Snapshot
from xds_controller.translate import GatewaySettings, translate

ROUTE = "seldon-gateway"


def _snapshot(*names: str) -> Snapshot:
    return translate([b.single(n) for n in names], {}, GatewaySettings()).to_snapshot()


def _applied(snapshot: Snapshot) -> dict[str, dict[str, Held]]:
    """Envoy runs exactly `snapshot`."""
    return {
        url: {
            name: Held(
                snapshot.versions_of(url)[name],
                packed.value,
                snapshot.links.route_clusters.get(name, frozenset())
                if url == resource_types.ROUTE
                else frozenset(),
            )
            for name, packed in snapshot.get(url).items()
        }
        for url in resource_types.PUSH_ORDER
    }


def test_the_snapshot_itself_once_everything_it_names_is_applied() -> None:
    snapshot = _snapshot("iris", "wine")
    steps = desired(snapshot, _applied(snapshot))
    assert all(not step.overrides for step in steps.values())
    assert all(steps[url].label == snapshot.version(url) for url in resource_types.PUSH_ORDER)


def test_a_new_route_waits_for_its_clusters_and_the_old_one_stays() -> None:
    old, new = _snapshot("iris"), _snapshot("iris", "wine")
    steps = desired(new, _applied(old))
    routes = steps[resource_types.ROUTE]
    assert routes.version(ROUTE) == old.versions_of(resource_types.ROUTE)[ROUTE]  # held back
    assert routes.label != new.version(resource_types.ROUTE)
    assert steps[resource_types.CLUSTER].names() == set(new.get(resource_types.CLUSTER))  # clusters go first

    # Clusters applied but not their endpoints: still held. With endpoints: the new route goes.
    partly = _applied(old)
    partly[resource_types.CLUSTER] = _applied(new)[resource_types.CLUSTER]
    assert (
        desired(new, partly)[resource_types.ROUTE].version(ROUTE)
        == old.versions_of(resource_types.ROUTE)[ROUTE]
    )
    partly[resource_types.ENDPOINT] = _applied(new)[resource_types.ENDPOINT]
    assert (
        desired(new, partly)[resource_types.ROUTE].version(ROUTE)
        == new.versions_of(resource_types.ROUTE)[ROUTE]
    )


def test_never_applied_route_is_left_out_rather_than_pointing_nowhere() -> None:
    steps = desired(_snapshot("iris"), {})
    assert ROUTE not in steps[resource_types.ROUTE].names()


def test_dropped_clusters_stay_while_an_applied_or_pending_route_names_them() -> None:
    old, new = _snapshot("iris", "wine"), _snapshot("iris")
    wine = {n for n in old.get(resource_types.CLUSTER) if ".wine." in n}
    steps = desired(new, _applied(old))
    assert wine <= steps[resource_types.CLUSTER].names()
    assert wine <= steps[resource_types.ENDPOINT].names()
    assert steps[resource_types.CLUSTER].label != new.version(resource_types.CLUSTER)

    # Routes that no longer name wine are sent but not yet ACKed: wine still stays.
    new_route = _applied(new)[resource_types.ROUTE][ROUTE]
    assert (
        wine
        <= desired(new, _applied(old), [_applied(old)[resource_types.ROUTE][ROUTE]])[
            resource_types.CLUSTER
        ].names()
    )
    # Once Envoy applied them, wine goes.
    applied = _applied(old)
    applied[resource_types.ROUTE] = {ROUTE: new_route}
    gone = desired(new, applied)[resource_types.CLUSTER]
    assert not wine & gone.names()
    assert gone.label == new.version(resource_types.CLUSTER)
