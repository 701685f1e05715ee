"""Make before break: what one Envoy may be sent now, given the node's snapshot and what Envoy applied.

The snapshot says where Envoy should end up; this module says which step it may take next so that no
request is dropped on the way (envoy xds_protocol.rst, "eventual consistency considerations"):
- a RouteConfiguration is sent only once every cluster it names is applied, and for an EDS cluster its
  ClusterLoadAssignment too (a route to a missing or warming cluster answers 503). Until then Envoy keeps
  the route configuration it has, or gets none at all: a new deployment's route does not exist (404)
  rather than pointing at a cluster Envoy refused. An on-demand cluster (`Snapshot.on_demand`) does not
  hold a route: Envoy's on_demand filter asks for it by name when a request first needs it;
- a cluster the snapshot dropped stays (with its endpoints) while a route configuration Envoy runs still
  names it, and goes only once Envoy applied routes that no longer do.

Pure and free of gRPC: both the state-of-the-world and the delta stream ask `desired` for the next step
and send it in push order (CDS, EDS, LDS, RDS); every ACK may allow the next step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from google.protobuf import any_pb2

from xds_controller import resource_types
from xds_controller.resource_types import TypeUrl
from xds_controller.snapshot import Snapshot, Version, serialized


@dataclass(frozen=True)
class Held:
    """One resource as Envoy runs it: its version, its serialized proto (the snapshot's own bytes, not
    a copy: a stream holds one per resource Envoy runs) and (for a route configuration) the clusters
    it names."""

    version: Version
    value: bytes
    clusters: frozenset[str] = frozenset()


# Per type, name -> resource as Envoy applied it (from ACKs on this stream).
Applied = Mapping[TypeUrl, Mapping[str, Held]]


@dataclass(frozen=True)
class Step:
    """What Envoy should run next of one type: the snapshot's resources, except `overrides` (name ->
    the resource to run instead, or None to leave the name out). `label` is the type's version for SotW:
    the snapshot's own when there are no overrides."""

    type_url: TypeUrl
    packed: Mapping[str, any_pb2.Any]
    versions: Mapping[str, Version]
    overrides: Mapping[str, Held | None]
    label: Version

    def version(self, name: str) -> Version | None:
        if name in self.overrides:
            held = self.overrides[name]
            return held.version if held is not None else None
        return self.versions.get(name)

    def resource(self, name: str) -> any_pb2.Any:
        held = self.overrides.get(name)
        if held is not None:
            return any_pb2.Any(type_url=self.type_url, value=held.value)
        return self.packed[name]

    def names(self) -> set[str]:
        names = set(self.versions)
        for name, held in self.overrides.items():
            if held is None:
                names.discard(name)
            else:
                names.add(name)
        return names

    def held(self, name: str, clusters: Mapping[str, frozenset[str]]) -> Held:
        """The resource as a `Held` (`clusters`: the snapshot's route -> clusters links)."""
        override = self.overrides.get(name)
        if override is not None:
            return override
        return Held(self.versions[name], serialized(self.packed, name), clusters.get(name, frozenset()))


def _label(snapshot: Snapshot, type_url: TypeUrl, overrides: Mapping[str, Held | None]) -> Version:
    base = snapshot.version(type_url)
    if not overrides:
        return base
    digest = hashlib.blake2b(base.encode(), digest_size=8)
    for name in sorted(overrides):
        held = overrides[name]
        digest.update(f"\0{name}\0{held.version if held else '-'}".encode())
    return Version(f"{base}+{digest.hexdigest()}")


def ready_clusters(snapshot: Snapshot, applied: Applied) -> frozenset[str]:
    """Clusters Envoy has applied and can route to: for EDS clusters, with their endpoints applied too."""
    clusters = applied.get(resource_types.CLUSTER, {})
    return frozenset(name for name in clusters if _ready(name, snapshot, applied))


def _ready(cluster: str, snapshot: Snapshot, applied: Applied) -> bool:
    if cluster not in applied.get(resource_types.CLUSTER, {}):
        return False
    assignment = snapshot.links.cluster_assignments.get(cluster)
    return assignment is None or assignment in applied.get(resource_types.ENDPOINT, {})


def desired(
    snapshot: Snapshot,
    applied: Applied,
    pending_routes: Iterable[Held] = (),
    *,
    routes: Iterable[str] | None = None,
    dropped: Iterable[str] | None = None,
) -> dict[TypeUrl, Step]:
    """The next configuration step, per type, for a node that runs `applied` and should end at `snapshot`.

    `pending_routes` are route configurations sent but not yet ACKed: Envoy may be running them already,
    so the clusters they name are kept too.

    This runs on every ACK. A caller that tracks what changed may say so: `routes`, every route
    configuration that may differ from what Envoy runs or may now be held or released (changed, newly
    applied, or held by the previous step); `dropped`, every cluster Envoy may run that the snapshot may
    not hold (removed from it, newly applied, or kept by the previous step). None looks at all of them."""
    overrides: dict[TypeUrl, dict[str, Held | None]] = {url: {} for url in resource_types.PUSH_ORDER}

    # Routes: a changed route configuration waits until every cluster it names is ready.
    applied_routes = applied.get(resource_types.ROUTE, {})
    route_versions = snapshot.versions_of(resource_types.ROUTE)
    links = snapshot.links.route_clusters
    if routes is None:
        changed = [
            n for n, v in route_versions.items() if (h := applied_routes.get(n)) is None or h.version != v
        ]
    else:
        changed = [
            n
            for n in routes
            if (v := route_versions.get(n)) is not None
            and ((h := applied_routes.get(n)) is None or h.version != v)
        ]
    for name in changed:
        if not all(
            _ready(cluster, snapshot, applied) or snapshot.on_demand(cluster)
            for cluster in links.get(name, frozenset())
        ):
            overrides[resource_types.ROUTE][name] = applied_routes.get(name)

    # Clusters (and endpoints) that routes Envoy runs still name stay until those routes change.
    clusters = snapshot.get(resource_types.CLUSTER)
    applied_clusters = applied.get(resource_types.CLUSTER, {})
    gone = (
        applied_clusters.keys() - clusters.keys()
        if dropped is None
        else {n for n in dropped if n in applied_clusters and n not in clusters}
    )
    if gone:
        named = frozenset().union(*(route.clusters for route in (*applied_routes.values(), *pending_routes)))
        applied_assignments = applied.get(resource_types.ENDPOINT, {})
        assignments = snapshot.get(resource_types.ENDPOINT)
        for name in sorted(gone & named):
            overrides[resource_types.CLUSTER][name] = applied_clusters[name]
            assignment = applied_assignments.get(name)
            if assignment is not None and name not in assignments:
                overrides[resource_types.ENDPOINT][name] = assignment

    return {
        url: Step(
            url,
            snapshot.get(url),
            snapshot.versions_of(url),
            overrides[url],
            _label(snapshot, url, overrides[url]),
        )
        for url in resource_types.PUSH_ORDER
    }
