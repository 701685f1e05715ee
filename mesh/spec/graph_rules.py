"""Validation of one predictor's graph: the webhook's node rules plus seldon-mesh's router checks.

Every rule yields `FieldError`s with the node's path (`spec.predictors[0].graph.children[1]...`); nothing
stops at the first problem. Called by `validation.py` for each predictor, on a defaulted spec.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

from mesh.spec.errors import FieldError
from mesh.spec.graph import PredictiveUnit, parse_parameter_value
from mesh.spec.names import label_problem
from mesh.spec.predictor import PredictorSpec
from mesh.spec.servers import PREPACKAGED_SERVERS
from mesh.spec.vocabulary import (
    BANDIT_IMPLEMENTATIONS,
    BUILTIN_IMPLEMENTATIONS,
    IMPLIED_TYPES,
    MODEL_URI_SCHEMES,
    Implementation,
    UnitType,
)

RATIO_A = "ratioA"
N_BRANCHES = "n_branches"


# Prepackaged servers that can run with no modelUri (Hugging Face loads `pretrained_model` from the hub).
MODEL_URI_OPTIONAL = frozenset({"HUGGINGFACE_SERVER"})


def check_graph(
    predictor: PredictorSpec,
    path: str,
    protocol: str | None,
    transport: str | None,
    endpoint_types: dict[str, str] | None = None,
) -> Iterator[FieldError]:
    """`protocol`/`transport` are None when unknown (their own field is already in error).
    `endpoint_types` carries the first endpoint type seen across the deployment's predictors (Seldon
    allows one per deployment), under the key "first"."""
    graph_path = f"{path}.graph"
    seen: set[str] = set()
    types = endpoint_types if endpoint_types is not None else {}
    for node, sub in predictor.graph.walk():
        node_path = graph_path + sub
        if node.name and node.name in seen:
            yield FieldError(f"{node_path}.name", f"duplicate graph node name {node.name!r}")
        seen.add(node.name)
        yield from check_node(node, node_path, predictor, protocol)
        endpoint_type = node.endpoint.type if node.endpoint is not None else None
        if endpoint_type is None:
            continue
        if transport is not None and endpoint_type.lower() != transport:
            yield FieldError(
                f"{node_path}.endpoint.type",
                f"endpoint type {endpoint_type} contradicts spec.transport {transport!r}",
            )
        elif types.get("first", endpoint_type) != endpoint_type:
            yield FieldError(
                f"{node_path}.endpoint.type",
                f"a deployment must use one endpoint type: {endpoint_type} here, {types['first']} before",
            )
        types.setdefault("first", endpoint_type)


def check_node(
    node: PredictiveUnit, path: str, predictor: PredictorSpec, protocol: str | None
) -> Iterator[FieldError]:
    if node.name:
        problem = label_problem(node.name)
        if problem:
            yield FieldError(f"{path}.name", problem)
    else:
        yield FieldError(f"{path}.name", "is required")
    yield from _check_implementation(node, path, predictor, protocol)
    if node.model_uri and not _known_uri(node.model_uri):
        scheme = urlparse(node.model_uri).scheme
        known = ", ".join(sorted(MODEL_URI_SCHEMES))
        yield FieldError(f"{path}.modelUri", f"unsupported scheme {scheme!r}: use a local path or {known}")
    yield from _check_parameters(node, path)
    yield from _check_routing(node, path)


def _check_implementation(
    node: PredictiveUnit, path: str, predictor: PredictorSpec, protocol: str | None
) -> Iterator[FieldError]:
    implementation = node.implementation
    if implementation == Implementation.UNKNOWN_IMPLEMENTATION:
        # A node whose endpoint names a host is an external server (an MLServer someone runs): no container.
        external = node.endpoint is not None and bool(node.endpoint.service_host)
        if node.name and not external and predictor.container_for(node.name) is None:
            yield FieldError(
                path,
                f"no container named {node.name!r} in componentSpecs and no prepackaged implementation",
            )
        if node.type in (None, UnitType.UNKNOWN_TYPE) and not node.methods:
            yield FieldError(f"{path}.type", "no known type or methods: set type, or list the methods")
    elif implementation in BUILTIN_IMPLEMENTATIONS:
        implied = IMPLIED_TYPES[implementation]
        if node.type not in (None, UnitType.UNKNOWN_TYPE, implied):
            yield FieldError(f"{path}.type", f"{implementation} is a {implied}, not a {node.type}")
    elif node.is_prepackaged:
        if not node.model_uri and implementation not in MODEL_URI_OPTIONAL:
            yield FieldError(f"{path}.modelUri", f"{implementation} needs a modelUri")
        server = PREPACKAGED_SERVERS[implementation]
        container = predictor.container_for(node.name)
        custom_image = container is not None and bool(container.image)
        if protocol is not None and not custom_image and not server.supports(protocol):
            spoken = ", ".join(sorted(server.protocols))
            yield FieldError(
                f"{path}.implementation",
                f"{implementation} does not support the {protocol!r} protocol (it speaks {spoken})",
            )
    else:
        known = ", ".join(sorted([*BUILTIN_IMPLEMENTATIONS, *PREPACKAGED_SERVERS]))
        yield FieldError(
            f"{path}.implementation", f"unknown implementation {implementation!r}; known: {known}"
        )


def _known_uri(uri: str) -> bool:
    scheme = urlparse(uri).scheme
    # No scheme is a local path; a one-letter scheme is a Windows drive (C:\models).
    return len(scheme) <= 1 or scheme.lower() in MODEL_URI_SCHEMES


def _check_parameters(node: PredictiveUnit, path: str) -> Iterator[FieldError]:
    names: set[str] = set()
    for index, parameter in enumerate(node.parameters):
        where = f"{path}.parameters[{index}]"
        if parameter.name in names:
            yield FieldError(f"{where}.name", f"duplicate parameter {parameter.name!r}")
        names.add(parameter.name)
        try:
            parse_parameter_value(parameter.type, parameter.value)
        except ValueError as error:
            yield FieldError(f"{where}.value", str(error))


def _check_routing(node: PredictiveUnit, path: str) -> Iterator[FieldError]:
    role = IMPLIED_TYPES.get(node.implementation, node.type)
    routes = role == UnitType.ROUTER or "ROUTE" in node.methods
    combines = role == UnitType.COMBINER or "AGGREGATE" in node.methods
    if (routes or combines) and not node.children:
        yield FieldError(f"{path}.children", f"{'a router' if routes else 'a combiner'} needs children")
    if node.implementation == Implementation.RANDOM_ABTEST:
        yield from _check_abtest(node, path)
    if node.implementation in BANDIT_IMPLEMENTATIONS:
        yield from _check_bandit(node, path)


def _parameter(node: PredictiveUnit, name: str) -> tuple[int, str, str] | None:
    for index, parameter in enumerate(node.parameters):
        if parameter.name == name:
            return index, parameter.type, parameter.value
    return None


def _check_abtest(node: PredictiveUnit, path: str) -> Iterator[FieldError]:
    if node.children and len(node.children) != 2:
        yield FieldError(
            f"{path}.children", f"RANDOM_ABTEST needs exactly 2 children, has {len(node.children)}"
        )
    found = _parameter(node, RATIO_A)
    if found is None:
        return  # the executor defaults ratioA to 0.5
    index, type_, value = found
    where = f"{path}.parameters[{index}]"
    if type_ != "FLOAT":
        yield FieldError(f"{where}.type", f"{RATIO_A} must be a FLOAT, not {type_}")
        return
    try:
        ratio = float(value)
    except ValueError:
        return  # reported by the parameter check
    if not 0.0 <= ratio <= 1.0:
        yield FieldError(f"{where}.value", f"{RATIO_A} must be between 0 and 1, got {value}")


def _check_bandit(node: PredictiveUnit, path: str) -> Iterator[FieldError]:
    found = _parameter(node, N_BRANCHES)
    if found is None:
        yield FieldError(
            f"{path}.parameters",
            f"{node.implementation} needs an INT parameter {N_BRANCHES!r} equal to the number of children",
        )
        return
    index, type_, value = found
    where = f"{path}.parameters[{index}]"
    if type_ != "INT":
        yield FieldError(f"{where}.type", f"{N_BRANCHES} must be an INT, not {type_}")
        return
    try:
        branches = int(value)
    except ValueError:
        return  # reported by the parameter check
    if branches != len(node.children):
        yield FieldError(
            f"{where}.value", f"{N_BRANCHES} is {branches} but the node has {len(node.children)} children"
        )
