"""Fields a manifest sets that no SeldonDeployment version defines: warned about by path, as `kubectl apply`
warns ("unknown field spec.predictors[0].grahp"), and otherwise ignored (the API server prunes them).

Walks the raw manifest beside the spec model: a key that is neither a field's camelCase alias nor its
Python name is unknown. Kubernetes objects we pass through (containers, pod specs: `OpenSpecModel`) and
free-form maps (`hpaSpec`, `annotations`, ...) are not looked into.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from mesh.spec.annotations import annotation_warnings
from mesh.spec.base import OpenSpecModel
from mesh.spec.deployment import SeldonDeployment
from mesh.spec.errors import FieldError, join_path

# Metadata is Kubernetes' ObjectMeta: only some of it is modelled, all of it is legal.
_OPEN_PATHS = frozenset({"metadata"})


def unknown_fields(manifest: Mapping[str, Any]) -> list[FieldError]:
    """Every unknown field of a SeldonDeployment manifest, with its path."""
    return list(_walk(SeldonDeployment, manifest, ""))


def deployment_warnings(deployment: SeldonDeployment) -> list[FieldError]:
    """What a parsed deployment asks that changes nothing: `seldon.io/*` annotations with no effect here,
    or that nothing reads."""
    found = [
        *annotation_warnings(deployment.metadata.annotations, "metadata.annotations"),
        *annotation_warnings(deployment.spec.annotations, "spec.annotations"),
    ]
    for index, predictor in enumerate(deployment.spec.predictors):
        found += annotation_warnings(predictor.annotations, f"spec.predictors[{index}].annotations")
    return found


def _walk(model: type[BaseModel], raw: Mapping[str, Any], path: str) -> Iterator[FieldError]:
    if issubclass(model, OpenSpecModel) or path in _OPEN_PATHS:
        return
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        fields[name] = info.annotation
        if info.alias:
            fields[info.alias] = info.annotation
        alias_generator = model.model_config.get("alias_generator")
        if callable(alias_generator):
            fields[alias_generator(name)] = info.annotation
    for key, value in raw.items():
        where = join_path(path, str(key)) if path else str(key)
        if key not in fields:
            yield FieldError(where, "unknown field, ignored")
            continue
        yield from _value(fields[key], value, where)


def _value(annotation: Any, value: Any, path: str) -> Iterator[FieldError]:
    for candidate in _models(annotation):
        if isinstance(value, Mapping):
            yield from _walk(candidate, value, path)
            return
    item = _item_model(annotation)
    if item is not None and isinstance(value, list):
        for index, element in enumerate(value):
            if isinstance(element, Mapping):
                yield from _walk(item, element, f"{path}[{index}]")


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The model classes an annotation may hold directly (`X`, `X | None`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return []


def _item_model(annotation: Any) -> type[BaseModel] | None:
    """The model class of a sequence field's items (`tuple[X, ...]`, `list[X]`)."""
    if get_origin(annotation) in (tuple, list):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return args[0]
    return None
