"""State-of-the-world bookkeeping for one ADS stream, free of gRPC so it can be reasoned about alone.

The server feeds every request to `SotwStream.handle` and, after each request or snapshot change, sends
what `SotwStream.responses` returns. Rules (envoy xds_protocol.rst):
- the first request's `node` is authoritative; later `node` fields are ignored;
- a request whose `response_nonce` is neither empty nor the nonce of the last response of its type is
  stale and ignored entirely;
- a non-stale request answering a response is a NACK when it carries `error_detail`, else an ACK;
- one response per type is outstanding at a time: a type is answered again only after the client's next
  (non-stale) request for it;
- Listener/Cluster are wildcard ("*" or, legacy, no names at all); RouteConfiguration and
  ClusterLoadAssignment are sent for the names requested;
- a version the node NACKed is never sent to it again;
- what is sent is the next make-before-break step towards the snapshot (`sequencing.desired`): a route
  configuration only once the clusters it names are applied, dropped clusters only once no applied route
  names them. Each ACK may unlock the next step;
- after a Cluster (Listener) push the endpoints (routes) are re-sent even if unchanged, because Envoy
  only finishes warming an updated cluster (listener) on a fresh ClusterLoadAssignment (route config).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envoy.service.discovery.v3 import discovery_pb2

from xds_controller import resource_types
from xds_controller.cache import ConfigWatcher
from xds_controller.callbacks import Callbacks
from xds_controller.resource_types import TypeUrl
from xds_controller.sequencing import Held, Step, desired
from xds_controller.snapshot import Snapshot, Version

_WILDCARD = "*"
_REFRESHES: dict[TypeUrl, TypeUrl] = {
    resource_types.CLUSTER: resource_types.ENDPOINT,
    resource_types.LISTENER: resource_types.ROUTE,
}


class ProtocolError(ValueError):
    """The client broke the protocol (no node on the first request, no type URL); ends the stream."""


@dataclass
class _TypeState:
    wildcard: bool = False
    names: frozenset[str] = frozenset()
    named_before: bool = False
    awaiting_request: bool = False
    nonce: str = ""
    sent_version: Version | None = None
    sent_names: frozenset[str] | None = None
    refresh: bool = False
    in_flight: dict[str, Held] = field(default_factory=dict)


@dataclass
class SotwStream:
    stream_id: int
    watcher: ConfigWatcher
    callbacks: Callbacks
    node_id: str = ""
    _types: dict[TypeUrl, _TypeState] = field(default_factory=dict)
    _nonces: int = 0
    # What Envoy runs, per type, as of its last ACK on this stream.
    _applied: dict[TypeUrl, dict[str, Held]] = field(default_factory=dict)
    # `desired` is recomputed only when the snapshot or what Envoy runs (or may run) changed.
    _changes: int = 0
    _memo: tuple[Snapshot, int, dict[TypeUrl, Step]] | None = None

    def handle(self, request: discovery_pb2.DiscoveryRequest) -> None:
        if not self.node_id:
            if not request.HasField("node") or not request.node.id:
                raise ProtocolError("the first request on a stream must carry node.id")
            self.node_id = str(request.node.id)
            self.watcher.stream_opened(self.node_id)
        type_url = TypeUrl(request.type_url)
        if not type_url:
            raise ProtocolError("an ADS request must carry type_url")
        self.callbacks.on_request(self.stream_id, self.node_id, request)
        state = self._types.setdefault(type_url, _TypeState())
        if request.response_nonce and request.response_nonce != state.nonce:
            return
        if request.response_nonce and state.sent_version is not None:
            self._acknowledge(type_url, state, request)
        names = frozenset(str(name) for name in request.resource_names)
        state.wildcard = _WILDCARD in names or (not names and not state.named_before)
        state.names = names - {_WILDCARD}
        state.named_before = state.named_before or bool(state.names)
        state.awaiting_request = False

    def _acknowledge(
        self, type_url: TypeUrl, state: _TypeState, request: discovery_pb2.DiscoveryRequest
    ) -> None:
        assert state.sent_version is not None
        if request.HasField("error_detail"):
            message = str(request.error_detail.message)
            self.watcher.record_nack(self.node_id, type_url, state.sent_version, message)
            self.callbacks.on_nack(self.node_id, type_url, state.sent_version, message)
        else:
            self._applied[type_url] = state.in_flight
            self._changes += 1
            self.watcher.record_ack(self.node_id, type_url, state.sent_version)
            self.callbacks.on_ack(self.node_id, type_url, state.sent_version)

    def close(self) -> None:
        if self.node_id:
            self.watcher.stream_closed(self.node_id)

    def _steps(self, snapshot: Snapshot) -> dict[TypeUrl, Step]:
        if self._memo is not None and self._memo[0] is snapshot and self._memo[1] == self._changes:
            return self._memo[2]
        routes = self._types.get(resource_types.ROUTE)
        steps = desired(snapshot, self._applied, routes.in_flight.values() if routes else ())
        self._memo = (snapshot, self._changes, steps)
        return steps

    def responses(self) -> list[discovery_pb2.DiscoveryResponse]:
        """What to send now, in push order (CDS, EDS, LDS, RDS), given the node's current snapshot."""
        snapshot = self.watcher.snapshot(self.node_id) if self.node_id else None
        if snapshot is None:
            return []
        out = []
        steps = self._steps(snapshot)
        for type_url in resource_types.PUSH_ORDER:
            state = self._types.get(type_url)
            if state is None or state.awaiting_request:
                continue
            response = self._response(type_url, state, steps[type_url], snapshot)
            if response is not None:
                out.append(response)
                refreshed = self._types.get(_REFRESHES.get(type_url, type_url))
                if refreshed is not None and refreshed is not state:
                    refreshed.refresh = True
        return out

    @staticmethod
    def _unchanged(state: _TypeState, step: Step, names: list[str]) -> bool:
        sent = state.in_flight
        return len(sent) == len(names) and all(
            name in sent and sent[name].version == step.version(name) for name in names
        )

    def _response(
        self, type_url: TypeUrl, state: _TypeState, step: Step, snapshot: Snapshot
    ) -> discovery_pb2.DiscoveryResponse | None:
        version = step.label
        if self.watcher.is_rejected(self.node_id, type_url, version):
            return None
        wanted = frozenset({_WILDCARD}) if state.wildcard else state.names
        if not wanted:
            return None
        if not state.refresh and state.sent_version == version and state.sent_names == wanted:
            return None
        available = step.names()
        names = sorted(available) if state.wildcard else sorted(state.names & available)
        if not state.refresh and state.sent_names == wanted and self._unchanged(state, step, names):
            return None  # the step keeps what Envoy has (e.g. a route held back): nothing to say
        if not names and not state.wildcard and not state.in_flight:
            return None  # nothing Envoy asked for exists yet; it waits, as it would for a missing name
        self._nonces += 1
        response = discovery_pb2.DiscoveryResponse(
            version_info=version,
            type_url=type_url,
            nonce=f"{self.stream_id}-{self._nonces}",
            resources=[step.resource(name) for name in names],
        )
        links = snapshot.links.route_clusters
        state.in_flight = {name: step.held(name, links) for name in names}
        self._changes += 1
        state.nonce, state.sent_version, state.sent_names = response.nonce, version, wanted
        state.awaiting_request, state.refresh = True, False
        return response
