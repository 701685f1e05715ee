"""Incremental (delta) xDS bookkeeping for one ADS stream, free of gRPC like `sotw`.

The server feeds every DeltaDiscoveryRequest to `DeltaStream.handle` and sends what `responses` returns.
Rules (envoy xds_protocol.rst, incremental xDS):
- the first request's `node` is authoritative;
- subscriptions: `resource_names_subscribe` / `resource_names_unsubscribe`, honoured even on a request
  with a stale nonce; "*" is the explicit wildcard, and a type whose first request names nothing is a
  legacy wildcard (Envoy does this for listeners and clusters);
- `initial_resource_versions` (on reconnect) says what the client already runs: those are not re-sent
  unless they differ from the snapshot;
- a request answering the last response of its type is an ACK, or a NACK when it has `error_detail`;
  the rejected resource versions are never sent to the node again;
- only resources whose version differs from what the client runs are sent, and `removed_resources`
  names what it runs that is gone; a resource named in `resource_names_subscribe` is (re)sent even if
  the client is thought to have it, and reported in `removed_resources` if it does not exist;
- one response per type is outstanding at a time; what is sent is the next make-before-break step
  (`sequencing.desired`), so each ACK may unlock the next.
`system_version_info` carries the step's label (the snapshot's type version when the step is the
snapshot), which is what ACKs and NACKs are recorded under.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from envoy.service.discovery.v3 import discovery_pb2

from xds_controller import resource_types
from xds_controller.cache import ConfigWatcher
from xds_controller.callbacks import Callbacks
from xds_controller.resource_types import TypeUrl
from xds_controller.sequencing import Held, Step, desired
from xds_controller.snapshot import Snapshot, Version, serialized
from xds_controller.sotw import ProtocolError

_WILDCARD = "*"
# with on-demand clusters, the types Envoy may hold only some of (asked for by name when a request needs
# them: scoped RouteConfigurations too, `translate.on_demand`)
_ON_DEMAND_TYPES = (resource_types.CLUSTER, resource_types.ENDPOINT, resource_types.ROUTE)


@dataclass
class _TypeState:
    wildcard: bool = False
    names: set[str] = field(default_factory=set)
    seen_request: bool = False
    # name -> version the client runs (initial versions, then every ACKed send)
    client: dict[str, Version] = field(default_factory=dict)
    # names to send even when the client is thought to have them (fresh subscriptions)
    force: set[str] = field(default_factory=set)
    nonce: str = ""
    label: str = ""
    in_flight: dict[str, Held] = field(default_factory=dict)
    removing: list[str] = field(default_factory=list)
    awaiting_ack: bool = False
    # What the last response computation saw, so the next looks only at names that may differ since:
    # the step's versions (diffed against the new step's), its overridden names, and `dirty`, the names
    # whose subscription or client state changed. `full` asks for a pass over every name.
    seen_versions: Mapping[str, Version] | None = None
    seen_overrides: frozenset[str] = frozenset()
    dirty: set[str] = field(default_factory=set)
    full: bool = True
    answered: bool = False  # a response of this type was computed once on this stream


@dataclass
class DeltaStream:
    stream_id: int
    watcher: ConfigWatcher
    callbacks: Callbacks
    node_id: str = ""
    _types: dict[TypeUrl, _TypeState] = field(default_factory=dict)
    _applied: dict[TypeUrl, dict[str, Held]] = field(default_factory=dict)
    _nonces: int = 0
    # `desired` is recomputed only when the snapshot or what Envoy runs (or may run) changed, and then
    # told which routes and clusters may have changed since its last result (see `desired`).
    _changes: int = 0
    _memo: tuple[Snapshot, int, dict[TypeUrl, Step]] | None = None
    _routes_dirty: set[str] = field(default_factory=set)
    _clusters_dirty: set[str] = field(default_factory=set)
    _all_dirty: bool = True

    def handle(self, request: discovery_pb2.DeltaDiscoveryRequest) -> None:
        if not self.node_id:
            if not request.HasField("node") or not request.node.id:
                raise ProtocolError("the first request on a stream must carry node.id")
            self.node_id = str(request.node.id)
            self.watcher.stream_opened(self.node_id)
        type_url = TypeUrl(request.type_url)
        if not type_url:
            raise ProtocolError("an ADS request must carry type_url")
        self.callbacks.on_delta_request(self.stream_id, self.node_id, request)
        state = self._types.setdefault(type_url, _TypeState())
        self._subscribe(type_url, state, request)
        if request.response_nonce and request.response_nonce == state.nonce and state.awaiting_ack:
            self._acknowledge(type_url, state, request)

    def _subscribe(
        self, type_url: TypeUrl, state: _TypeState, request: discovery_pb2.DeltaDiscoveryRequest
    ) -> None:
        self._changes += 1
        subscribe = {str(name) for name in request.resource_names_subscribe}
        unsubscribe = {str(name) for name in request.resource_names_unsubscribe}
        if not state.seen_request:
            state.seen_request = True
            state.wildcard = not subscribe or _WILDCARD in subscribe
            snapshot = self.watcher.snapshot(self.node_id)
            self._all_dirty = True
            for name, version in request.initial_resource_versions.items():
                state.client[str(name)] = Version(str(version))
                if snapshot is not None and snapshot.versions_of(type_url).get(str(name)) == version:
                    links = snapshot.links.route_clusters
                    value = serialized(snapshot.get(type_url), str(name))
                    held = Held(Version(str(version)), value, links.get(str(name), frozenset()))
                    self._applied.setdefault(type_url, {})[str(name)] = held
        elif _WILDCARD in subscribe and not state.wildcard:
            state.wildcard, state.full = True, True
        if _WILDCARD in unsubscribe and state.wildcard:
            state.wildcard, state.full = False, True
        state.dirty |= subscribe | unsubscribe
        state.names |= subscribe - {_WILDCARD}
        state.names -= unsubscribe
        state.force |= subscribe - {_WILDCARD}
        state.force -= unsubscribe
        for name in unsubscribe - {_WILDCARD}:
            if not state.wildcard:
                state.client.pop(name, None)
                self._applied.get(type_url, {}).pop(name, None)
                self._mark(type_url, (name,))

    def _acknowledge(
        self, type_url: TypeUrl, state: _TypeState, request: discovery_pb2.DeltaDiscoveryRequest
    ) -> None:
        state.awaiting_ack = False
        self._changes += 1
        sent = {name: held.version for name, held in state.in_flight.items()}
        state.dirty.update(sent, state.removing)
        if request.HasField("error_detail"):
            message = str(request.error_detail.message)
            self.watcher.record_nack(self.node_id, type_url, Version(state.label), message, sent)
            self.callbacks.on_nack(self.node_id, type_url, Version(state.label), message)
        else:
            applied = self._applied.setdefault(type_url, {})
            applied.update(state.in_flight)
            state.client.update(sent)
            for name in state.removing:
                applied.pop(name, None)
                state.client.pop(name, None)
            self._mark(type_url, (*state.in_flight, *state.removing))
            self.watcher.record_ack(self.node_id, type_url, Version(state.label))
            self.callbacks.on_ack(self.node_id, type_url, Version(state.label))
        state.in_flight, state.removing = {}, []

    def close(self) -> None:
        if self.node_id:
            self.watcher.stream_closed(self.node_id)

    def _mark(self, type_url: TypeUrl, names: Iterable[str]) -> None:
        """What Envoy runs of these names changed: `desired` must look at them again."""
        if type_url == resource_types.ROUTE:
            self._routes_dirty.update(names)
        elif type_url == resource_types.CLUSTER:
            self._clusters_dirty.update(names)

    def _steps(self, snapshot: Snapshot) -> dict[TypeUrl, Step]:
        memo = self._memo
        if memo is not None and memo[0] is snapshot and memo[1] == self._changes:
            return memo[2]
        routes = self._types.get(resource_types.ROUTE)
        pending = routes.in_flight.values() if routes else ()
        if self._all_dirty or memo is None:
            steps = desired(snapshot, self._applied, pending)
        else:
            previous, last = memo[0], memo[2]
            if snapshot is not previous:
                for type_url, dirty in (
                    (resource_types.ROUTE, self._routes_dirty),
                    (resource_types.CLUSTER, self._clusters_dirty),
                ):
                    dirty.update(snapshot.changed_names(type_url, previous.versions_of(type_url)))
            steps = desired(
                snapshot,
                self._applied,
                pending,
                routes=self._routes_dirty | last[resource_types.ROUTE].overrides.keys(),
                dropped=self._clusters_dirty | last[resource_types.CLUSTER].overrides.keys(),
            )
        self._routes_dirty, self._clusters_dirty, self._all_dirty = set(), set(), False
        self._memo = (snapshot, self._changes, steps)
        return steps

    def responses(self) -> list[discovery_pb2.DeltaDiscoveryResponse]:
        snapshot = self.watcher.snapshot(self.node_id) if self.node_id else None
        if snapshot is None:
            return []
        steps = self._steps(snapshot)
        out = []
        for type_url in resource_types.PUSH_ORDER:
            state = self._types.get(type_url)
            if state is None or state.awaiting_ack:
                continue
            response = self._response(type_url, state, steps[type_url], snapshot)
            if response is not None:
                out.append(response)
        return out

    @staticmethod
    def _candidates(state: _TypeState, step: Step, snapshot: Snapshot, type_url: TypeUrl) -> set[str]:
        """Names whose send/remove decision may differ from the last computation's: every name on a full
        pass; else those the step's versions changed (a dict-view difference, in C), overridden now or
        then, or marked dirty by a subscription, ACK or NACK."""
        versions = step.versions
        if state.full or state.seen_versions is None:
            candidates = set(versions.keys() | state.client.keys())
        else:
            candidates = state.dirty | step.overrides.keys() | state.seen_overrides
            if versions is not state.seen_versions:
                candidates.update(snapshot.changed_names(type_url, state.seen_versions))
        state.seen_versions, state.seen_overrides = versions, frozenset(step.overrides)
        state.dirty, state.full = set(), False
        return candidates

    def _response(
        self, type_url: TypeUrl, state: _TypeState, step: Step, snapshot: Snapshot
    ) -> discovery_pb2.DeltaDiscoveryResponse | None:
        client, versions, overrides, force = state.client, step.versions, step.overrides, state.force
        existing = snapshot.get(type_url)
        # At 10,000 deployments a type has 40,000 names and this runs after every ACK, so it looks one by
        # one only at names that may have changed since the last computation (`_candidates`).
        candidates = self._candidates(state, step, snapshot, type_url)
        subscribed = state.names
        # Changed: what the client runs differs from the step (or it just subscribed).
        wildcard = state.wildcard
        if wildcard and type_url == resource_types.CLUSTER and snapshot.eager_clusters is not None:
            # on-demand clusters: a wildcard subscription covers only the eager ones
            eager = snapshot.eager_clusters or frozenset()
            covered = [n for n in candidates if n in subscribed or n in eager]
        else:
            covered = list(candidates)
        changed = [
            n
            for n in covered
            if n not in overrides
            and (v := versions.get(n)) is not None
            and client.get(n) != v
            and (wildcard or n in subscribed)
        ]
        # Gone: the client runs it, and it is neither in the snapshot nor kept for make-before-break.
        gone = [
            n
            for n in candidates
            if n in client
            and n not in existing
            and overrides.get(n) is None
            and (state.wildcard or n in subscribed)
        ]
        for name, held in overrides.items():
            if (
                held is not None
                and (state.wildcard or name in state.names)
                and not (name not in state.names and snapshot.on_demand(name))
                and client.get(name) != held.version
            ):
                changed.append(name)
        listed = set(changed)
        changed.extend(n for n in force if n not in listed and step.version(n) is not None)
        changed = [
            n
            for n in changed
            if not self.watcher.is_resource_rejected(
                self.node_id, type_url, n, step.version(n) or Version("")
            )
        ]
        # Absent: subscribed by name just now, and nowhere to be found.
        absent = [n for n in force if n not in existing and n not in overrides and n not in client]
        state.force = set()
        # A wildcard subscription is always answered once, even with nothing to send: Envoy's first
        # CDS (or LDS) fetch holds its initialisation until then (15 s by default) and on-demand
        # clusters may leave the first answer empty.
        # With on-demand clusters a new snapshot may change only clusters (their endpoints, or route
        # configurations) Envoy never asked for: an empty answer carries its version, which Envoy's ACK
        # then records, so the node is seen in sync with it.
        first = state.wildcard and not state.answered
        relabel = (
            snapshot.eager_clusters is not None and type_url in _ON_DEMAND_TYPES and state.label != step.label
        )
        state.answered = True
        if not changed and not gone and not absent and not first and not relabel:
            return None
        links = snapshot.links.route_clusters
        self._nonces += 1
        changed.sort()
        response = discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=step.label,
            type_url=type_url,
            nonce=f"{self.stream_id}-d{self._nonces}",
            resources=[
                discovery_pb2.Resource(name=n, version=step.version(n) or "", resource=step.resource(n))
                for n in changed
            ],
            removed_resources=sorted(gone + absent),
        )
        state.in_flight = {n: step.held(n, links) for n in changed}
        state.removing = gone
        state.nonce, state.label, state.awaiting_ack = response.nonce, step.label, True
        self._changes += 1
        return response
