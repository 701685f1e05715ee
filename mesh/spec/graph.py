"""The inference graph: `PredictiveUnit` nodes with their parameters, endpoint and logger.

The graph is what extproc executes and what renderers turn into runtimes; this module holds only the
shape and the small questions a consumer asks of a node (is it prepackaged? its typed parameters?).
Defaulting lives in `defaults.py`, the rules in `graph_rules.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from mesh.spec.base import SpecModel
from mesh.spec.servers import PREPACKAGED_SERVERS
from mesh.spec.vocabulary import (
    BUILTIN_IMPLEMENTATIONS,
    EndpointTypeName,
    Implementation,
    LoggerMode,
    MethodName,
    ParameterTypeName,
    UnitType,
)

_TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})
_FALSE = frozenset({"n", "no", "f", "false", "off", "0"})

ParameterValue = int | float | str | bool


def parse_bool(value: str) -> bool:
    """strtobool semantics, case-insensitive; raises ValueError for anything else."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (use true/false, yes/no, on/off or 1/0)")


def parse_parameter_value(type_: str, value: str) -> ParameterValue:
    """A parameter's string value as its declared type; raises ValueError when it does not parse."""
    if type_ == "INT":
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an INT") from None
    if type_ in ("FLOAT", "DOUBLE"):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a {type_}") from None
    if type_ == "BOOL":
        return parse_bool(value)
    return value


class Parameter(SpecModel):
    name: str
    value: str
    type: ParameterTypeName

    def typed_value(self) -> ParameterValue:
        return parse_parameter_value(self.type, self.value)


class Endpoint(SpecModel):
    service_host: str | None = Field(default=None, alias="service_host")
    service_port: int | None = Field(default=None, alias="service_port", ge=0, le=65535)
    type: EndpointTypeName | None = None
    http_port: int | None = Field(default=None, ge=0, le=65535)
    grpc_port: int | None = Field(default=None, ge=0, le=65535)


class Logger(SpecModel):
    url: str | None = None
    mode: LoggerMode


class PredictiveUnit(SpecModel):
    name: str = ""
    type: UnitType | None = None
    implementation: str = Implementation.UNKNOWN_IMPLEMENTATION.value
    methods: tuple[MethodName, ...] = ()
    children: tuple[PredictiveUnit, ...] = ()
    endpoint: Endpoint | None = None
    parameters: tuple[Parameter, ...] = ()
    model_uri: str | None = None
    service_account_name: str | None = None
    env_secret_ref_name: str | None = None
    storage_initializer_image: str | None = None
    logger: Logger | None = None

    @property
    def is_prepackaged(self) -> bool:
        return self.implementation in PREPACKAGED_SERVERS

    @property
    def is_builtin(self) -> bool:
        """Served by seldon-mesh itself (a router, combiner or stub model): no container, no process."""
        return self.implementation in BUILTIN_IMPLEMENTATIONS

    def typed_parameters(self) -> dict[str, ParameterValue]:
        return {p.name: p.typed_value() for p in self.parameters}

    def walk(self, path: str = "") -> Iterator[tuple[PredictiveUnit, str]]:
        """Pre-order: this node and every descendant, each with its field path below `path`."""
        yield self, path
        for index, child in enumerate(self.children):
            yield from child.walk(f"{path}.children[{index}]")

    def nodes(self) -> Iterator[PredictiveUnit]:
        for node, _ in self.walk():
            yield node
