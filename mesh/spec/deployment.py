"""The SeldonDeployment object: identity, deployment-wide settings and its predictors.

This is the value every renderer consumes. Build one with `parse_deployment` (which defaults and
validates); constructing it directly skips both.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from mesh.spec.base import SpecModel
from mesh.spec.predictor import PredictorSpec
from mesh.spec.vocabulary import API_VERSION, KIND, ProtocolName, ServerTypeName, TransportName

DEFAULT_NAMESPACE = "default"


class Metadata(SpecModel):
    name: str = ""
    namespace: str = DEFAULT_NAMESPACE
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None

    @field_validator("namespace", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return value or DEFAULT_NAMESPACE


class DeploymentSpec(SpecModel):
    name: str | None = None
    predictors: tuple[PredictorSpec, ...] = ()
    annotations: dict[str, str] = Field(default_factory=dict)
    protocol: ProtocolName = "seldon"
    transport: TransportName | None = None
    replicas: int | None = Field(default=None, ge=0)
    server_type: ServerTypeName = "rpc"
    oauth_key: str | None = Field(default=None, alias="oauth_key")
    oauth_secret: str | None = Field(default=None, alias="oauth_secret")


class SeldonDeployment(SpecModel):
    api_version: str = API_VERSION
    kind: str = KIND
    metadata: Metadata = Field(default_factory=Metadata)
    spec: DeploymentSpec
    status: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name): how the mesh stores, routes and reports a deployment."""
        return self.metadata.namespace, self.metadata.name

    @property
    def annotations(self) -> dict[str, str]:
        """Deployment-wide annotations: metadata.annotations overlaid by spec.annotations (spec wins)."""
        return {**self.metadata.annotations, **self.spec.annotations}

    def predictor(self, name: str) -> PredictorSpec | None:
        return next((p for p in self.spec.predictors if p.name == name), None)

    def to_manifest(self) -> dict[str, Any]:
        """A camelCase, JSON-able manifest with defaults applied; `parse_deployment` gives it back."""
        manifest: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return manifest
