"""The cluster as the gateway sees it: valid SeldonDeployments (as `ServiceDeployment` views) and the
endpoints of the Services they route to, kept from watch events, with what changed since last taken.

A SeldonDeployment `mesh.spec` rejects is skipped with one log line per version (what it routed before
stays routed: an update Kubernetes accepted but we cannot read must not take a model offline); a
deleted one is removed. An EndpointSlice event re-computes its Service's endpoints and marks the
deployments routing to that Service changed, so the builder re-renders only those, and since their
views are unchanged only their load assignments get new versions (scaling changes EDS only).

Not thread-safe: the controller's event loop owns it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh.spec import SpecError, parse_deployment
from xds_controller.kube.endpoints import SliceEndpoints, parse_slice, service_endpoints
from xds_controller.kube.views import ServiceDeployment, service_view
from xds_controller.translate import ComponentEndpoints, ComponentKey

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


@dataclass
class Changes:
    """Deployments to re-render (added, changed, or their endpoints moved) and ones removed."""

    changed: list[ServiceDeployment] = field(default_factory=list)
    removed: list[Key] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changed or self.removed)


def _key(raw: Mapping[str, Any]) -> Key:
    meta = raw.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


class ClusterState:
    def __init__(self) -> None:
        self.deployments: dict[Key, ServiceDeployment] = {}
        self.endpoints: dict[ComponentKey, ComponentEndpoints] = {}
        self._slices: dict[Key, SliceEndpoints] = {}
        self._service_slices: dict[Key, set[Key]] = defaultdict(set)
        self._service_users: dict[Key, set[ComponentKey]] = defaultdict(set)
        self._rejected: dict[Key, str] = {}  # the resourceVersion logged as invalid
        # the last raw object read per deployment: a watch replaying what a list returned (or a
        # resync) costs a dict comparison, not a parse
        self._raws: dict[Key, Mapping[str, Any]] = {}
        self._changed: set[Key] = set()
        self._removed: set[Key] = set()

    # -- SeldonDeployments ---------------------------------------------------------------------------------
    def put_deployment(self, raw: Mapping[str, Any]) -> bool:
        """Add or update one SeldonDeployment from its raw object; False when it is invalid (logged)."""
        key = _key(raw)
        if self._raws.get(key) == raw:
            return key not in self._rejected
        self._raws[key] = raw
        try:
            view = service_view(parse_deployment(raw))
        except SpecError as error:
            version = str((raw.get("metadata") or {}).get("resourceVersion") or "")
            if self._rejected.get(key) != version:
                self._rejected[key] = version
                log.warning("SeldonDeployment %s/%s skipped: %s", key[0], key[1], error)
            return False
        self._rejected.pop(key, None)
        if view.key != key:  # (a defaulted namespace) route what the spec says
            key = view.key
        old = self.deployments.get(key)
        if old == view:
            return True
        if old is not None:
            self._unlink(old)
        self.deployments[key] = view
        self._link(view)
        self._changed.add(key)
        self._removed.discard(key)
        return True

    def delete_deployment(self, key: Key) -> None:
        self._rejected.pop(key, None)
        self._raws.pop(key, None)
        old = self.deployments.pop(key, None)
        if old is None:
            return
        self._unlink(old)
        self._changed.discard(key)
        self._removed.add(key)

    def _link(self, view: ServiceDeployment) -> None:
        namespace = view.metadata.namespace
        for component, service in view.services():
            self._service_users[namespace, service].add(component)
            self.endpoints[component] = self._service_endpoints((namespace, service))

    def _unlink(self, view: ServiceDeployment) -> None:
        namespace = view.metadata.namespace
        for component, service in view.services():
            users = self._service_users.get((namespace, service))
            if users is not None:
                users.discard(component)
                if not users:
                    del self._service_users[namespace, service]
            self.endpoints.pop(component, None)

    # -- EndpointSlices ------------------------------------------------------------------------------------
    def put_slice(self, raw: Mapping[str, Any]) -> None:
        key = _key(raw)
        parsed = parse_slice(raw)
        old = self._slices.get(key)
        if parsed == old:
            return
        if old is not None and (parsed is None or parsed.service != old.service):
            self._drop_slice(key, old)
        if parsed is None:
            return
        self._slices[key] = parsed
        service = (key[0], parsed.service)
        self._service_slices[service].add(key)
        self._refresh(service)

    def delete_slice(self, key: Key) -> None:
        old = self._slices.get(key)
        if old is not None:
            self._drop_slice(key, old)

    def _drop_slice(self, key: Key, old: SliceEndpoints) -> None:
        del self._slices[key]
        service = (key[0], old.service)
        slices = self._service_slices[service]
        slices.discard(key)
        if not slices:
            del self._service_slices[service]
        self._refresh(service)

    def _service_endpoints(self, service: Key) -> ComponentEndpoints:
        return service_endpoints(self._slices[k] for k in sorted(self._service_slices.get(service, ())))

    def _refresh(self, service: Key) -> None:
        users = self._service_users.get(service)
        if not users:
            return
        found = self._service_endpoints(service)
        for component in users:
            if self.endpoints.get(component) != found:
                self.endpoints[component] = found
                self._changed.add((component.namespace, component.deployment))

    # -- full resyncs (after a relist) ---------------------------------------------------------------------
    def replace_deployments(self, raws: Sequence[Mapping[str, Any]]) -> None:
        """The whole set after a list: objects not in it are gone."""
        seen = set()
        with _collector_paused():
            for raw in raws:
                self.put_deployment(raw)
                seen.add(_key(raw))
        for key in [k for k in self.deployments if k not in seen]:
            self.delete_deployment(key)

    def replace_slices(self, raws: Sequence[Mapping[str, Any]]) -> None:
        seen = set()
        with _collector_paused():
            for raw in raws:
                self.put_slice(raw)
                seen.add(_key(raw))
        for key in [k for k in self._slices if k not in seen]:
            self.delete_slice(key)

    def take_changes(self) -> Changes:
        changes = Changes(
            changed=[self.deployments[k] for k in sorted(self._changed) if k in self.deployments],
            removed=sorted(self._removed),
        )
        self._changed.clear()
        self._removed.clear()
        return changes


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A relist reads tens of thousands of objects and keeps most of them: the cyclic collector would
    rescan the growing heap again and again meanwhile (as in `SnapshotBuilder.build`)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
