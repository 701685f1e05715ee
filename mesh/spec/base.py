"""The pydantic base shared by every spec model: frozen, camelCase aliases, tolerant of unknown keys.

Kubernetes objects carry fields we do not model (managedFields, creationTimestamp, ...); those are
ignored rather than rejected. Attribute names are snake_case, the wire names camelCase, and either is
accepted on input.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        protected_namespaces=(),  # `model_uri` is a Seldon field name
    )


class OpenSpecModel(SpecModel):
    """A Kubernetes object we pass through: unknown keys are kept (in `model_extra`) and dumped back."""

    model_config = ConfigDict(extra="allow")
