"""The fixed words of a SeldonDeployment: node types, built-in implementations, methods, protocols.

One place for the enumerations that the models, the defaulting and the validation share, so nobody
spells `"RANDOM_ABTEST"` or `"kfserving"` inline. Prepackaged servers live next door in `servers.py`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

API_GROUP = "machinelearning.seldon.io"
API_VERSIONS = (f"{API_GROUP}/v1", f"{API_GROUP}/v1alpha2", f"{API_GROUP}/v1alpha3")
API_VERSION = API_VERSIONS[0]
KIND = "SeldonDeployment"


class UnitType(StrEnum):
    """`graph.type`: what the executor calls on a node (reference 1.5)."""

    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    ROUTER = "ROUTER"
    COMBINER = "COMBINER"
    MODEL = "MODEL"
    TRANSFORMER = "TRANSFORMER"
    OUTPUT_TRANSFORMER = "OUTPUT_TRANSFORMER"


class Implementation(StrEnum):
    """Implementations served without a container. Any other name is a prepackaged server."""

    UNKNOWN_IMPLEMENTATION = "UNKNOWN_IMPLEMENTATION"
    SIMPLE_MODEL = "SIMPLE_MODEL"
    SIMPLE_ROUTER = "SIMPLE_ROUTER"
    RANDOM_ABTEST = "RANDOM_ABTEST"
    AVERAGE_COMBINER = "AVERAGE_COMBINER"
    # seldon-mesh additions: bandit routers run by the graph executor.
    EPSILON_GREEDY = "EPSILON_GREEDY"
    THOMPSON_SAMPLING = "THOMPSON_SAMPLING"


# Built-ins that run inside seldon-mesh (UNKNOWN_IMPLEMENTATION means "the user's container").
BUILTIN_IMPLEMENTATIONS: frozenset[str] = frozenset(Implementation) - {Implementation.UNKNOWN_IMPLEMENTATION}

# The node type each built-in implies; an explicit different type is an error.
IMPLIED_TYPES: dict[str, UnitType] = {
    Implementation.SIMPLE_MODEL: UnitType.MODEL,
    Implementation.SIMPLE_ROUTER: UnitType.ROUTER,
    Implementation.RANDOM_ABTEST: UnitType.ROUTER,
    Implementation.EPSILON_GREEDY: UnitType.ROUTER,
    Implementation.THOMPSON_SAMPLING: UnitType.ROUTER,
    Implementation.AVERAGE_COMBINER: UnitType.COMBINER,
}

BANDIT_IMPLEMENTATIONS = frozenset({Implementation.EPSILON_GREEDY, Implementation.THOMPSON_SAMPLING})

MethodName = Literal["TRANSFORM_INPUT", "TRANSFORM_OUTPUT", "ROUTE", "AGGREGATE", "SEND_FEEDBACK"]
ProtocolName = Literal["seldon", "tensorflow", "kfserving", "v2"]
TransportName = Literal["rest", "grpc"]
ServerTypeName = Literal["rpc", "kafka"]
EndpointTypeName = Literal["REST", "GRPC"]
LoggerMode = Literal["all", "request", "response"]
ParameterTypeName = Literal["INT", "FLOAT", "DOUBLE", "STRING", "BOOL"]

PROTOCOLS: tuple[ProtocolName, ...] = get_args(ProtocolName)

# `predictors[].explainer.type` values (reference 1.3).
EXPLAINER_TYPES = (
    "AnchorTabular",
    "AnchorImages",
    "AnchorText",
    "Counterfactuals",
    "Contrastive",
    "KernelShap",
    "IntegratedGradients",
    "ALE",
    "TreeShap",
)

# Env vars a Kafka deployment needs in svcOrchSpec.env (reference 1.2).
KAFKA_ENV = ("KAFKA_BROKER", "KAFKA_INPUT_TOPIC", "KAFKA_OUTPUT_TOPIC")

# Schemes a modelUri may use; no scheme means a local path.
# pvc://<claim>/<folder> is a PersistentVolumeClaim, mounted in a cluster (a local runtime cannot read it).
MODEL_URI_SCHEMES = frozenset({"file", "http", "https", "gs", "s3", "pvc"})
