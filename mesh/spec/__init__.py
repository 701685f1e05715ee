"""SeldonDeployment specs: parse, default and validate manifests into immutable models.

The one place a SeldonDeployment (machinelearning.seldon.io v1, v1alpha2, v1alpha3) is understood; every
renderer (xds_controller, mesh.local, mesh.operator) consumes the `SeldonDeployment` this returns.
Imports nothing of seldon-mesh. Entry points: `parse_deployment` (one object), `parse_documents`
(YAML/JSON text), `load_path` (a file or a folder); all raise `SpecError` naming every bad field.
"""

from mesh.spec.annotations import is_set as annotation_is_set
from mesh.spec.deployment import DeploymentSpec, Metadata, SeldonDeployment
from mesh.spec.errors import FieldError, SpecError
from mesh.spec.graph import Endpoint, Logger, Parameter, ParameterValue, PredictiveUnit, parse_bool
from mesh.spec.loading import Loaded, Skipped, load_path, parse_documents, read_documents, read_path
from mesh.spec.parsing import parse_deployment
from mesh.spec.pod import ComponentSpec, Container, ContainerPort, EnvVar, PodSpec
from mesh.spec.ports import ContainerPorts
from mesh.spec.predictor import PredictorSpec
from mesh.spec.secrets import SecretDocument
from mesh.spec.servers import PREPACKAGED_SERVERS, ServerInfo, canonical_protocol
from mesh.spec.vocabulary import (
    API_VERSIONS,
    BUILTIN_IMPLEMENTATIONS,
    KIND,
    Implementation,
    ProtocolName,
    TransportName,
    UnitType,
)

__all__ = [
    "API_VERSIONS",
    "BUILTIN_IMPLEMENTATIONS",
    "KIND",
    "PREPACKAGED_SERVERS",
    "ComponentSpec",
    "Container",
    "ContainerPort",
    "ContainerPorts",
    "DeploymentSpec",
    "Endpoint",
    "EnvVar",
    "FieldError",
    "Implementation",
    "Loaded",
    "Logger",
    "Metadata",
    "Parameter",
    "ParameterValue",
    "PodSpec",
    "PredictiveUnit",
    "PredictorSpec",
    "ProtocolName",
    "SecretDocument",
    "SeldonDeployment",
    "ServerInfo",
    "Skipped",
    "SpecError",
    "TransportName",
    "UnitType",
    "annotation_is_set",
    "canonical_protocol",
    "load_path",
    "parse_bool",
    "parse_deployment",
    "parse_documents",
    "read_documents",
    "read_path",
]
