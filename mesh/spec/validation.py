"""Validation: the admission webhook's rules (reference 1.4) and seldon-mesh's own, all at once.

`validate` takes a defaulted deployment and returns every `FieldError`; it never raises and never stops
at the first problem. Graph rules are in `graph_rules.py`, annotation rules in `annotations.py`.
`broken` names fields that already failed to parse, so rules that depend on them stay quiet instead of
reporting a consequence of the default that replaced them.
"""

from __future__ import annotations

from collections.abc import Iterator, Set
from typing import Any

from mesh.spec.annotations import NO_ENGINE, SVC_NAME, check_annotations, is_set
from mesh.spec.deployment import SeldonDeployment
from mesh.spec.errors import FieldError, map_key
from mesh.spec.graph_rules import check_graph
from mesh.spec.names import MAX_LABEL_LENGTH, MAX_NAME_LENGTH, label_problem
from mesh.spec.predictor import PredictorSpec
from mesh.spec.vocabulary import API_VERSIONS, EXPLAINER_TYPES, KAFKA_ENV, KIND


def validate(deployment: SeldonDeployment, broken: Set[str] = frozenset()) -> list[FieldError]:
    return list(_deployment_errors(deployment, broken))


def _deployment_errors(deployment: SeldonDeployment, broken: Set[str]) -> Iterator[FieldError]:
    if deployment.api_version not in API_VERSIONS:
        yield FieldError(
            "apiVersion", f"must be one of {', '.join(API_VERSIONS)}, got {deployment.api_version!r}"
        )
    if deployment.kind != KIND:
        yield FieldError("kind", f"must be {KIND}, got {deployment.kind!r}")
    metadata = deployment.metadata
    for field, value, longest in (
        ("name", metadata.name, MAX_NAME_LENGTH),
        ("namespace", metadata.namespace, MAX_LABEL_LENGTH),
    ):
        problem = label_problem(value, longest)
        if problem:
            yield FieldError(f"metadata.{field}", problem)
    yield from check_annotations(metadata.annotations, "metadata.annotations")
    spec = deployment.spec
    yield from check_annotations(spec.annotations, "spec.annotations")
    if not spec.predictors:
        yield FieldError("spec.predictors", "at least one predictor is required")
        return
    protocol = None if "spec.protocol" in broken else spec.protocol
    transport = None if "spec.transport" in broken else spec.transport
    names: set[str] = set()
    services: set[str] = set()
    endpoint_types: dict[str, str] = {}
    for index, predictor in enumerate(spec.predictors):
        path = f"spec.predictors[{index}]"
        yield from _predictor_identity(predictor, path, names, services)
        yield from check_graph(predictor, path, protocol, transport, endpoint_types)
        yield from _containers(predictor, path)
        yield from _explainer(predictor, path)
        if spec.server_type == "kafka" and "spec.serverType" not in broken:
            yield from _kafka_env(predictor, path)
    yield from _traffic(spec.predictors)


def _predictor_identity(
    predictor: PredictorSpec, path: str, names: set[str], services: set[str]
) -> Iterator[FieldError]:
    problem = label_problem(predictor.name, MAX_NAME_LENGTH)
    if problem:
        yield FieldError(f"{path}.name", problem)
    elif predictor.name in names:
        yield FieldError(f"{path}.name", f"duplicate predictor name {predictor.name!r}")
    names.add(predictor.name)
    annotations_path = f"{path}.annotations"
    yield from check_annotations(predictor.annotations, annotations_path)
    service = predictor.annotations.get(SVC_NAME)
    if service is not None:
        where = annotations_path + map_key(SVC_NAME)
        problem = label_problem(service)
        if problem:
            yield FieldError(where, problem)
        elif service in services:
            yield FieldError(where, f"duplicate service name {service!r}")
        services.add(service)
    if is_set(predictor.annotations, NO_ENGINE) and sum(1 for _ in predictor.nodes()) > 1:
        yield FieldError(annotations_path + map_key(NO_ENGINE), "only valid for a graph with a single node")


def _containers(predictor: PredictorSpec, path: str) -> Iterator[FieldError]:
    """Container names are unique within a componentSpec (Kubernetes: within a pod). The same name in
    two componentSpecs is allowed, as Seldon allows it: a graph node runs in the first."""
    for c_index, component in enumerate(predictor.component_specs):
        seen: dict[str, str] = {}
        for k_index, container in enumerate(component.spec.containers):
            where = f"{path}.componentSpecs[{c_index}].spec.containers[{k_index}]"
            problem = label_problem(container.name)
            if problem:
                yield FieldError(f"{where}.name", problem)
            elif container.name in seen:
                message = f"duplicate container name {container.name!r} (also {seen[container.name]})"
                yield FieldError(f"{where}.name", message)
            seen.setdefault(container.name, where)


def _explainer(predictor: PredictorSpec, path: str) -> Iterator[FieldError]:
    explainer_type = (predictor.explainer or {}).get("type")
    if explainer_type is not None and explainer_type not in EXPLAINER_TYPES:
        known = ", ".join(EXPLAINER_TYPES)
        yield FieldError(f"{path}.explainer.type", f"unknown explainer {explainer_type!r}; known: {known}")


def _kafka_env(predictor: PredictorSpec, path: str) -> Iterator[FieldError]:
    orchestrator: dict[str, Any] = predictor.svc_orch_spec or {}
    env = orchestrator.get("env")
    present = {e.get("name") for e in env if isinstance(e, dict)} if isinstance(env, list) else set()
    missing = [name for name in KAFKA_ENV if name not in present]
    if missing:
        yield FieldError(f"{path}.svcOrchSpec.env", f"serverType kafka needs {', '.join(missing)}")


def _traffic(predictors: tuple[PredictorSpec, ...]) -> Iterator[FieldError]:
    main = [(i, p) for i, p in enumerate(predictors) if not p.shadow]
    if not main:
        where = "spec.predictors[0].shadow" if len(predictors) == 1 else "spec.predictors"
        yield FieldError(where, "a shadow needs a predictor that is not a shadow")
    elif len(main) == 1:
        index, predictor = main[0]
        # Seldon refuses 1..99 only on a lone predictor; next to shadows the main one takes all traffic.
        if len(predictors) == 1 and predictor.traffic not in (0, 100):
            yield FieldError(
                f"spec.predictors[{index}].traffic",
                f"the only predictor takes all traffic: use 100 or leave it out, not {predictor.traffic}",
            )
    else:
        total = sum(p.traffic for _, p in main)
        if total != 100:
            shares = ", ".join(f"{p.name or i}={p.traffic}" for i, p in main)
            yield FieldError(
                "spec.predictors", f"traffic of non-shadow predictors must sum to 100, got {total} ({shares})"
            )
