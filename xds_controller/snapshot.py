"""Immutable, content-versioned sets of xDS resources: what one Envoy node should run.

A Snapshot holds, per type URL, resource name -> Any-packed proto, and a version per type that is a hash
of the deterministic serialization of that type's resources. Building the same resources twice gives the
same versions, so the server pushes nothing when the spec did not change. The cache stores snapshots;
the server sends them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NewType

from google.protobuf import any_pb2
from google.protobuf.message import Message

from xds_controller import references, resource_types
from xds_controller.resource_types import TypeUrl

Version = NewType("Version", str)

# Version of a type the snapshot holds no resources of: a constant, so "nothing" hashes the same too.
EMPTY_VERSION = Version("empty")


class InconsistentSnapshotError(ValueError):
    """A snapshot names resources it does not hold; `problems` lists each dangling reference."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    return packed


def _version_of(resources: Mapping[str, any_pb2.Any]) -> Version:
    if not resources:
        return EMPTY_VERSION
    digest = hashlib.sha256()
    for name in sorted(resources):
        packed = resources[name]
        for part in (name.encode(), packed.type_url.encode(), packed.value):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return Version(digest.hexdigest()[:16])


@dataclass(frozen=True)
class Snapshot:
    """Resources per type URL (name -> packed proto) and their content versions. Build with `of`."""

    resources: Mapping[TypeUrl, Mapping[str, any_pb2.Any]] = field(default_factory=dict)
    versions: Mapping[TypeUrl, Version] = field(default_factory=dict)

    @classmethod
    def of(cls, messages: Iterable[Message]) -> Snapshot:
        """A snapshot of the given resource protos; ValueError on a duplicate name within a type."""
        by_type: dict[TypeUrl, dict[str, any_pb2.Any]] = {url: {} for url in resource_types.PUSH_ORDER}
        for message in messages:
            type_url = resource_types.type_url_of(message)
            name = resource_types.resource_name(message)
            if name in by_type[type_url]:
                raise ValueError(f"duplicate {resource_types.short_name(type_url)} resource {name!r}")
            by_type[type_url][name] = _pack(message)
        frozen = {url: MappingProxyType(dict(sorted(named.items()))) for url, named in by_type.items()}
        versions = {url: _version_of(named) for url, named in frozen.items()}
        return cls(resources=MappingProxyType(frozen), versions=MappingProxyType(versions))

    def version(self, type_url: TypeUrl) -> Version:
        return self.versions.get(type_url, EMPTY_VERSION)

    def get(self, type_url: TypeUrl) -> Mapping[str, any_pb2.Any]:
        return self.resources.get(type_url, MappingProxyType({}))

    def unpack(self, type_url: TypeUrl, name: str) -> Message:
        message = resource_types.message_type(type_url)()
        self.get(type_url)[name].Unpack(message)
        return message

    def _all(self, type_url: TypeUrl) -> Iterable[tuple[str, Message]]:
        return ((name, self.unpack(type_url, name)) for name in self.get(type_url))

    def consistency_problems(self) -> list[str]:
        problems: list[str] = []
        routes, clusters = self.get(resource_types.ROUTE), self.get(resource_types.CLUSTER)
        assignments = self.get(resource_types.ENDPOINT)
        for name, listener in self._all(resource_types.LISTENER):
            for route_name in references.route_config_names(listener):
                if route_name not in routes:
                    problems.append(f"listener {name!r} names missing route configuration {route_name!r}")
        for name, route_config in self._all(resource_types.ROUTE):
            for cluster_name in references.cluster_names(route_config):
                if cluster_name not in clusters:
                    problems.append(f"route configuration {name!r} names missing cluster {cluster_name!r}")
        for name, cluster in self._all(resource_types.CLUSTER):
            service = references.eds_service_name(cluster)
            if service is not None and service not in assignments:
                problems.append(f"EDS cluster {name!r} has no ClusterLoadAssignment {service!r}")
        return problems

    def consistency_check(self) -> None:
        """Raise InconsistentSnapshotError unless every reference between resources resolves."""
        problems = self.consistency_problems()
        if problems:
            raise InconsistentSnapshotError(problems)
