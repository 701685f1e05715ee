"""Defaulting, as Seldon's mutating webhook does it (reference 1.4), plus seldon-mesh's traffic rule.

Runs on a structurally valid SeldonDeployment before validation, so the rules see what will be served:
node types implied by their implementation, and 100% traffic for a lone non-shadow predictor (so no
renderer special-cases "traffic 0 means all of it"). Port defaulting is computed on demand by `ports.py`.
Pure and idempotent: defaulting a defaulted deployment changes nothing.
"""

from __future__ import annotations

from mesh.spec.deployment import SeldonDeployment
from mesh.spec.graph import PredictiveUnit
from mesh.spec.predictor import PredictorSpec
from mesh.spec.vocabulary import IMPLIED_TYPES, Implementation, UnitType

# Seldon's multi-armed bandit router images, served by seldon-mesh's built-in routers with the same
# parameters (n_branches, epsilon, seed; branch_names and verbose are accepted and unused) and feedback.
MAB_IMAGES = {
    "seldonio/mab_epsilon_greedy": Implementation.EPSILON_GREEDY,
    "seldonio/mab_thompson_sampling": Implementation.THOMPSON_SAMPLING,
}


def apply_defaults(deployment: SeldonDeployment) -> SeldonDeployment:
    predictors = tuple(
        (mapped := _builtin_mab_routers(predictor)).model_copy(update={"graph": default_unit(mapped.graph)})
        for predictor in deployment.spec.predictors
    )
    predictors = _default_traffic(predictors)
    spec = deployment.spec.model_copy(update={"predictors": predictors})
    return deployment.model_copy(update={"spec": spec})


def default_unit(unit: PredictiveUnit) -> PredictiveUnit:
    implementation = unit.implementation or Implementation.UNKNOWN_IMPLEMENTATION.value
    unit_type = unit.type
    if unit.is_prepackaged:
        unit_type = UnitType.MODEL
    elif unit_type is None and implementation in IMPLIED_TYPES:
        unit_type = IMPLIED_TYPES[implementation]
    elif unit_type is None and not unit.methods and implementation == Implementation.UNKNOWN_IMPLEMENTATION:
        unit_type = UnitType.MODEL
    children = tuple(default_unit(child) for child in unit.children)
    return unit.model_copy(update={"implementation": implementation, "type": unit_type, "children": children})


def _default_traffic(predictors: tuple[PredictorSpec, ...]) -> tuple[PredictorSpec, ...]:
    main = [p for p in predictors if not p.shadow]
    # The one non-shadow predictor takes all traffic: when it says 0, or when shadows stand beside it
    # (Seldon accepts any value there); a lone predictor's 1..99 is left for validation to refuse.
    if len(main) != 1 or main[0].traffic == 100 or (main[0].traffic != 0 and len(predictors) == 1):
        return predictors
    return tuple(p.model_copy(update={"traffic": 100}) if p is main[0] else p for p in predictors)


def mab_implementation(image: str | None) -> Implementation | None:
    """The built-in router for one of Seldon's MAB router images (any registry and tag), else None."""
    if not image:
        return None
    head, _, last = image.split("@", 1)[0].rpartition("/")
    parts = [*head.split("/"), last.split(":", 1)[0]] if head else [last.split(":", 1)[0]]
    return MAB_IMAGES.get("/".join(parts[-2:]))


def _builtin_mab_routers(predictor: PredictorSpec) -> PredictorSpec:
    """A node running a Seldon MAB router image becomes the built-in router; its container goes, and a
    componentSpec left with no container goes with it."""
    mapped: dict[str, Implementation] = {}
    for node in predictor.nodes():
        container = predictor.container_for(node.name)
        found = mab_implementation(container.image if container is not None else None)
        if found is not None and node.implementation == Implementation.UNKNOWN_IMPLEMENTATION:
            mapped[node.name] = found
    if not mapped:
        return predictor
    specs = []
    for component in predictor.component_specs:
        kept = tuple(c for c in component.spec.containers if c.name not in mapped)
        if not kept and component.spec.containers:
            continue
        specs.append(
            component.model_copy(update={"spec": component.spec.model_copy(update={"containers": kept})})
        )
    graph = _with_implementations(predictor.graph, mapped)
    return predictor.model_copy(update={"graph": graph, "component_specs": tuple(specs)})


def _with_implementations(unit: PredictiveUnit, mapped: dict[str, Implementation]) -> PredictiveUnit:
    children = tuple(_with_implementations(child, mapped) for child in unit.children)
    update: dict[str, object] = {"children": children}
    if unit.name in mapped:
        update |= {"implementation": mapped[unit.name].value, "type": UnitType.ROUTER}
    return unit.model_copy(update=update)
