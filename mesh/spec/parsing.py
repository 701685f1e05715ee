"""`parse_deployment`: a raw manifest in, a defaulted and validated `SeldonDeployment` out.

Three steps, all errors collected before raising once:
1. structure: pydantic checks types; its errors become `FieldError`s with camelCase paths;
2. defaulting (`defaults.py`);
3. the webhook rules (`validation.py`).
So that a type error does not hide the rule violations elsewhere, each value pydantic rejects is pruned
from a copy of the input (its default takes over) and the copy is parsed again; rule errors at, inside or
above a pruned field are dropped, since they could be consequences of the pruning.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from mesh.spec.defaults import apply_defaults
from mesh.spec.deployment import SeldonDeployment
from mesh.spec.errors import FieldError, SpecError, format_location, related
from mesh.spec.validation import validate
from mesh.spec.vocabulary import KIND

Location = tuple[int | str, ...]
_MAX_ROUNDS = 50
_GONE = object()


def parse_deployment(obj: Mapping[str, Any]) -> SeldonDeployment:
    """Parse, default and validate one SeldonDeployment; raise `SpecError` naming every problem."""
    if not isinstance(obj, Mapping):
        raise SpecError([FieldError("", f"expected a SeldonDeployment object, got {type(obj).__name__}")])
    raw = _without_nulls(dict(obj))
    raw.pop("status", None)  # written by the controller, never an input
    errors = [FieldError(name, "is required") for name in ("apiVersion", "kind") if name not in raw]
    if "kind" in raw and raw["kind"] != KIND:
        # Not a SeldonDeployment at all: checking it against our schema would only add noise.
        raise SpecError([FieldError("kind", f"must be {KIND}, got {raw['kind']!r}")])
    deployment, structural = _structure(raw)
    errors += structural
    if deployment is not None:
        deployment = apply_defaults(deployment)
        broken = {e.path for e in structural}
        errors += [
            e for e in validate(deployment, broken) if not any(related(e.path, path) for path in broken)
        ]
    if errors or deployment is None:
        raise SpecError(_unique(errors))
    return deployment


def _structure(raw: dict[str, Any]) -> tuple[SeldonDeployment | None, list[FieldError]]:
    """Validate the structure; on failure keep pruning the rejected values to salvage a partial model."""
    try:
        return SeldonDeployment.model_validate(raw), []
    except ValidationError as error:
        details = error.errors(include_url=False)
    reported = [FieldError(format_location(d["loc"]), _message(d)) for d in details]
    pruned = copy.deepcopy(raw)
    attempted: set[Location] = set()
    for _ in range(_MAX_ROUNDS):
        if not all(_prune(pruned, tuple(d["loc"]), attempted) for d in details):
            return None, reported
        try:
            return SeldonDeployment.model_validate(pruned), reported
        except ValidationError as error:
            details = error.errors(include_url=False)
    return None, reported


def _prune(data: dict[str, Any], loc: Location, attempted: set[Location]) -> bool:
    """Remove the value at `loc` (a list item becomes `{}`); when that was tried already, or there is
    nothing to remove, move up to the enclosing value. False when even the document root fails."""
    while loc:
        parent = _find(data, loc[:-1])
        if parent is _GONE:
            return True  # an enclosing value was pruned already in this round
        if loc not in attempted:
            attempted.add(loc)
            last = loc[-1]
            if isinstance(parent, dict) and last in parent:
                del parent[last]
                return True
            if isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
                parent[last] = {}
                return True
        loc = loc[:-1]
    return False


def _find(data: Any, loc: Location) -> Any:
    for part in loc:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if in_dict or in_list:
            data = data[part]
        else:
            return _GONE
    return data


def _message(detail: ErrorDetails) -> str:
    kind = detail["type"]
    if kind == "missing":
        return "is required"
    message = detail["msg"]
    value = detail.get("input")
    if kind == "string_type" and isinstance(value, int | float | bool):
        return f"expected a string, got {value!r}: quote it in YAML"
    if isinstance(value, str | int | float):  # bool is an int
        return f"{message}, got {value!r}"
    return message


def _without_nulls(value: Any) -> Any:
    """Kubernetes treats `field: null` as an absent field; so do we."""
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_nulls(v) for v in value]
    return value


def _unique(errors: list[FieldError]) -> list[FieldError]:
    return list(dict.fromkeys(errors))
