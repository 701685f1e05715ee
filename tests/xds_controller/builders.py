"""Small SeldonDeployment stand-ins with the shape `xds_controller.translate` reads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Unit:
    name: str
    children: tuple[Unit, ...] = ()
    logger: object | None = None  # a payload logger (`mesh.spec.Logger`); only its presence matters

    def nodes(self) -> Iterator[Unit]:
        yield self
        for child in self.children:
            yield from child.nodes()


@dataclass(frozen=True)
class Predictor:
    name: str
    graph: Unit
    traffic: int = 0
    shadow: bool = False

    def nodes(self) -> Iterator[Unit]:
        return self.graph.nodes()


@dataclass(frozen=True)
class Meta:
    name: str
    namespace: str = "default"


@dataclass(frozen=True)
class Spec:
    predictors: tuple[Predictor, ...]


@dataclass(frozen=True)
class Deployment:
    metadata: Meta
    spec: Spec
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class V2Deployment:
    """A deployment whose spec says `protocol` (e.g. v2): any spec with `predictors` and `protocol`."""

    metadata: Meta
    spec: object
    annotations: dict[str, str] = field(default_factory=dict)


def deployment(
    name: str, *predictors: Predictor, namespace: str = "default", **annotations: str
) -> Deployment:
    return Deployment(Meta(name, namespace), Spec(tuple(predictors)), dict(annotations))


def single(
    name: str = "iris", namespace: str = "default", predictor: str = "default", node: str = "model"
) -> Deployment:
    return deployment(name, Predictor(predictor, Unit(node), traffic=100), namespace=namespace)
