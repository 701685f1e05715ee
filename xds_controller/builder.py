"""Snapshots for thousands of deployments, rebuilt in time proportional to what changed.

`translate` + `Snapshot.of` re-render and re-pack every resource on every change: fine for a laptop,
seconds at 10,000 deployments. `SnapshotBuilder` keeps, per deployment, its serialized clusters,
endpoint assignments and routes (packed into `Any` only when sent: `snapshot.Packed`), keyed by the
deployment's content and its endpoints; a build re-renders only deployments that changed, and updates
each type's version incrementally (XOR of entry hashes, see `snapshot.type_version`). The one
RouteConfiguration is spliced from the cached route bytes (protobuf repeated fields are concatenations
on the wire), so it is never rebuilt as a proto.

With a scoped gateway (`GatewaySettings.scoped`) each deployment's RouteConfiguration and route scope
are ordinary named resources of its fragment, like its clusters, and nothing is spliced.

The result holds the same resources as `translate(...).to_snapshot()` (a test checks it); versions are
equal for clusters, assignments, listeners and (scoped) routes and scopes, while the unscoped route
configuration's bytes (and so version) may order fields differently.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import itertools
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple, cast

from envoy.config.route.v3 import route_components_pb2, route_pb2

from xds_controller import references, resource_types
from xds_controller.resource_types import TypeUrl
from xds_controller.snapshot import Layers, Links, Packed, Snapshot, Version, blob_version, entry_hash
from xds_controller.templates import Parts, Templates
from xds_controller.translate import (
    ComponentEndpoints,
    ComponentKey,
    DeploymentView,
    GatewaySettings,
    translate,
)
from xds_controller.translate.clusters import (
    deployment_cluster_specs,
    deployment_component_keys,
    eds_cluster_bytes,
    load_assignment_bytes,
    load_assignments_bytes,
)
from xds_controller.translate.explainer import explainer_changes, with_explainers
from xds_controller.translate.on_demand import routes_on_demand, shadow_cluster_names
from xds_controller.translate.routes import (
    CONTROL_ROUTES,
    ROUTE_CONFIG_NAME,
    deployment_route_config,
    deployment_routes,
)
from xds_controller.translate.scopes import scope, scope_key

_COMPONENT_TYPES = (resource_types.CLUSTER, resource_types.ENDPOINT)
_SCOPED_TYPES = (*_COMPONENT_TYPES, resource_types.ROUTE, resource_types.SCOPED_ROUTE)
_VIRTUAL_HOSTS = route_pb2.RouteConfiguration.DESCRIPTOR.fields_by_name["virtual_hosts"].number
_ROUTES = route_components_pb2.VirtualHost.DESCRIPTOR.fields_by_name["routes"].number


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# as in `snapshot.blob_version`: copying an empty state beats setting one up
_BLAKE2B_8 = hashlib.blake2b(digest_size=8)


def _keyed(key: str, payload: bytes) -> int:
    """A 64-bit share of a type's version for `payload` under `key` (whose bytes need not carry it)."""
    state = _BLAKE2B_8.copy()
    state.update(key.encode() + b"\0" + payload)
    return int.from_bytes(state.digest(), "big")


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited field on the wire: tag, length, payload."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


class _Entries(NamedTuple):
    """One type's resources of a fragment, serialized: names and bytes in step."""

    names: tuple[str, ...]
    blobs: tuple[bytes, ...]


def _versions(blobs: Iterable[bytes]) -> list[Version]:
    """`blob_version` of each blob, inline (the same digests, which tests compare with the plain
    translation's): a cold build versions every resource in one call per type."""
    versions: list[str] = []
    empty, append = _BLAKE2B_8.copy, versions.append
    for blob in blobs:
        state = empty()
        state.update(blob)
        append(state.hexdigest())
    return cast(list[Version], versions)


def _combined(versions: Iterable[Version]) -> int:
    """The XOR of `blob_version`s' shares of their type's version (for those, `entry_hash` is the value)."""
    return functools.reduce(operator.xor, map(int, versions, itertools.repeat(16)), 0)


class _Fragment(NamedTuple):
    """One deployment's share of the snapshot, and what it was rendered from (a named tuple: a cold
    build makes one per deployment, and tuples are the cheapest immutable records to make)."""

    deployment: DeploymentView
    keys: tuple[ComponentKey, ...]
    endpoints: tuple[ComponentEndpoints | None, ...]
    resources: tuple[_Entries, ...]  # per type, as the builder's `_types`; clusters first
    route_bytes: bytes  # unscoped: the deployment's routes, each as a VirtualHost.routes field
    route_hash: int  # unscoped: the deployment's share of the route configuration's version
    route_clusters: frozenset[str]
    route_name: str = ""  # scoped: its RouteConfiguration (and scope)
    eager: tuple[str, ...] = ()  # with on-demand clusters: those sent unasked (its shadows')


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A cold build allocates hundreds of thousands of long-lived, acyclic objects (protos, bytes, tuples);
    the cyclic garbage collector would walk all of them again and again while they pile up (a quarter of
    a 10,000-deployment build). It runs again as soon as the build is done."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class SnapshotBuilder:
    """Builds snapshots of a changing deployment set for one gateway, re-rendering only what changed.

    Not thread-safe: one reconcile loop owns it.
    """

    def __init__(self, gateway: GatewaySettings) -> None:
        self.gateway = gateway
        self._types = _SCOPED_TYPES if gateway.scoped else _COMPONENT_TYPES
        self._fragments: dict[tuple[str, str], _Fragment] = {}
        # every type's resources and versions (static ones included), handed to each snapshot as
        # `Layered` views, so a build costs O(what changed), not a copy of every name
        self._resources: dict[TypeUrl, Layers[bytes]] = {u: Layers() for u in resource_types.PUSH_ORDER}
        self._versions: dict[TypeUrl, Layers[Version]] = {u: Layers() for u in resource_types.PUSH_ORDER}
        self._combined: dict[TypeUrl, int] = {url: 0 for url in resource_types.PUSH_ORDER}
        self._cluster_links: Layers[str] = Layers()
        # names added, changed or removed since the last snapshot built, and that snapshot's versions
        self._touched: dict[TypeUrl, set[str]] = {url: set() for url in self._types}
        self._last_versions: dict[TypeUrl, Mapping[str, Version]] = {}
        self._route_links: Layers[frozenset[str]] = Layers()
        self._scope_links: Layers[str] = Layers()
        self.rendered = 0  # deployments rendered by the last build (the rest came from the cache)
        self._parts = Templates(self._scoped_parts if gateway.scoped else self._spliced_parts)
        self._eager: set[str] = set()  # with on-demand clusters: the deployments' eager ones
        self._frame()

    def _frame(self) -> None:
        """What does not depend on deployments: listener, static clusters, the route configuration's
        head (its own fields and the virtual host's) and tail (reflection and catch-all routes)."""
        empty = translate([], {}, self.gateway)
        scoped_frame = (*empty.routes, *empty.scoped_routes) if self.gateway.scoped else ()
        for message in (*empty.listeners, *empty.clusters, *empty.load_assignments, *scoped_frame):
            url, name = resource_types.type_url_of(message), resource_types.resource_name(message)
            blob = message.SerializeToString(deterministic=True)
            version = blob_version(blob)
            self._resources[url][name], self._versions[url][name] = blob, version
            self._combined[url] ^= entry_hash(name, version)
        self._static_eager = frozenset(resource_types.resource_name(c) for c in empty.clusters)
        self._static_links = Links.of((*empty.listeners, *empty.clusters, *scoped_frame))
        for name, service in self._static_links.cluster_assignments.items():
            self._cluster_links[name] = service
        for name, clusters in self._static_links.route_clusters.items():
            self._route_links[name] = clusters
        for name, route_name in self._static_links.scope_routes.items():
            self._scope_links[name] = route_name
        if self.gateway.scoped:
            return
        (config,) = empty.routes
        assert isinstance(config, route_pb2.RouteConfiguration)
        self._tail_clusters = Links.of([config]).route_clusters.get(ROUTE_CONFIG_NAME, frozenset())
        (host,) = config.virtual_hosts
        # The control routes (the repository 404s) come before every deployment's, the rest after.
        self._head_routes = b"".join(
            _field(_ROUTES, r.SerializeToString(deterministic=True))
            for r in host.routes
            if r.name in CONTROL_ROUTES
        )
        self._tail = b"".join(
            _field(_ROUTES, r.SerializeToString(deterministic=True))
            for r in host.routes
            if r.name not in CONTROL_ROUTES
        )
        head_host = route_components_pb2.VirtualHost()
        head_host.CopyFrom(host)
        del head_host.routes[:]
        self._host_head = head_host.SerializeToString(deterministic=True)
        head = route_pb2.RouteConfiguration()
        head.CopyFrom(config)
        del head.virtual_hosts[:]
        self._config_head = head.SerializeToString(deterministic=True)
        self._frame_hash = _keyed("", self._config_head + self._host_head + self._head_routes + self._tail)

    def _render(
        self,
        deployment: DeploymentView,
        keys: tuple[ComponentKey, ...],
        found: tuple[ComponentEndpoints | None, ...],
    ) -> _Fragment:
        self.rendered += 1
        parts = self._parts(deployment)
        blobs, names = parts.blobs, parts.names
        # the route part's blobs and names first, then each component's .http and .grpc cluster, then
        # the heads of their load assignments
        first_blob, first_name = (2, 1) if self.gateway.scoped else (1, 0)
        cluster_names = names[first_name:]
        upstreams = [u for e in found for u in ((e.http, e.grpc) if e is not None else ((), ()))]
        eager = tuple(shadow_cluster_names(deployment)) if self.gateway.on_demand_clusters else ()
        split = first_blob + len(cluster_names)
        clusters = _Entries(cluster_names, blobs[first_blob:split])
        assignments = _Entries(cluster_names, load_assignments_bytes(blobs[split:], upstreams))
        # (positional: this runs for every deployment of a cold build)
        if self.gateway.scoped:
            config_names = names[:first_name]
            resources = (
                clusters,
                assignments,
                _Entries(config_names, blobs[:1]),
                _Entries(config_names, blobs[1:2]),
            )
            return _Fragment(
                deployment, keys, found, resources, b"", 0, parts.clusters, config_names[0], eager
            )
        meta = deployment.metadata
        route_hash = _keyed(f"{meta.namespace}/{meta.name}", blobs[0])
        return _Fragment(
            deployment, keys, found, (clusters, assignments), blobs[0], route_hash, parts.clusters, "", eager
        )

    @staticmethod
    def _cluster_parts(deployment: DeploymentView) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
        """Each component's .http and .grpc cluster, in component key order: names, and serialized,
        the clusters and then the heads of their load assignments (`load_assignments_bytes`)."""
        specs = list(deployment_cluster_specs(deployment, {}))
        blobs = [eds_cluster_bytes(s.name, s.transport, s.max_message_bytes) for s in specs]
        blobs += [load_assignment_bytes(s.name, ()) for s in specs]
        return tuple(s.name for s in specs), tuple(blobs)

    def _scoped_parts(self, deployment: DeploymentView) -> Parts:
        """A deployment's RouteConfiguration, route scope and clusters, serialized (see `templates`)."""
        meta = deployment.metadata
        config = deployment_route_config(deployment, self.gateway)
        on_demand = self.gateway.on_demand_clusters and routes_on_demand(config)
        key = scope(config.name, scope_key(meta.namespace, meta.name), on_demand)
        cluster_names, cluster_blobs = self._cluster_parts(deployment)
        return Parts(
            blobs=(
                config.SerializeToString(deterministic=True),
                key.SerializeToString(deterministic=True),
                *cluster_blobs,
            ),
            names=(config.name, *cluster_names),
            clusters=frozenset(references.cluster_names(config)),
        )

    def _spliced_parts(self, deployment: DeploymentView) -> Parts:
        """Unscoped: a deployment's routes (VirtualHost.routes fields) and clusters (see `templates`)."""
        routes = deployment_routes(
            deployment,
            self.gateway.extproc is not None,
            self.gateway.tracing is not None,
            rest_edge=self.gateway.extproc_rest is not None,
            extproc_http=self.gateway.extproc_http,
        )
        cluster_names, cluster_blobs = self._cluster_parts(deployment)
        return Parts(
            blobs=(
                b"".join(_field(_ROUTES, r.SerializeToString(deterministic=True)) for r in routes),
                *cluster_blobs,
            ),
            names=cluster_names,
            clusters=frozenset(name for route in routes for name in references.route_cluster_names(route)),
        )

    def _add(self, fragment: _Fragment, sign: bool) -> None:
        if sign:
            self._add_all([fragment])
            return
        for url, entries in zip(self._types, fragment.resources, strict=True):
            self._touched[url].update(entries.names)
            named, versions = self._resources[url], self._versions[url]
            combined = self._combined[url]
            for name in entries.names:
                version = versions.pop(name)
                if version is not None:
                    combined ^= entry_hash(name, version)
                named.pop(name)
            self._combined[url] = combined
        for name in fragment.resources[0].names:
            self._cluster_links.pop(name)
        self._eager.difference_update(fragment.eager)
        if fragment.route_name:
            self._route_links.pop(fragment.route_name)
            self._scope_links.pop(fragment.route_name)

    def _add_all(self, fragments: Sequence[_Fragment]) -> None:
        """Add fragments' resources and links, merged per map first so each map is updated once, and
        versioned per type in one pass (a cold build adds every deployment's)."""
        if not fragments:
            return
        chain = itertools.chain.from_iterable
        for index, url in enumerate(self._types):
            names = list(chain(f.resources[index].names for f in fragments))
            blobs = list(chain(f.resources[index].blobs for f in fragments))
            versions = _versions(blobs)
            self._combined[url] ^= _combined(versions)
            if url in self._last_versions:  # (else no change hints: the first snapshot, or unscoped)
                self._touched[url].update(names)
            self._resources[url].update(dict(zip(names, blobs, strict=True)))
            self._versions[url].update(dict(zip(names, versions, strict=True)))
        cluster_names = list(chain(f.resources[0].names for f in fragments))
        self._eager.update(chain(f.eager for f in fragments))
        self._cluster_links.update(dict(zip(cluster_names, cluster_names, strict=True)))
        route_links = {f.route_name: f.route_clusters for f in fragments if f.route_name}
        self._route_links.update(route_links)
        self._scope_links.update({name: name for name in route_links})

    def build(
        self, deployments: Sequence[DeploymentView], endpoints: Mapping[ComponentKey, ComponentEndpoints]
    ) -> Snapshot:
        """The snapshot for `deployments` (any order) with `endpoints`; equal inputs, equal versions."""
        self.rendered = 0
        with _collector_paused():
            return self._build(with_explainers(deployments), endpoints)

    def update(
        self,
        changed: Iterable[DeploymentView],
        removed: Iterable[tuple[str, str]],
        endpoints: Mapping[ComponentKey, ComponentEndpoints],
    ) -> Snapshot:
        """The snapshot after upserting `changed` and removing `removed` ((namespace, name)) from the set
        the builder last built; in time proportional to them, not to every deployment. `endpoints` is
        read for the changed deployments only: when other deployments' endpoints moved, use `build`."""
        self.rendered = 0
        changed, removed = explainer_changes(changed, removed)  # explainers are deployments of their own
        with _collector_paused():
            fragments = dict(self._fragments) if not self.gateway.scoped else self._fragments
            for key in removed:
                gone = fragments.pop(key, None)
                if gone is not None:
                    self._add(gone, sign=False)
            for deployment in changed:
                meta = deployment.metadata
                key = (meta.namespace, meta.name)
                cached = fragments.get(key)
                if cached is not None and self._fresh(cached, deployment, endpoints):
                    continue
                keys = deployment_component_keys(deployment)
                fragment = self._render(deployment, keys, tuple(map(endpoints.get, keys)))
                if cached is not None:
                    self._add(cached, sign=False)
                self._add(fragment, sign=True)
                fragments[key] = fragment
            if not self.gateway.scoped:  # spliced in (namespace, name) order
                fragments = dict(sorted(fragments.items()))
            self._fragments = fragments
            return self._assemble(fragments)

    @staticmethod
    def _fresh(
        cached: _Fragment, deployment: DeploymentView, endpoints: Mapping[ComponentKey, ComponentEndpoints]
    ) -> bool:
        return (cached.deployment is deployment or cached.deployment == deployment) and tuple(
            map(endpoints.get, cached.keys)
        ) == cached.endpoints

    def _build(
        self, deployments: Sequence[DeploymentView], endpoints: Mapping[ComponentKey, ComponentEndpoints]
    ) -> Snapshot:
        # Unscoped, the route configuration is spliced in deployment order; scoped, order does not matter.
        ordered = (
            deployments
            if self.gateway.scoped
            else sorted(deployments, key=lambda d: (d.metadata.namespace, d.metadata.name))
        )
        current: dict[tuple[str, str], _Fragment] = {}
        fragments, endpoint_of = self._fragments, endpoints.get  # this loop runs over every deployment
        added: list[_Fragment] = []
        for deployment in ordered:
            meta = deployment.metadata
            key = (meta.namespace, meta.name)
            if key in current:
                raise ValueError(f"duplicate deployment {key[0]}/{key[1]}")
            cached = fragments.get(key)
            if (
                cached is not None
                and (cached.deployment is deployment or cached.deployment == deployment)
                and tuple(map(endpoint_of, cached.keys)) == cached.endpoints
            ):
                current[key] = cached
                continue
            keys = deployment_component_keys(deployment)
            fragment = self._render(deployment, keys, tuple(map(endpoint_of, keys)))
            if cached is not None:
                self._add(cached, sign=False)
            added.append(fragment)
            current[key] = fragment
        self._add_all(added)
        for key in self._fragments.keys() - current.keys():
            self._add(self._fragments[key], sign=False)
        self._fragments = current
        return self._assemble(current)

    def _assemble(self, fragments: Mapping[tuple[str, str], _Fragment]) -> Snapshot:
        resources: dict[TypeUrl, Packed] = {}
        versions: dict[TypeUrl, Mapping[str, Version]] = {}
        if not self.gateway.scoped:
            self._splice_routes(fragments)
        for url in resource_types.PUSH_ORDER:
            resources[url] = Packed(url, self._resources[url].freeze())
            versions[url] = self._versions[url].freeze()
        combined = {url: self._combined[url] for url in (*self._types, resource_types.LISTENER)}
        cluster_links = self._cluster_links.freeze()
        eager = self._static_eager | self._eager if self.gateway.on_demand_clusters else None
        if self.gateway.scoped:
            links = Links(
                listener_routes=self._static_links.listener_routes,
                route_clusters=self._route_links.freeze(),
                cluster_assignments=cluster_links,
                scope_routes=self._scope_links.freeze(),
            )
            changes = {
                url: (self._last_versions[url], frozenset(self._touched[url]))
                for url in self._types
                if url in self._last_versions
            }
            snapshot = Snapshot.assemble(
                resources, versions, links, combined, owned=True, changes=changes, eager_clusters=eager
            )
            self._last_versions = {url: snapshot.versions_of(url) for url in self._types}
            self._touched = {url: set() for url in self._types}
            return snapshot
        self._touched = {url: set() for url in self._types}  # unscoped snapshots carry no changes
        route_clusters = frozenset().union(
            self._tail_clusters, *(f.route_clusters for f in fragments.values())
        )
        links = Links(
            listener_routes=self._static_links.listener_routes,
            route_clusters={ROUTE_CONFIG_NAME: route_clusters},
            cluster_assignments=cluster_links,
        )
        return Snapshot.assemble(resources, versions, links, combined, owned=True, eager_clusters=eager)

    def _splice_routes(self, fragments: Mapping[tuple[str, str], _Fragment]) -> None:
        """Unscoped: the one route configuration, from the frame and each deployment's route bytes."""
        routes = b"".join(f.route_bytes for f in fragments.values())
        host = self._host_head + self._head_routes + routes + self._tail
        route = self._config_head + _field(_VIRTUAL_HOSTS, host)
        # The route configuration's version without hashing its megabytes: the frame's digest combined
        # with each deployment's share (deployments are sorted, so the set decides the order).
        combined_routes = self._frame_hash
        for fragment in fragments.values():
            combined_routes ^= fragment.route_hash
        self._resources[resource_types.ROUTE][ROUTE_CONFIG_NAME] = route
        self._versions[resource_types.ROUTE][ROUTE_CONFIG_NAME] = Version(f"{combined_routes:016x}")
