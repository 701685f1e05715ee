"""`componentSpecs`: the Kubernetes pods that hold a predictor's user containers.

Only the parts seldon-mesh reads are typed (container name, image, command, env, ports, ...); every
other pod or container field is kept verbatim in `model_extra` so the Kubernetes renderer can pass it on.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mesh.spec.base import OpenSpecModel, SpecModel


class EnvVar(OpenSpecModel):
    name: str
    value: str | None = None
    value_from: dict[str, Any] | None = None


class ContainerPort(OpenSpecModel):
    container_port: int = Field(ge=1, le=65535)
    name: str | None = None
    protocol: str | None = None


class Container(OpenSpecModel):
    name: str
    image: str | None = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    working_dir: str | None = None
    ports: tuple[ContainerPort, ...] = ()
    resources: dict[str, Any] | None = None

    def env_dict(self) -> dict[str, str]:
        """Literal env values by name (`valueFrom` entries, resolved only in a cluster, are left out)."""
        return {e.name: e.value or "" for e in self.env if e.value_from is None}

    def port_named(self, name: str) -> int | None:
        return next((p.container_port for p in self.ports if p.name == name), None)


class PodSpec(OpenSpecModel):
    """A Kubernetes PodSpec: `containers` typed, the rest (volumes, nodeSelector, ...) in `model_extra`."""

    containers: tuple[Container, ...] = ()

    def rest(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ComponentSpec(SpecModel):
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: PodSpec = Field(default_factory=PodSpec)
    hpa_spec: dict[str, Any] | None = None
    replicas: int | None = Field(default=None, ge=0)
    keda_spec: dict[str, Any] | None = None
    pdb_spec: dict[str, Any] | None = None
