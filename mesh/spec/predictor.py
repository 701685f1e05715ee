"""`spec.predictors[]`: one inference graph, its pods and its share of the traffic.

Predictors are what Envoy splits traffic between (canary, A/B) or mirrors to (shadows); each is served
and rendered independently. Lookups that every renderer needs (a node's container, its ports) are here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field

from mesh.spec.base import SpecModel
from mesh.spec.graph import PredictiveUnit
from mesh.spec.pod import ComponentSpec, Container
from mesh.spec.ports import ContainerPorts, assign_ports


class PredictorSpec(SpecModel):
    name: str = ""
    graph: PredictiveUnit
    component_specs: tuple[ComponentSpec, ...] = ()
    replicas: int | None = Field(default=None, ge=0)
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    traffic: int = Field(default=0, ge=0, le=100)
    shadow: bool = False
    explainer: dict[str, Any] | None = None
    svc_orch_spec: dict[str, Any] | None = None
    engine_resources: dict[str, Any] | None = None
    ssl: dict[str, Any] | None = None
    progress_deadline_seconds: int | None = Field(default=None, ge=0)

    def nodes(self) -> Iterator[PredictiveUnit]:
        """Every graph node, pre-order (the root first)."""
        return self.graph.nodes()

    def node(self, name: str) -> PredictiveUnit | None:
        return next((n for n in self.nodes() if n.name == name), None)

    def container_for(self, node_name: str) -> Container | None:
        for component in self.component_specs:
            for container in component.spec.containers:
                if container.name == node_name:
                    return container
        return None

    def ports_for(self, node_name: str) -> ContainerPorts | None:
        """The defaulted container ports of a node; None for nodes that run no container (built-ins)."""
        return assign_ports(self.component_specs, self.nodes()).get(node_name)

    @property
    def version(self) -> str:
        """`annotations["version"]`, the `predictor_version` metrics label."""
        return self.annotations.get("version", "")
