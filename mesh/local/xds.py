"""The local mesh's xDS plane: our ADS server and snapshot cache, seen by the reconciler as a publisher.

It turns translated resources into a consistent, content-versioned snapshot for the one local Envoy, and
answers whether Envoy has applied or rejected a published config (from the cache's ACK/NACK bookkeeping).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import grpc

from mesh.local.reconcile import ConfigState
from xds_controller.bootstrap import render_bootstrap
from xds_controller.cache import SnapshotCache
from xds_controller.resource_types import TypeUrl
from xds_controller.server import ServerSettings, create_server
from xds_controller.snapshot import EMPTY_VERSION, Snapshot, Version
from xds_controller.translate import Resources, Upstream


class XdsPlane:
    def __init__(self, node_id: str, host: str) -> None:
        self.node_id = node_id
        self.host = host
        self.cache = SnapshotCache()
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._published: dict[str, Mapping[TypeUrl, Version]] = {}

    async def start(self) -> None:
        self._server, self.port = await create_server(ServerSettings(host=self.host, port=0), self.cache)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(1.0)

    def bootstrap(self, admin_port: int) -> dict[str, Any]:
        return render_bootstrap(self.node_id, Upstream(self.host, self.port), admin_port)

    def publish(self, resources: Resources) -> str:
        snapshot = Snapshot.of(resources.all())
        snapshot.consistency_check()
        self.cache.set_snapshot(self.node_id, snapshot)
        versions = dict(snapshot.versions)
        config_id = hashlib.sha256(repr(sorted(versions.items())).encode()).hexdigest()[:16]
        self._published[config_id] = versions
        return config_id

    def state(self, config_id: str) -> tuple[ConfigState, str]:
        versions = self._published.get(config_id)
        if versions is None:
            return ConfigState.PENDING, ""
        status = self.cache.status(self.node_id)
        for type_url, version in versions.items():
            nack = status.nacks.get(type_url)
            if nack is not None and nack.version == version:
                return ConfigState.REJECTED, nack.message
        applied = all(
            version == EMPTY_VERSION or status.acked.get(type_url) == version
            for type_url, version in versions.items()
        )
        return (ConfigState.APPLIED if applied else ConfigState.PENDING), ""
