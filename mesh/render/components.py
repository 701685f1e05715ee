"""Which pods a predictor runs: its `componentSpecs` merged with its graph, as Seldon lays them out.

Each componentSpec becomes one Deployment holding its containers; a graph node finds its container there
by name. A prepackaged node with no container of its own is given one: in the first componentSpec that
lists no containers (so its hpaSpec, pdbSpec and pod fields apply to it), else in a Deployment of its own,
numbered after the componentSpecs (Seldon appends such containers last). Built-in nodes (routers,
combiners, stub models) and external servers (`endpoint.service_host`) run no container here. The
predictor's entry, the pods its Service selects, is its lone node's pod, or extproc when it needs one.
Every other render module asks this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.render import names
from mesh.spec import (
    ComponentSpec,
    Container,
    ContainerPorts,
    PredictiveUnit,
    PredictorSpec,
    SeldonDeployment,
)
from mesh.spec.extproc_config import needs_extproc
from mesh.spec.ports import assign_ports


@dataclass(frozen=True)
class NodeContainer:
    """A graph node run by a container: the user's (`container`, possibly None for a prepackaged node),
    on its defaulted ports."""

    node: PredictiveUnit
    container: Container | None
    ports: ContainerPorts

    @property
    def name(self) -> str:
        return self.node.name


@dataclass(frozen=True)
class Component:
    """One Deployment of a predictor: `spec` is its componentSpec (None for a prepackaged node's own)."""

    predictor: PredictorSpec
    index: int
    name: str
    spec: ComponentSpec | None
    nodes: tuple[NodeContainer, ...]
    sidecars: tuple[Container, ...]  # containers of the componentSpec that are no graph node

    @property
    def container_names(self) -> list[str]:
        return [n.name for n in self.nodes] + [c.name for c in self.sidecars]


def components(deployment: SeldonDeployment, predictor: PredictorSpec) -> list[Component]:
    """The predictor's Deployments in order: its componentSpecs, then prepackaged nodes' own."""
    ports = assign_ports(predictor.component_specs, predictor.nodes())
    graph = {node.name: node for node in predictor.nodes()}
    orphans = [
        node for node in graph.values() if node.is_prepackaged and predictor.container_for(node.name) is None
    ]
    empty = next((i for i, c in enumerate(predictor.component_specs) if not c.spec.containers), None)
    out: list[Component] = []
    placed: set[str] = set()  # a node runs in the first componentSpec naming it (as container_for says)
    for index, spec in enumerate(predictor.component_specs):
        mine = [c for c in spec.spec.containers if c.name in graph and c.name not in placed]
        placed |= {c.name for c in mine}
        nodes = [NodeContainer(graph[c.name], c, ports[c.name]) for c in mine]
        if index == empty:
            nodes += [NodeContainer(node, None, ports[node.name]) for node in orphans]
        sidecars = tuple(c for c in spec.spec.containers if not any(c is m for m in mine))
        if nodes or sidecars:
            out.append(_component(deployment, predictor, index, spec, tuple(nodes), sidecars))
    if empty is None:
        first = len(predictor.component_specs)
        for offset, node in enumerate(orphans):
            nodes_ = (NodeContainer(node, None, ports[node.name]),)
            out.append(_component(deployment, predictor, first + offset, None, nodes_, ()))
    return out


def _component(
    deployment: SeldonDeployment,
    predictor: PredictorSpec,
    index: int,
    spec: ComponentSpec | None,
    nodes: tuple[NodeContainer, ...],
    sidecars: tuple[Container, ...],
) -> Component:
    containers = [n.name for n in nodes] + [c.name for c in sidecars]
    name = names.component_deployment(deployment, predictor, index, containers)
    return Component(predictor, index, name, spec, nodes, sidecars)


def entry_component(deployment: SeldonDeployment, predictor: PredictorSpec) -> Component | None:
    """The Deployment whose pods the predictor's Service selects; None when extproc is the entry (or the
    lone node is an external server, which runs no pod here)."""
    if needs_extproc(predictor):
        return None
    node = predictor.graph.name
    return next((c for c in components(deployment, predictor) if any(n.name == node for n in c.nodes)), None)


def gateway_facing(deployment: SeldonDeployment, predictor: PredictorSpec, node: NodeContainer) -> bool:
    """The gateway routes the predictor straight to this node (no extproc in between)."""
    return not needs_extproc(predictor) and node.name == predictor.graph.name
