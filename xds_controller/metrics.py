"""Prometheus metrics of the xDS server, as a `Callbacks` implementation: pass `XdsMetrics(registry)` as
`create_server(settings, cache, callbacks=...)`. Counts pushes (responses sent), ACKs and NACKs per node
and resource type (CDS, EDS, LDS, RDS, SDS), open streams, and whether a node's last answer for a type was
a NACK, so a rejected config shows on a dashboard until a good one is applied.

Labels stay small: node ids are the few Envoys (gateways, sidecars) this controller feeds.
"""

from __future__ import annotations

import time

from envoy.service.discovery.v3 import discovery_pb2
from prometheus_client import CollectorRegistry, Counter, Gauge

from xds_controller.callbacks import Callbacks
from xds_controller.resource_types import TypeUrl, short_name
from xds_controller.snapshot import Version

_PREFIX = "seldon_mesh_xds_"


class XdsMetrics(Callbacks):
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["node", "type"]
        self.pushes = Counter(_PREFIX + "pushes", "DiscoveryResponses sent", labels, registry=registry)
        self.acks = Counter(_PREFIX + "acks", "Versions a node applied", labels, registry=registry)
        self.nacks = Counter(_PREFIX + "nacks", "Versions a node rejected", labels, registry=registry)
        self.rejected = Gauge(
            _PREFIX + "rejected",
            "1 while a node's last answer for a type was a NACK (it runs its last good config)",
            labels,
            registry=registry,
        )
        self.last_nack = Gauge(
            _PREFIX + "last_nack_timestamp_seconds", "When a node last rejected a config", labels,
            registry=registry,
        )  # fmt: skip
        self.streams = Gauge(_PREFIX + "streams", "Open ADS streams", registry=registry)

    def on_stream_open(self, stream_id: int, peer: str) -> None:
        self.streams.inc()

    def on_stream_closed(self, stream_id: int, node_id: str | None) -> None:
        self.streams.dec()

    def on_response(self, stream_id: int, node_id: str, response: discovery_pb2.DiscoveryResponse) -> None:
        self.pushes.labels(node_id, short_name(response.type_url)).inc()

    def on_ack(self, node_id: str, type_url: TypeUrl, version: Version) -> None:
        kind = short_name(type_url)
        self.acks.labels(node_id, kind).inc()
        self.rejected.labels(node_id, kind).set(0)

    def on_nack(self, node_id: str, type_url: TypeUrl, version: Version, message: str) -> None:
        kind = short_name(type_url)
        self.nacks.labels(node_id, kind).inc()
        self.rejected.labels(node_id, kind).set(1)
        self.last_nack.labels(node_id, kind).set(time.time())
