"""The local mesh's xDS plane: our ADS server and snapshot cache, seen by the reconciler as a publisher.

It hands a consistent, content-versioned snapshot to the cache for the one local Envoy, and answers
whether Envoy has applied or rejected a published config (from the cache's ACK/NACK bookkeeping).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from mesh.local.reconcile import ConfigState
from xds_controller.bootstrap import render_bootstrap
from xds_controller.cache import SnapshotCache
from xds_controller.callbacks import Callbacks
from xds_controller.metrics import XdsMetrics
from xds_controller.resource_types import TypeUrl
from xds_controller.server import ServerSettings, create_server
from xds_controller.snapshot import EMPTY_VERSION, Snapshot, Version
from xds_controller.translate import Upstream

MAX_REMEMBERED = 256  # published configs whose fate is kept (status needs only the recent ones)


class XdsPlane(Callbacks):
    """ConfigPublisher over our ADS server. Versions are per resource type, so after a rejection Envoy may
    run a mix of old and new types: a config counts as applied once every type was ACKed at the same time,
    which is latched on the ACK that completes it (later pushes may ACK some types further)."""

    def __init__(
        self,
        node_id: str,
        host: str,
        *,
        delta: bool = True,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`delta` picks the ADS variant Envoy is bootstrapped with: incremental (the default; a change
        sends only the changed resources) or state of the world. The server answers both. With a
        `registry`, pushes, ACKs and NACKs are counted there (`XdsMetrics` wraps these callbacks)."""
        self.registry = registry
        self.node_id = node_id
        self.host = host
        self.delta = delta
        self.cache = SnapshotCache()
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._published: dict[str, Mapping[TypeUrl, Version]] = {}
        self._applied: set[str] = set()
        self._checked: Snapshot | None = None  # the last snapshot that passed the consistency check

    async def start(self) -> None:
        callbacks: Callbacks = self if self.registry is None else XdsMetrics(self.registry, inner=self)
        self._server, self.port = await create_server(
            ServerSettings(host=self.host, port=0), self.cache, callbacks
        )

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(1.0)

    def bootstrap(
        self,
        admin_socket: str,
        stats_port: int,
        runtime: Mapping[str, int | float | str | bool] | None = None,
    ) -> dict[str, Any]:
        """Envoy's admin API on `admin_socket` (0600), its stats alone on loopback `stats_port`."""
        return render_bootstrap(
            self.node_id,
            Upstream(self.host, self.port),
            0,
            delta=self.delta,
            runtime=runtime,
            admin_socket=admin_socket,
            stats_port=stats_port,
        )

    def publish(self, snapshot: Snapshot) -> str:
        snapshot.consistency_check(since=self._checked)  # from the builder's hints: no full pass per apply
        self._checked = snapshot
        self.cache.set_snapshot(self.node_id, snapshot)
        versions = dict(snapshot.versions)
        config_id = hashlib.sha256(repr(sorted(versions.items())).encode()).hexdigest()[:16]
        self._published.pop(config_id, None)
        self._published[config_id] = versions
        while len(self._published) > MAX_REMEMBERED:
            forgotten = next(iter(self._published))
            del self._published[forgotten]
            self._applied.discard(forgotten)
        return config_id

    def on_ack(self, node_id: str, type_url: TypeUrl, version: Version) -> None:
        if node_id != self.node_id:
            return
        acked = self.cache.status(node_id).acked
        for config_id, versions in self._published.items():
            if all(v == EMPTY_VERSION or acked.get(url) == v for url, v in versions.items()):
                self._applied.add(config_id)

    def state(self, config_id: str) -> tuple[ConfigState, str]:
        versions = self._published.get(config_id)
        if versions is None:
            return ConfigState.PENDING, ""
        if config_id in self._applied:
            return ConfigState.APPLIED, ""
        status = self.cache.status(self.node_id)
        for type_url, version in versions.items():
            nack = status.nacks.get(type_url)
            if nack is not None and nack.version == version:
                return ConfigState.REJECTED, nack.message
        return ConfigState.PENDING, ""
