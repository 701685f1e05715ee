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


def apply_defaults(deployment: SeldonDeployment) -> SeldonDeployment:
    predictors = tuple(
        predictor.model_copy(update={"graph": default_unit(predictor.graph)})
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
