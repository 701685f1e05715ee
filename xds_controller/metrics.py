"""Prometheus metrics of the xDS server, as a `Callbacks` implementation that forwards every hook to an
inner `Callbacks` (the local plane's, say), so one object goes to `create_server(..., callbacks=...)`:

    callbacks = XdsMetrics(registry, inner=plane)

Counts pushes (SotW and delta responses sent), ACKs and NACKs per node and resource type (CDS, EDS, LDS,
RDS, SDS), open streams, and whether a node's last answer for a type was a NACK, so a rejected config
shows on a dashboard until a good one is applied.

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
    def __init__(self, registry: CollectorRegistry, inner: Callbacks | None = None) -> None:
        self._inner = inner or Callbacks()
        labels = ["node", "type", "mode"]
        self.pushes = Counter(
            _PREFIX + "pushes", "Discovery responses sent (mode sotw or delta)", labels, registry=registry
        )
        self.acks = Counter(_PREFIX + "acks", "Versions a node applied", labels[:2], registry=registry)
        self.nacks = Counter(_PREFIX + "nacks", "Versions a node rejected", labels[:2], registry=registry)
        self.rejected = Gauge(
            _PREFIX + "rejected",
            "1 while a node's last answer for a type was a NACK (it runs its last good config)",
            labels[:2],
            registry=registry,
        )
        self.last_nack = Gauge(
            _PREFIX + "last_nack_timestamp_seconds",
            "When a node last rejected a config",
            labels[:2],
            registry=registry,
        )
        self.streams = Gauge(_PREFIX + "streams", "Open ADS streams", registry=registry)

    def on_stream_open(self, stream_id: int, peer: str) -> None:
        self.streams.inc()
        self._inner.on_stream_open(stream_id, peer)

    def on_stream_closed(self, stream_id: int, node_id: str | None) -> None:
        self.streams.dec()
        self._inner.on_stream_closed(stream_id, node_id)

    def on_request(self, stream_id: int, node_id: str, request: discovery_pb2.DiscoveryRequest) -> None:
        self._inner.on_request(stream_id, node_id, request)

    def on_delta_request(
        self, stream_id: int, node_id: str, request: discovery_pb2.DeltaDiscoveryRequest
    ) -> None:
        self._inner.on_delta_request(stream_id, node_id, request)

    def on_response(self, stream_id: int, node_id: str, response: discovery_pb2.DiscoveryResponse) -> None:
        self.pushes.labels(node_id, short_name(response.type_url), "sotw").inc()
        self._inner.on_response(stream_id, node_id, response)

    def on_delta_response(
        self, stream_id: int, node_id: str, response: discovery_pb2.DeltaDiscoveryResponse
    ) -> None:
        self.pushes.labels(node_id, short_name(response.type_url), "delta").inc()
        self._inner.on_delta_response(stream_id, node_id, response)

    def on_ack(self, node_id: str, type_url: TypeUrl, version: Version) -> None:
        kind = short_name(type_url)
        self.acks.labels(node_id, kind).inc()
        self.rejected.labels(node_id, kind).set(0)
        self._inner.on_ack(node_id, type_url, version)

    def on_nack(self, node_id: str, type_url: TypeUrl, version: Version, message: str) -> None:
        kind = short_name(type_url)
        self.nacks.labels(node_id, kind).inc()
        self.rejected.labels(node_id, kind).set(1)
        self.last_nack.labels(node_id, kind).set(time.time())
        self._inner.on_nack(node_id, type_url, version, message)
