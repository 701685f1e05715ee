"""Snapshots per Envoy node, watches on them, and what each node accepted or rejected.

Concurrency model: the cache is thread-safe and its waits are asyncio. `set_snapshot`, `status` and the
bookkeeping calls may come from any thread (a reconcile loop, a test, the server's event loop); they take
a short lock. `wait_for_change` is awaited by the server on its event loop; a change wakes every waiter
through its own loop with `call_soon_threadsafe`.

The server sees the cache only through the `ConfigWatcher` protocol below. A version that a node NACKed
is remembered per (type, version), and per (type, resource name, resource version) for delta streams, and
never handed out for that node again: the node keeps running its last good config until a new, different
snapshot arrives.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from xds_controller.resource_types import TypeUrl
from xds_controller.snapshot import Snapshot, Version


@dataclass(frozen=True)
class Nack:
    """One rejection: Envoy refused `version` of `type_url` with `message` at `at` (unix seconds)."""

    type_url: TypeUrl
    version: Version
    message: str
    at: float


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    connected: bool = False
    snapshot_versions: Mapping[TypeUrl, Version] = field(default_factory=dict)
    acked: Mapping[TypeUrl, Version] = field(default_factory=dict)
    last_nack: Nack | None = None
    nacks: Mapping[TypeUrl, Nack] = field(default_factory=dict)

    @property
    def in_sync(self) -> bool:
        """True when the node ACKed the cached version of every type it was sent."""
        return all(self.snapshot_versions.get(url) == version for url, version in self.acked.items())


class ConfigWatcher(Protocol):
    """What the ADS server needs from a cache."""

    def snapshot(self, node_id: str) -> Snapshot | None: ...

    def generation(self, node_id: str) -> int: ...

    async def wait_for_change(self, node_id: str, generation: int) -> int: ...

    def is_rejected(self, node_id: str, type_url: TypeUrl, version: Version) -> bool: ...

    def is_resource_rejected(self, node_id: str, type_url: TypeUrl, name: str, version: Version) -> bool: ...

    def stream_opened(self, node_id: str) -> None: ...

    def stream_closed(self, node_id: str) -> None: ...

    def record_ack(self, node_id: str, type_url: TypeUrl, version: Version) -> None: ...

    def record_nack(
        self,
        node_id: str,
        type_url: TypeUrl,
        version: Version,
        message: str,
        resources: Mapping[str, Version] | None = None,
    ) -> None: ...


@dataclass
class _Node:
    snapshot: Snapshot | None = None
    generation: int = 0
    streams: int = 0
    acked: dict[TypeUrl, Version] = field(default_factory=dict)
    nacks: dict[TypeUrl, Nack] = field(default_factory=dict)
    last_nack: Nack | None = None
    rejected: set[tuple[TypeUrl, Version]] = field(default_factory=set)
    rejected_resources: set[tuple[TypeUrl, str, Version]] = field(default_factory=set)
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(default_factory=list)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SnapshotCache:
    """The snapshot per node id, plus per-node ACK/NACK status. Implements ConfigWatcher."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._nodes: dict[str, _Node] = {}

    def _node(self, node_id: str) -> _Node:
        return self._nodes.setdefault(node_id, _Node())

    def set_snapshot(self, node_id: str, snapshot: Snapshot) -> bool:
        """Publish `snapshot` for `node_id`; False (and no push) when its versions equal the current."""
        with self._lock:
            node = self._node(node_id)
            if node.snapshot is not None and node.snapshot.versions == snapshot.versions:
                return False
            node.snapshot = snapshot
            node.generation += 1
            waiters, node.waiters = node.waiters, []
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)
        return True

    def forget(self, node_id: str) -> None:
        """Drop everything known about a node (its snapshot, status and rejected versions)."""
        with self._lock:
            node = self._nodes.pop(node_id, None)
        for loop, future in node.waiters if node else []:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)

    def node_ids(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._nodes))

    def snapshot(self, node_id: str) -> Snapshot | None:
        with self._lock:
            node = self._nodes.get(node_id)
            return node.snapshot if node else None

    def generation(self, node_id: str) -> int:
        with self._lock:
            node = self._nodes.get(node_id)
            return node.generation if node else 0

    async def wait_for_change(self, node_id: str, generation: int) -> int:
        """Wait until the node's snapshot generation differs from `generation`; return the new one."""
        loop = asyncio.get_running_loop()
        with self._lock:
            node = self._node(node_id)
            if node.generation != generation:
                return node.generation
            future: asyncio.Future[None] = loop.create_future()
            node.waiters.append((loop, future))
        try:
            await future
        finally:
            with self._lock:
                waiting = self._nodes.get(node_id)
                if waiting is not None and (loop, future) in waiting.waiters:
                    waiting.waiters.remove((loop, future))
        return self.generation(node_id)

    def is_rejected(self, node_id: str, type_url: TypeUrl, version: Version) -> bool:
        with self._lock:
            node = self._nodes.get(node_id)
            return node is not None and (type_url, version) in node.rejected

    def is_resource_rejected(self, node_id: str, type_url: TypeUrl, name: str, version: Version) -> bool:
        with self._lock:
            node = self._nodes.get(node_id)
            return node is not None and (type_url, name, version) in node.rejected_resources

    def stream_opened(self, node_id: str) -> None:
        with self._lock:
            self._node(node_id).streams += 1

    def stream_closed(self, node_id: str) -> None:
        with self._lock:
            node = self._node(node_id)
            node.streams = max(0, node.streams - 1)

    def record_ack(self, node_id: str, type_url: TypeUrl, version: Version) -> None:
        with self._lock:
            self._node(node_id).acked[type_url] = version

    def record_nack(
        self,
        node_id: str,
        type_url: TypeUrl,
        version: Version,
        message: str,
        resources: Mapping[str, Version] | None = None,
    ) -> None:
        """Remember a rejection: the type's `version` (SotW) and, for delta, each rejected resource's
        version, so neither is handed to the node again."""
        nack = Nack(type_url=type_url, version=version, message=message, at=self._clock())
        with self._lock:
            node = self._node(node_id)
            node.rejected.add((type_url, version))
            node.rejected_resources.update((type_url, name, v) for name, v in (resources or {}).items())
            node.nacks[type_url] = nack
            node.last_nack = nack

    def status(self, node_id: str) -> NodeStatus:
        with self._lock:
            node = self._nodes.get(node_id)
            if node is None:
                return NodeStatus(node_id=node_id)
            return NodeStatus(
                node_id=node_id,
                connected=node.streams > 0,
                snapshot_versions=MappingProxyType(dict(node.snapshot.versions) if node.snapshot else {}),
                acked=MappingProxyType(dict(node.acked)),
                last_nack=node.last_nack,
                nacks=MappingProxyType(dict(node.nacks)),
            )
