"""Hooks the ADS server calls at stream and ACK/NACK events; every method is a no-op by default.

Subclass `Callbacks` and override what you need (metrics, logs, tests). Hooks run on the server's event
loop and must not block.
"""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds_controller.resource_types import TypeUrl
from xds_controller.snapshot import Version


class Callbacks:
    def on_stream_open(self, stream_id: int, peer: str) -> None:
        """A client opened an ADS stream (its node is not known until the first request)."""

    def on_stream_closed(self, stream_id: int, node_id: str | None) -> None:
        """The stream ended (client closed, cancelled, or server stopping)."""

    def on_request(self, stream_id: int, node_id: str, request: discovery_pb2.DiscoveryRequest) -> None:
        """Every request, stale ones included, before it is processed."""

    def on_delta_request(
        self, stream_id: int, node_id: str, request: discovery_pb2.DeltaDiscoveryRequest
    ) -> None:
        """Every delta request, stale ones included, before it is processed."""

    def on_delta_response(
        self, stream_id: int, node_id: str, response: discovery_pb2.DeltaDiscoveryResponse
    ) -> None:
        """A delta response is about to be handed to gRPC for sending."""

    def on_response(self, stream_id: int, node_id: str, response: discovery_pb2.DiscoveryResponse) -> None:
        """A response is about to be handed to gRPC for sending."""

    def on_ack(self, node_id: str, type_url: TypeUrl, version: Version) -> None:
        """The node applied `version` of `type_url`."""

    def on_nack(self, node_id: str, type_url: TypeUrl, version: Version, message: str) -> None:
        """The node rejected `version` of `type_url`; it keeps its last good config."""
