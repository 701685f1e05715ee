"""The in-cluster gateway's control loop: list, build, publish; then watch, batch, update, publish.

Start-up lists every SeldonDeployment and EndpointSlice before the first snapshot, so Envoy receives the
whole configuration in one push (thousands of incremental snapshots would each be a delta round trip).
Then both kinds are watched from the listed resourceVersion; events only update `ClusterState`, and a
publisher task turns what accumulated into one `SnapshotBuilder.update` (re-rendering only the
deployments that changed) and one `SnapshotCache.set_snapshot`. While a build runs, new events queue up
and are published together by the next one, so a burst costs a few builds, not one per event.

A watch that breaks (410 Gone, a dropped connection, an API server restart) is re-listed and followed
again after a backoff; objects that disappeared meanwhile are removed. The controller never exits on
bad input: an invalid SeldonDeployment is logged and skipped by `ClusterState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xds_controller.builder import SnapshotBuilder
from xds_controller.cache import SnapshotCache
from xds_controller.kube.source import Kind, Raw, Source
from xds_controller.kube.state import ClusterState
from xds_controller.resource_types import ENDPOINT, PUSH_ORDER
from xds_controller.translate import GatewaySettings

log = logging.getLogger(__name__)

NODE_ID = "seldon-mesh-gateway"


@dataclass(frozen=True)
class ControllerSettings:
    # Envoy's node id in the gateway's bootstrap (the chart's `seldon-mesh-gateway`).
    node_id: str = NODE_ID
    # Where Envoy's listener binds (in Envoy's pod): all interfaces, port 8080 behind the gateway Service.
    listen_host: str = "0.0.0.0"
    listen_port: int = 8080
    # Seconds events are left to accumulate after the first of a burst before a build: a rollout or a
    # `kubectl apply` of many objects arrives as many events within milliseconds.
    batch_s: float = 0.005
    # Seconds before re-listing after a broken watch (doubling up to `max_backoff_s`).
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def gateway(self) -> GatewaySettings:
        # Scoped: one RouteConfiguration per deployment, so a change re-parses only that one's routes;
        # on demand, as the component clusters are (`translate.on_demand`): Envoy starts with every scope
        # and fetches a deployment's routes and clusters when a request first needs them.
        # No extproc, reflection or tracing clusters of the gateway's own: in a cluster a graph
        # predictor's Service leads to its own extproc, and reflection is answered by the runtimes.
        return GatewaySettings(
            listen_host=self.listen_host, listen_port=self.listen_port, scoped=True, on_demand_clusters=True
        )


@dataclass
class Stats:
    """What the controller did, for logs, the health endpoint and the bench."""

    synced_at: float | None = None  # monotonic time of the first full snapshot
    # seconds the first sync spent listing, reading (validating, linking endpoints) and building
    sync_phases: dict[str, float] = field(default_factory=dict)
    builds: int = 0
    last_build_s: float = 0.0
    events: dict[str, int] = field(default_factory=dict)


class GatewayController:
    def __init__(
        self, source: Source, settings: ControllerSettings | None = None, cache: SnapshotCache | None = None
    ) -> None:
        self.settings = settings or ControllerSettings()
        self.source = source
        self.cache = cache or SnapshotCache()
        self.state = ClusterState()
        self.builder = SnapshotBuilder(self.settings.gateway())
        self.synced = asyncio.Event()
        self.stats = Stats()
        self._dirty = asyncio.Event()

    async def run(self) -> None:
        """Until cancelled."""
        versions = await self._sync()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._follow(Kind.DEPLOYMENTS, versions[Kind.DEPLOYMENTS]))
            tasks.create_task(self._follow(Kind.SLICES, versions[Kind.SLICES]))
            tasks.create_task(self._publish_forever())

    async def _sync(self) -> dict[Kind, str | None]:
        backoff = self.settings.backoff_s
        started = time.perf_counter()
        while True:
            try:
                deployments, deployments_version = await self.source.list(Kind.DEPLOYMENTS)
                slices, slices_version = await self.source.list(Kind.SLICES)
                break
            except Exception as error:  # the API server not reachable yet: keep trying
                log.warning("listing the cluster failed (%s); retrying in %.1fs", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.max_backoff_s)
        listed = time.perf_counter()
        # Slices first: each deployment then finds its endpoints when it is linked.
        self.state.replace_slices(slices)
        self.state.replace_deployments(deployments)
        self.state.take_changes()
        read = time.perf_counter()
        snapshot = self.builder.build(list(self.state.deployments.values()), self.state.endpoints)
        built = time.perf_counter()
        self._publish(snapshot, built - read)
        self.stats.sync_phases = {
            "list_s": listed - started,
            "read_s": read - listed,
            "build_s": built - read,
        }
        self.stats.synced_at = time.monotonic()
        self.synced.set()
        # what the sync built lives as long as the process: keep the collector from rescanning it
        gc.freeze()
        log.info(
            "synced %d SeldonDeployments, %d EndpointSlices in %.2fs",
            len(self.state.deployments),
            len(slices),
            self.stats.last_build_s,
        )
        return {Kind.DEPLOYMENTS: deployments_version, Kind.SLICES: slices_version}

    def status(self) -> dict[str, Any]:
        """For `/statusz`: the sync state, and whether Envoy ACKed every type of the current snapshot
        (`in_sync`; false while a push is being applied, or after a NACK, whose message is given)."""
        node = self.cache.status(self.settings.node_id)
        snapshot = self.cache.snapshot(self.settings.node_id)
        # With on-demand clusters Envoy subscribes to endpoints only once it has a cluster: until then
        # there are none it wants.
        wanted = (
            {
                url: snapshot.version(url)
                for url in PUSH_ORDER
                if snapshot.get(url)
                and (url != ENDPOINT or url in node.acked or snapshot.eager_clusters is None)
            }
            if snapshot
            else {}
        )
        return {
            "synced": self.synced.is_set(),
            "connected": node.connected,
            "in_sync": bool(wanted) and all(node.acked.get(url) == v for url, v in wanted.items()),
            "deployments": len(self.state.deployments),
            "builds": self.stats.builds,
            "last_build_s": self.stats.last_build_s,
            "sync_phases": self.stats.sync_phases,
            "events": dict(self.stats.events),
            "last_nack": node.last_nack.message if node.last_nack else None,
        }

    def _publish(self, snapshot: Any, build_s: float) -> None:
        self.cache.set_snapshot(self.settings.node_id, snapshot)
        self.stats.builds += 1
        self.stats.last_build_s = build_s

    async def _follow(self, kind: Kind, version: str | None) -> None:
        backoff = self.settings.backoff_s
        while True:
            try:
                async for event, raw in self.source.watch(kind, version):
                    version = _version(raw) or version
                    self._apply(kind, event, raw)
                    backoff = self.settings.backoff_s
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("watch of %s broke (%s); listing again in %.1fs", kind, error, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.max_backoff_s)
            with contextlib.suppress(Exception):
                items, version = await self.source.list(kind)
                if kind is Kind.DEPLOYMENTS:
                    self.state.replace_deployments(items)
                else:
                    self.state.replace_slices(items)
                self._dirty.set()

    def _apply(self, kind: Kind, event: str, raw: Raw) -> None:
        self.stats.events[event] = self.stats.events.get(event, 0) + 1
        if event == "BOOKMARK":
            return
        if kind is Kind.DEPLOYMENTS:
            if event == "DELETED":
                self.state.delete_deployment(_key(raw))
            else:
                self.state.put_deployment(raw)
        elif event == "DELETED":
            self.state.delete_slice(_key(raw))
        else:
            self.state.put_slice(raw)
        self._dirty.set()

    async def _publish_forever(self) -> None:
        while True:
            await self._dirty.wait()
            if self.settings.batch_s > 0:
                await asyncio.sleep(self.settings.batch_s)
            self._dirty.clear()
            changes = self.state.take_changes()
            if not changes:
                continue
            started = time.perf_counter()
            snapshot = self.builder.update(changes.changed, changes.removed, self.state.endpoints)
            self._publish(snapshot, time.perf_counter() - started)


def _key(raw: Raw) -> tuple[str, str]:
    meta: Mapping[str, Any] = raw.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _version(raw: Raw) -> str | None:
    meta: Mapping[str, Any] = raw.get("metadata") or {}
    version = meta.get("resourceVersion")
    return str(version) if version else None
