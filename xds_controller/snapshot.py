"""Immutable, content-versioned sets of xDS resources: what one Envoy node should run.

A Snapshot holds, per type URL, resource name -> Any-packed proto, a version per resource (a hash of its
deterministic serialization, which delta xDS sends) and a version per type (a hash of the names and
resource versions, which state-of-the-world xDS sends). Building the same resources twice gives the same
versions, so the server pushes nothing when the spec did not change. It also records what names what
(`Links`: listener -> route configurations, route scope -> route configuration, route configuration ->
clusters, cluster -> assignment), so
the consistency check and the server's make-before-break ordering never unpack a resource.

Build one from protos with `Snapshot.of`, or from already packed parts with `Snapshot.assemble` (what
`xds_controller.builder` does to avoid re-packing unchanged deployments; it hands over serialized
resources as `Packed` views, which make each `Any` only when it is read).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Generic, NewType, TypeVar

from google.protobuf import any_pb2
from google.protobuf.message import Message

from xds_controller import references, resource_types
from xds_controller.resource_types import TypeUrl

Version = NewType("Version", str)
T = TypeVar("T")

# Version of a type the snapshot holds no resources of: a constant, so "nothing" hashes the same too.
EMPTY_VERSION = Version("empty")


class InconsistentSnapshotError(ValueError):
    """A snapshot names resources it does not hold; `problems` lists each dangling reference."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    return packed


# An empty 8-byte BLAKE2b state: copying it is about twice as fast as setting up a new one (same digests).
_BLAKE2B_8 = hashlib.blake2b(digest_size=8)


def blob_version(value: bytes) -> Version:
    """The version of one resource from its serialized bytes (see `resource_version`)."""
    state = _BLAKE2B_8.copy()
    state.update(value)
    return Version(state.hexdigest())


def resource_version(packed: any_pb2.Any) -> Version:
    """The version of one resource: a hash of its packed bytes."""
    return blob_version(packed.value)


def entry_hash(name: str, version: Version) -> int:
    """One resource's share of its type's version; type versions are the XOR of these, so a builder can
    update one in O(changed resources) by XOR-ing out the old share and XOR-ing in the new.

    A `blob_version` is its own share: every xDS resource carries its name in its bytes (field 1), so
    the digest already tells resources apart by name as well as by content, and two distinct resources
    of a type never have one digest but by a 64-bit collision (no second hash per resource: a cold build
    versions 100,000 of them). Any other version string (hand-made snapshots) is hashed with its name."""
    if len(version) == 16:
        try:
            return int(version, 16)
        except ValueError:
            pass
    state = _BLAKE2B_8.copy()
    state.update(f"{name}\0{version}".encode())
    return int.from_bytes(state.digest(), "big")


def type_version(versions: Mapping[str, Version], combined: int | None = None) -> Version:
    """The version of a set of resources: the XOR of their `entry_hash`es (`combined`, when known)."""
    if not versions:
        return EMPTY_VERSION
    if combined is None:
        combined = 0
        for name, version in versions.items():
            combined ^= entry_hash(name, version)
    return Version(f"{combined:016x}")


@dataclass(frozen=True)
class Links:
    """What names what: route configurations per listener, clusters per route configuration, and the
    ClusterLoadAssignment each EDS cluster waits for (clusters of other discovery types are absent)."""

    listener_routes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    route_clusters: Mapping[str, frozenset[str]] = field(default_factory=dict)
    cluster_assignments: Mapping[str, str] = field(default_factory=dict)
    scope_routes: Mapping[str, str] = field(default_factory=dict)  # scope -> its RouteConfiguration

    @classmethod
    def of(cls, messages: Iterable[Message]) -> Links:
        listeners: dict[str, frozenset[str]] = {}
        routes: dict[str, frozenset[str]] = {}
        assignments: dict[str, str] = {}
        scopes: dict[str, str] = {}
        for message in messages:
            type_url = resource_types.type_url_of(message)
            name = resource_types.resource_name(message)
            if type_url == resource_types.LISTENER:
                listeners[name] = frozenset(references.route_config_names(message))
            elif type_url == resource_types.ROUTE:
                routes[name] = frozenset(references.cluster_names(message))
            elif type_url == resource_types.CLUSTER:
                service = references.eds_service_name(message)
                if service is not None:
                    assignments[name] = service
            elif type_url == resource_types.SCOPED_ROUTE:
                scopes[name] = references.scope_route_name(message)
        return cls(listeners, routes, assignments, scopes)


class Layered(Mapping[str, T]):
    """An immutable mapping shared between successive snapshots: a `base` dict nobody mutates any more,
    the names `removed` from it and the entries `top` added or changed. A builder hands out one per
    snapshot in O(changes since the base), instead of copying tens of thousands of entries per apply."""

    __slots__ = ("_base", "_len", "_removed", "_top")

    def __init__(self, base: Mapping[str, T], top: Mapping[str, T], removed: frozenset[str]) -> None:
        self._base, self._top, self._removed = base, top, removed  # removed: names of base, not in top
        self._len = len(base) - len(removed) + sum(1 for name in top if name not in base)

    def __getitem__(self, name: str) -> T:
        if name in self._top:
            return self._top[name]
        if name in self._removed:
            raise KeyError(name)
        return self._base[name]

    def __contains__(self, name: object) -> bool:
        return name in self._top or (name not in self._removed and name in self._base)

    def __iter__(self) -> Iterator[str]:
        top, removed = self._top, self._removed
        yield from (name for name in self._base if name not in top and name not in removed)
        yield from top

    def __len__(self) -> int:
        return self._len


class Layers(Generic[T]):
    """The mutable side of `Layered`: set and pop names, then `freeze` a `Layered` view of the current
    contents. The base is folded together again when the changes on top grow past an eighth of it, so
    each change costs amortised O(1) and each `freeze` O(changes since the last fold)."""

    def __init__(self) -> None:
        self._base: dict[str, T] = {}
        self._top: dict[str, T] = {}
        self._removed: set[str] = set()

    def __setitem__(self, name: str, value: T) -> None:
        self._top[name] = value
        self._removed.discard(name)

    def update(self, entries: Mapping[str, T]) -> None:
        self._top.update(entries)
        if self._removed:
            self._removed.difference_update(entries)

    def pop(self, name: str) -> T | None:
        """Remove `name`; its value, or None when it was absent."""
        value = self._top.pop(name, None)
        if name in self._base and name not in self._removed:
            self._removed.add(name)
            if value is None:
                value = self._base[name]
        return value

    def freeze(self) -> Mapping[str, T]:
        if not self._base and self._top:  # the first fill (a cold build): the top becomes the base
            self._base, self._top = self._top, {}
        elif len(self._top) + len(self._removed) > 64 + len(self._base) // 8:
            removed = self._removed
            base = {k: v for k, v in self._base.items() if k not in removed} if removed else dict(self._base)
            base.update(self._top)
            self._base, self._top, self._removed = base, {}, set()  # the old base stays with old views
        if not self._top and not self._removed:
            return MappingProxyType(self._base)
        return Layered(self._base, dict(self._top), frozenset(self._removed))


class Packed(Mapping[str, any_pb2.Any]):
    """Serialized resources of one type, wrapped in an `Any` only when one is read (to be sent, mostly).

    A builder keeps resources as bytes: packing 100,000 of them into `Any` messages up front was a
    seventh of a cold build, while a delta stream sends only what changed. Each read makes a new `Any`;
    `blobs` is the serialized view itself (immutable when the mapping given is)."""

    __slots__ = ("blobs", "type_url")

    def __init__(self, type_url: TypeUrl, blobs: Mapping[str, bytes]) -> None:
        self.type_url, self.blobs = type_url, blobs

    def __getitem__(self, name: str) -> any_pb2.Any:
        return any_pb2.Any(type_url=self.type_url, value=self.blobs[name])

    def __contains__(self, name: object) -> bool:
        return name in self.blobs

    def __iter__(self) -> Iterator[str]:
        return iter(self.blobs)

    def __len__(self) -> int:
        return len(self.blobs)


def serialized(resources: Mapping[str, any_pb2.Any], name: str) -> bytes:
    """One resource's bytes, without making an `Any` when `resources` is a `Packed` view."""
    if isinstance(resources, Packed):
        return resources.blobs[name]
    return bytes(resources[name].value)


_EMPTY: Mapping[str, any_pb2.Any] = MappingProxyType({})
_NO_VERSIONS: Mapping[str, Version] = MappingProxyType({})


@dataclass(frozen=True)
class Snapshot:
    """Resources per type URL (name -> packed proto) and their versions. Build with `of` or `assemble`."""

    resources: Mapping[TypeUrl, Mapping[str, any_pb2.Any]] = field(default_factory=dict)
    versions: Mapping[TypeUrl, Version] = field(default_factory=dict)
    resource_versions: Mapping[TypeUrl, Mapping[str, Version]] = field(default_factory=dict)
    links: Links = field(default_factory=Links)
    # Optional, from a builder that knows: per type, the resource versions of an earlier snapshot (the
    # very mapping object its `versions_of` returned) and every name whose version differs from it
    # (added, changed or removed; a superset is fine). The server then need not diff the two itself.
    changes: Mapping[TypeUrl, tuple[Mapping[str, Version], frozenset[str]]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # On-demand clusters (`GatewaySettings.on_demand_clusters`): a wildcard CDS subscription is sent only
    # these clusters, and any other only once Envoy names it (on-demand CDS, delta xDS), so 10,000
    # deployments' 40,000 clusters are not all created up front. None: every cluster is sent to a
    # wildcard subscription, as usual.
    eager_clusters: frozenset[str] | None = None

    def on_demand(self, cluster: str) -> bool:
        """Whether `cluster` reaches Envoy only when Envoy asks for it by name."""
        return self.eager_clusters is not None and cluster not in self.eager_clusters

    @classmethod
    def of(cls, messages: Iterable[Message], eager_clusters: frozenset[str] | None = None) -> Snapshot:
        """A snapshot of the given resource protos; ValueError on a duplicate name within a type."""
        listed = list(messages)
        by_type: dict[TypeUrl, dict[str, any_pb2.Any]] = {url: {} for url in resource_types.PUSH_ORDER}
        for message in listed:
            type_url = resource_types.type_url_of(message)
            name = resource_types.resource_name(message)
            if name in by_type[type_url]:
                raise ValueError(f"duplicate {resource_types.short_name(type_url)} resource {name!r}")
            by_type[type_url][name] = pack(message)
        versions = {url: {n: resource_version(p) for n, p in named.items()} for url, named in by_type.items()}
        return cls.assemble(by_type, versions, Links.of(listed), eager_clusters=eager_clusters)

    @classmethod
    def assemble(
        cls,
        resources: Mapping[TypeUrl, Mapping[str, any_pb2.Any]],
        resource_versions: Mapping[TypeUrl, Mapping[str, Version]],
        links: Links,
        combined: Mapping[TypeUrl, int] | None = None,
        *,
        owned: bool = False,
        changes: Mapping[TypeUrl, tuple[Mapping[str, Version], frozenset[str]]] | None = None,
        eager_clusters: frozenset[str] | None = None,
    ) -> Snapshot:
        """A snapshot of packed resources whose versions and links the caller already knows; `combined`
        optionally gives each type's XOR of entry hashes (see `type_version`). `owned` says the caller
        hands over fresh dicts it will not touch again, so they are wrapped rather than copied."""

        def frozen_map(mapping: Mapping[str, T] | None) -> Mapping[str, T]:
            if owned and isinstance(mapping, dict | Layered | MappingProxyType | Packed):
                return (
                    mapping if isinstance(mapping, MappingProxyType | Packed) else MappingProxyType(mapping)
                )
            return MappingProxyType(dict(mapping or {}))

        frozen = {url: frozen_map(resources.get(url)) for url in resource_types.PUSH_ORDER}
        per_resource = {url: frozen_map(resource_versions.get(url)) for url in resource_types.PUSH_ORDER}
        versions = {
            url: type_version(named, (combined or {}).get(url)) for url, named in per_resource.items()
        }
        return cls(
            resources=MappingProxyType(frozen),
            versions=MappingProxyType(versions),
            resource_versions=MappingProxyType(per_resource),
            links=links,
            changes=MappingProxyType(dict(changes or {})),
            eager_clusters=eager_clusters,
        )

    def version(self, type_url: TypeUrl) -> Version:
        return self.versions.get(type_url, EMPTY_VERSION)

    def get(self, type_url: TypeUrl) -> Mapping[str, any_pb2.Any]:
        return self.resources.get(type_url, _EMPTY)

    def versions_of(self, type_url: TypeUrl) -> Mapping[str, Version]:
        return self.resource_versions.get(type_url, _NO_VERSIONS)

    def changed_names(self, type_url: TypeUrl, since: Mapping[str, Version]) -> set[str]:
        """Names whose version differs between `since` (an earlier `versions_of(type_url)`) and now: from
        the builder's `changes` when they are relative to `since`, else by diffing the two."""
        hint = self.changes.get(type_url)
        if hint is not None and hint[0] is since:
            return set(hint[1])
        return {name for name, _ in self.versions_of(type_url).items() ^ since.items()}

    def unpack(self, type_url: TypeUrl, name: str) -> Message:
        message = resource_types.message_type(type_url)()
        self.get(type_url)[name].Unpack(message)
        return message

    def _consistent(self) -> bool:
        """Whether every reference resolves: one pass, no sorting (the common case on every publish)."""
        routes, clusters = self.get(resource_types.ROUTE), self.get(resource_types.CLUSTER)
        assignments = self.get(resource_types.ENDPOINT)
        links = self.links
        return (
            all(n in routes for names in links.listener_routes.values() for n in names)
            and all(n in routes for n in links.scope_routes.values())
            and all(n in clusters for names in links.route_clusters.values() for n in names)
            and all(n in assignments for n in links.cluster_assignments.values())
        )

    def _consistent_since(self, since: Snapshot) -> bool:
        """True when, `since` being consistent, this snapshot is too, judged from the builder's change
        hints alone: nothing was removed and every link out of a changed resource resolves. False when
        that cannot be told (no hints relative to `since`, or a removal): then check everything."""
        touched: dict[TypeUrl, frozenset[str]] = {}
        for url in (resource_types.ROUTE, resource_types.CLUSTER, resource_types.ENDPOINT):
            hint = self.changes.get(url)
            if hint is None or hint[0] is not since.versions_of(url):
                return False
            present = self.get(url)
            if any(name not in present for name in hint[1]):
                return False
            touched[url] = hint[1]
        scopes = self.changes.get(resource_types.SCOPED_ROUTE)
        if self.links.scope_routes and (
            scopes is None or scopes[0] is not since.versions_of(resource_types.SCOPED_ROUTE)
        ):
            return False
        routes, clusters = self.get(resource_types.ROUTE), self.get(resource_types.CLUSTER)
        assignments, links = self.get(resource_types.ENDPOINT), self.links
        return (
            all(n in routes for names in links.listener_routes.values() for n in names)
            and all(
                links.scope_routes.get(n, "") in routes
                for n in (scopes[1] if scopes else ())
                if n in links.scope_routes
            )
            and all(
                c in clusters for n in touched[resource_types.ROUTE] for c in links.route_clusters.get(n, ())
            )
            and all(
                links.cluster_assignments[n] in assignments
                for n in touched[resource_types.CLUSTER]
                if n in links.cluster_assignments
            )
        )

    def consistency_problems(self, since: Snapshot | None = None) -> list[str]:
        """Every dangling reference. With `since` (an earlier snapshot known to be consistent), a
        builder's change hints may show there is none without looking at every resource."""
        if (since is not None and self._consistent_since(since)) or self._consistent():
            return []
        problems: list[str] = []
        routes, clusters = self.get(resource_types.ROUTE), self.get(resource_types.CLUSTER)
        assignments = self.get(resource_types.ENDPOINT)
        for name, route_names in sorted(self.links.listener_routes.items()):
            for route_name in sorted(n for n in route_names if n not in routes):
                problems.append(f"listener {name!r} names missing route configuration {route_name!r}")
        for name, route_name in sorted(self.links.scope_routes.items()):
            if route_name not in routes:
                problems.append(f"route scope {name!r} names missing route configuration {route_name!r}")
        for name, cluster_names in sorted(self.links.route_clusters.items()):
            for cluster_name in sorted(n for n in cluster_names if n not in clusters):
                problems.append(f"route configuration {name!r} names missing cluster {cluster_name!r}")
        for name, service in sorted(self.links.cluster_assignments.items()):
            if service not in assignments:
                problems.append(f"EDS cluster {name!r} has no ClusterLoadAssignment {service!r}")
        return problems

    def consistency_check(self, since: Snapshot | None = None) -> None:
        """Raise InconsistentSnapshotError unless every reference between resources resolves (`since`: as
        in `consistency_problems`)."""
        problems = self.consistency_problems(since)
        if problems:
            raise InconsistentSnapshotError(problems)
