"""Container port defaulting: which HTTP, gRPC and metrics ports each graph node's container uses.

Seldon gives a predictor's containers ports in order (HTTP from 9000, gRPC from 9500, metrics from 6000;
reference 1.4). The Kubernetes renderer and the local supervisor need the same answer, so it is computed
here, once, from the spec alone. Ports a container or endpoint declares explicitly are kept and never
handed out twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from mesh.spec.graph import PredictiveUnit
from mesh.spec.pod import ComponentSpec, Container

FIRST_HTTP_PORT = 9000
FIRST_GRPC_PORT = 9500
FIRST_METRICS_PORT = 6000


class ContainerPorts(NamedTuple):
    http: int
    grpc: int
    metrics: int


class _Counter:
    def __init__(self, first: int, taken: set[int]) -> None:
        self._next = first
        self._taken = taken

    def take(self, explicit: int | None) -> int:
        if explicit is not None:
            return explicit
        while self._next in self._taken:
            self._next += 1
        port = self._next
        self._taken.add(port)
        self._next += 1
        return port


def assign_ports(
    component_specs: Sequence[ComponentSpec], nodes: Iterable[PredictiveUnit]
) -> dict[str, ContainerPorts]:
    """Ports by node name, for nodes with a container (in componentSpecs order) and then for
    prepackaged nodes without one (in graph order; Seldon appends their containers last)."""
    by_name = {node.name: node for node in nodes}
    containers = [c for spec in component_specs for c in spec.spec.containers if c.name in by_name]
    taken = _declared_ports(component_specs, by_name.values())
    http, grpc, metrics = (
        _Counter(first, taken) for first in (FIRST_HTTP_PORT, FIRST_GRPC_PORT, FIRST_METRICS_PORT)
    )
    ports: dict[str, ContainerPorts] = {}
    order: list[tuple[str, Container | None]] = [(c.name, c) for c in containers]
    order += [(n.name, None) for n in by_name.values() if n.is_prepackaged]
    for name, container in order:
        if name in ports:
            continue
        node = by_name[name]
        endpoint = node.endpoint
        ports[name] = ContainerPorts(
            http=http.take(_first(container, "http", endpoint.http_port if endpoint else None)),
            grpc=grpc.take(_first(container, "grpc", endpoint.grpc_port if endpoint else None)),
            metrics=metrics.take(_first(container, "metrics", None)),
        )
    return ports


def _first(container: Container | None, port_name: str, fallback: int | None) -> int | None:
    declared = container.port_named(port_name) if container else None
    return declared if declared is not None else fallback


def _declared_ports(component_specs: Sequence[ComponentSpec], nodes: Iterable[PredictiveUnit]) -> set[int]:
    taken = {p.container_port for spec in component_specs for c in spec.spec.containers for p in c.ports}
    for node in nodes:
        if node.endpoint is not None:
            taken |= {p for p in (node.endpoint.http_port, node.endpoint.grpc_port) if p}
    return taken
