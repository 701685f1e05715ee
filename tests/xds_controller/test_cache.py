from __future__ import annotations

import asyncio
import threading

from envoy.config.cluster.v3 import cluster_pb2

from xds_controller import resource_types
from xds_controller.cache import SnapshotCache
from xds_controller.snapshot import Snapshot


def _snapshot(name: str) -> Snapshot:
    return Snapshot.of([cluster_pb2.Cluster(name=name)])


def test_a_snapshot_set_from_another_thread_wakes_the_waiter() -> None:
    cache = SnapshotCache()

    async def wait() -> int:
        generation = cache.generation("n")
        waiter = asyncio.ensure_future(cache.wait_for_change("n", generation))
        await asyncio.sleep(0)  # let the waiter register before the other thread publishes
        threading.Thread(target=cache.set_snapshot, args=("n", _snapshot("a"))).start()
        return await asyncio.wait_for(waiter, timeout=10)

    assert asyncio.run(wait()) == 1
    snapshot = cache.snapshot("n")
    assert snapshot is not None
    assert list(snapshot.get(resource_types.CLUSTER)) == ["a"]


def test_status_tracks_acks_nacks_and_sync() -> None:
    cache = SnapshotCache(clock=lambda: 1234.5)
    good, bad = _snapshot("a"), _snapshot("b")
    cache.set_snapshot("n", good)
    cache.record_ack("n", resource_types.CLUSTER, good.version(resource_types.CLUSTER))
    assert cache.status("n").in_sync
    cache.set_snapshot("n", bad)
    cache.record_nack("n", resource_types.CLUSTER, bad.version(resource_types.CLUSTER), "nope")
    status = cache.status("n")
    assert not status.in_sync
    assert status.last_nack is not None
    assert (status.last_nack.message, status.last_nack.at) == ("nope", 1234.5)
    assert cache.is_rejected("n", resource_types.CLUSTER, bad.version(resource_types.CLUSTER))
    assert not cache.is_rejected("other", resource_types.CLUSTER, bad.version(resource_types.CLUSTER))
    cache.forget("n")
    assert cache.status("n").last_nack is None
