"""The SeldonDeployment CustomResourceDefinition, generated from the spec model (`mesh.spec`).

The API server validates and prunes SeldonDeployments with this schema before our webhook sees them, so it
must say what `parse_deployment` reads, no more and no less: one source, the pydantic models, turned into a
structural OpenAPI v3 schema (no `$ref`, every node typed, `x-kubernetes-preserve-unknown-fields` where a
model keeps fields it does not type, such as the PodSpec beside its containers). The graph is recursive;
its nodes are typed `GRAPH_DEPTH` levels down and kept whole below (the webhook still checks them), which
keeps the CRD far under the 262,144 bytes `kubectl apply` can annotate. The same schema serves v1 (stored),
v1alpha2 and v1alpha3: Seldon's three versions differ in nothing the model reads, so no conversion.

`python -m mesh.render.crd` prints it (`make crd` writes charts/seldon-mesh/crds/seldondeployments.yaml).
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import yaml

from mesh.spec import SeldonDeployment
from mesh.spec.vocabulary import API_GROUP, KIND

Schema = dict[str, Any]

PLURAL = "seldondeployments"
SINGULAR = "seldondeployment"
SHORT_NAMES = ("sdep",)
STORAGE_VERSION = "v1"
VERSIONS = ("v1", "v1alpha2", "v1alpha3")
CRD_NAME = f"{PLURAL}.{API_GROUP}"
# Graph levels typed in the schema (the root is level 1); Seldon's deepest examples nest four.
GRAPH_DEPTH = 8
# JSON-schema keywords a CRD schema may carry; pydantic's `title` and `default` are dropped on purpose
# (a schema default would be written into every stored object, and the defaulting is ours to do).
_KEPT = ("type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "required", "format")
_PRESERVE = "x-kubernetes-preserve-unknown-fields"

# What the operator writes into `status` (typed for the printer columns and the scale subresource; the
# rest is kept, so a newer operator's fields survive an older CRD).
_STATUS: Schema = {
    "type": "object",
    _PRESERVE: True,
    "properties": {
        "state": {"type": "string", "description": "Creating, Available or Failed (derived from Ready)"},
        "description": {"type": "string"},
        "replicas": {"type": "integer", "description": "ready replicas, for the scale subresource"},
        "selector": {"type": "string", "description": "label selector of the pods, for the HPA"},
        "observedGeneration": {"type": "integer"},
        "address": {"type": "object", _PRESERVE: True},
        "conditions": {
            "type": "array",
            "items": {
                "type": "object",
                _PRESERVE: True,
                "required": ["type", "status"],
                "properties": {
                    "type": {"type": "string"},
                    "status": {"type": "string"},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                    "lastTransitionTime": {"type": "string"},
                    "observedGeneration": {"type": "integer"},
                },
            },
        },
    },
}

PRINTER_COLUMNS: tuple[Schema, ...] = (
    {"name": "State", "type": "string", "jsonPath": ".status.state"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)

SCALE: Schema = {
    "specReplicasPath": ".spec.replicas",
    "statusReplicasPath": ".status.replicas",
    "labelSelectorPath": ".status.selector",
}


# What `kubectl explain sdep.spec...` says for the fields users look up most (model.field -> text).
DESCRIPTIONS: dict[str, str] = {
    "DeploymentSpec.predictors": "Inference graphs that split (canary, A/B) or mirror (shadow) the traffic.",
    "DeploymentSpec.protocol": "Wire protocol of every predictor: seldon, v2 (kfserving) or tensorflow.",
    "DeploymentSpec.replicas": "Replicas of each component that sets none itself (the scale subresource).",
    "DeploymentSpec.annotations": "seldon.io/* settings for the whole deployment (timeouts, retries, ...).",
    "PredictorSpec.graph": "The root node of this predictor's inference graph.",
    "PredictorSpec.componentSpecs": "Pods holding the graph's containers, with their autoscaling and budget.",
    "PredictorSpec.traffic": "Percentage of requests routed to this predictor.",
    "PredictorSpec.shadow": "Mirror requests to this predictor and drop its answers.",
    "PredictorSpec.replicas": "Replicas of this predictor's components (unless autoscaled).",
    "PredictiveUnit.name": "Node name; a container of the same name in componentSpecs serves it.",
    "PredictiveUnit.type": "What the node does: MODEL, ROUTER, COMBINER, TRANSFORMER, OUTPUT_TRANSFORMER.",
    "PredictiveUnit.implementation": (
        "A prepackaged server (SKLEARN_SERVER, ...) or a built-in (RANDOM_ABTEST, ...)."
    ),
    "PredictiveUnit.modelUri": "Model files (gs://, s3://, https://, pvc://), fetched into /mnt/models.",
    "PredictiveUnit.children": "Nodes this node sends its output to (typed to a fixed depth, kept below).",
    "PredictiveUnit.parameters": "Typed parameters handed to the node's model or server.",
    "PredictiveUnit.logger": "Log this node's requests and/or responses as CloudEvents to url.",
    "ComponentSpec.spec": "A Kubernetes PodSpec: containers are checked here, every other field is kept.",
    "ComponentSpec.hpaSpec": "A HorizontalPodAutoscaler for this component's Deployment.",
    "ComponentSpec.kedaSpec": "A KEDA ScaledObject for this component's Deployment.",
    "ComponentSpec.pdbSpec": "A PodDisruptionBudget for this component's pods.",
}


def open_object() -> Schema:
    return {"type": "object", _PRESERVE: True}


class _Converter:
    """pydantic's JSON schema (with `$defs`) to a structural schema, refs inlined."""

    def __init__(self, definitions: dict[str, Schema]) -> None:
        self.definitions = definitions

    def convert(self, node: Schema, depth: dict[str, int]) -> Schema:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            level = depth.get(name, 0) + 1
            if level > GRAPH_DEPTH:
                return open_object()  # recursion cut: the webhook checks what lies below
            return self.convert(self.definitions[name], {**depth, name: level})
        if "anyOf" in node:
            # `X | None`: the API server prunes a null of a non-nullable field, and we read none
            options = [option for option in node["anyOf"] if option.get("type") != "null"]
            if len(options) != 1:
                raise ValueError(f"cannot express a union structurally: {node}")
            return self.convert(options[0], depth)
        out: Schema = {key: copy.deepcopy(node[key]) for key in _KEPT if key in node}
        if out.get("type") == "object":
            properties = node.get("properties")
            extra = node.get("additionalProperties")
            if properties:
                owner = node.get("title", "")
                out["properties"] = {}
                for name, child in properties.items():
                    converted = self.convert(child, depth)
                    if f"{owner}.{name}" in DESCRIPTIONS:
                        converted = {"description": DESCRIPTIONS[f"{owner}.{name}"], **converted}
                    out["properties"][name] = converted
                if extra:  # a model that keeps unknown keys (`OpenSpecModel`)
                    out[_PRESERVE] = True
            elif extra is True or extra is None:
                out[_PRESERVE] = True  # dict[str, Any]: anything
            elif isinstance(extra, dict):
                out["additionalProperties"] = self.convert(extra, depth)  # dict[str, str]
        elif out.get("type") == "array":
            out["items"] = self.convert(node.get("items", {}), depth) if node.get("items") else open_object()
        elif "type" not in out and "enum" in out:
            out["type"] = "string"
        if "type" not in out:
            raise ValueError(f"schema node without a type: {node}")
        return out


def openapi_schema() -> Schema:
    """The `openAPIV3Schema` of every served version."""
    source = SeldonDeployment.model_json_schema(by_alias=True, mode="validation")
    converter = _Converter(source.get("$defs", {}))
    spec = converter.convert(source["properties"]["spec"], {})
    return {
        "type": "object",
        "description": "A Seldon Core SeldonDeployment, served by seldon-mesh.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": copy.deepcopy(_STATUS),
        },
    }


def custom_resource_definition() -> Schema:
    """The whole CRD object, ready for `kubectl apply`."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "seldon-mesh", "app.kubernetes.io/part-of": "seldon-mesh"},
        },
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["seldon"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": version == STORAGE_VERSION,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                    "subresources": {"status": {}, "scale": dict(SCALE)},
                    "additionalPrinterColumns": [dict(column) for column in PRINTER_COLUMNS],
                }
                for version in VERSIONS
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


HEADER = "# Generated from the spec model by `make crd` (python -m mesh.render.crd); do not edit.\n"


def to_yaml(crd: Schema) -> str:
    return HEADER + yaml.dump(crd, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(to_yaml(custom_resource_definition()))
