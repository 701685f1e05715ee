"""The SeldonDeployment CRD: generated from the spec model, checked in unchanged, a valid structural
apiextensions.k8s.io/v1 object small enough for `kubectl apply`, and agreeing with `parse_deployment` on
every manifest of the project (examples, test specs, the render corpus)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mesh.render.crd import CRD_NAME, DESCRIPTIONS, GRAPH_DEPTH, VERSIONS, custom_resource_definition, to_yaml
from mesh.spec import SpecError, parse_deployment
from tests.helpers.k8s_schemas import validate
from tests.helpers.sdep_crd import CRD_FILE, checked_in_crd, sdep_schema
from tests.spec.test_seldon_parity import ACCEPTED

ROOT = Path(__file__).resolve().parents[2]
# The API server refuses a `kubectl.kubernetes.io/last-applied-configuration` annotation above this.
ANNOTATION_LIMIT = 262_144
# Keywords the API server forbids in a CRD schema (or forbids with these values).
FORBIDDEN = ("$ref", "definitions", "dependencies", "patternProperties", "id", "$schema", "title", "const")
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
Json = dict[str, Any]


def manifests() -> Iterator[tuple[str, Json]]:
    """Every SeldonDeployment document under examples/ and tests/data/, with its source."""
    for path in sorted([*ROOT.glob("examples/**/*.yaml"), *ROOT.glob("tests/data/**/*.yaml")]):
        if "golden" in str(path):
            continue
        for index, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if isinstance(doc, dict) and doc.get("kind") == "SeldonDeployment":
                yield f"{path.relative_to(ROOT)}#{index + 1}", doc


def _parses(doc: Json) -> bool:
    try:
        parse_deployment(doc)
    except SpecError:
        return False
    return True


CORPUS = list(manifests()) + [
    (f"tests/spec/test_seldon_parity: {case}", make()) for case, make in ACCEPTED.items()
]
VALID = [(source, doc) for source, doc in CORPUS if _parses(doc)]


def structural_problems(node: Any, path: str = "openAPIV3Schema") -> Iterator[str]:
    """The rules of a structural schema (Kubernetes "Specifying a structural schema"), plus what the
    API server rejects outright in a v1 CRD schema."""
    if not isinstance(node, dict):
        yield f"{path}: not a schema object"
        return
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if preserve is not None and preserve is not True:
        yield f"{path}: x-kubernetes-preserve-unknown-fields must be true when set"
    if not node.get("type") and not preserve and not node.get("x-kubernetes-int-or-string"):
        yield f"{path}: no type"
    for key in FORBIDDEN:
        if key in node:
            yield f"{path}: {key} is not allowed"
    for key in JUNCTORS:
        if key in node:
            yield f"{path}: {key} (this schema needs no logical junctors)"
    if node.get("uniqueItems") is True:
        yield f"{path}: uniqueItems true is not allowed"
    if node.get("additionalProperties") is False:
        yield f"{path}: additionalProperties false is not allowed (pruning does that)"
    if "additionalProperties" in node and "properties" in node:
        yield f"{path}: additionalProperties and properties are mutually exclusive"
    if "additionalProperties" in node and preserve:
        yield f"{path}: additionalProperties with x-kubernetes-preserve-unknown-fields"
    if node.get("type") == "array" and "items" not in node:
        yield f"{path}: an array without items"
    if "default" in node:
        yield f"{path}: a default (the defaulting is ours, not the API server's)"
    for name, child in node.get("properties", {}).items():
        yield from structural_problems(child, f"{path}.properties.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from structural_problems(node["additionalProperties"], f"{path}.additionalProperties")
    if "items" in node:
        yield from structural_problems(node["items"], f"{path}.items")
    for name in node.get("required", []):
        if name not in node.get("properties", {}):
            yield f"{path}: required {name!r} is not a property"


def test_checked_in_crd_is_what_the_generator_makes() -> None:
    assert CRD_FILE.read_text(encoding="utf-8") == to_yaml(custom_resource_definition()), (
        f"{CRD_FILE.relative_to(ROOT)} is out of date with mesh.spec: run `make crd` and commit it"
    )


def test_crd_is_a_valid_custom_resource_definition() -> None:
    crd = copy.deepcopy(checked_in_crd())
    validate(crd)  # apiextensions.k8s.io/v1 at every Kubernetes version we check, strictly
    spec = crd["spec"]
    assert crd["metadata"]["name"] == CRD_NAME == f"{spec['names']['plural']}.{spec['group']}"
    assert spec["names"] == {
        "kind": "SeldonDeployment",
        "listKind": "SeldonDeploymentList",
        "plural": "seldondeployments",
        "singular": "seldondeployment",
        "shortNames": ["sdep"],
        "categories": ["seldon"],
    }
    versions = {v["name"]: v for v in spec["versions"]}
    assert set(versions) == {"v1", "v1alpha2", "v1alpha3"}
    assert [name for name, v in versions.items() if v["storage"]] == ["v1"]
    assert all(v["served"] for v in versions.values())
    for version in versions.values():
        assert version["subresources"]["status"] == {}
        assert version["subresources"]["scale"] == {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
        columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
        assert columns["State"]["jsonPath"] == ".status.state"
        assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
        assert columns["Replicas"]["type"] == "integer"
        assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def test_crd_fits_a_last_applied_annotation() -> None:
    crd = checked_in_crd()
    # what `kubectl apply` stores: the object as compact JSON (plus the annotation itself, absent here)
    applied = len(json.dumps(crd, separators=(",", ":")).encode())
    assert applied < ANNOTATION_LIMIT, f"{applied} bytes as JSON"
    assert len(CRD_FILE.read_bytes()) < ANNOTATION_LIMIT


@pytest.mark.parametrize("version", VERSIONS)
def test_schema_is_structural(version: str) -> None:
    crd = custom_resource_definition()
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
    assert list(structural_problems(schema)) == []
    assert schema["properties"]["metadata"] == {"type": "object"}  # nothing but name rules are allowed


def test_structural_checker_catches_what_the_api_server_refuses() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/x"},
            "b": {"type": "object", "properties": {"c": {"type": "string"}}, "additionalProperties": True},
            "d": {"type": "array"},
            "e": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }
    found = "\n".join(structural_problems(bad))
    for expected in (
        "a: no type",
        "a: $ref",
        "b: additionalProperties and properties",
        "d: an array",
        "e: anyOf",
    ):
        path, problem = expected.split(": ", 1)
        assert f"properties.{path}: {problem}" in found, found


def test_graph_nodes_are_typed_down_to_the_depth_limit_and_kept_below() -> None:
    schema = sdep_schema("v1")
    node = schema["properties"]["spec"]["properties"]["predictors"]["items"]["properties"]["graph"]
    for _ in range(GRAPH_DEPTH - 1):
        assert node["properties"]["parameters"]["items"]["required"] == ["name", "value", "type"]
        node = node["properties"]["children"]["items"]
    assert "properties" in node
    below = node["properties"]["children"]["items"]
    assert below.get("x-kubernetes-preserve-unknown-fields") is True and "properties" not in below


def test_the_corpus_has_what_the_crd_must_accept() -> None:
    versions = {doc["apiVersion"].split("/")[1] for _, doc in VALID}
    assert len(VALID) >= 15 and {"v1", "v1alpha2"} <= versions, [source for source, _ in VALID]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("source", "doc"), VALID, ids=[source for source, _ in VALID])
def test_every_valid_manifest_validates_against_the_crd(source: str, doc: Json, version: str) -> None:
    manifest = {**copy.deepcopy(doc), "apiVersion": f"machinelearning.seldon.io/{version}"}
    errors = [
        f"{'.'.join(map(str, e.path))}: {e.message}"
        for e in jsonschema.Draft7Validator(sdep_schema(version)).iter_errors(manifest)
    ]
    assert errors == [], source


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "predictors", 0, "traffic"), "fifty"),
        (("spec", "predictors", 0, "graph", "type"), "CLASSIFIER"),
        (("spec", "predictors", 0, "graph", "parameters"), [{"name": "x", "value": 1, "type": "INT"}]),
        (("spec", "predictors", 0, "graph", "endpoint", "type"), "HTTP"),
        (("spec", "protocol"), "soap"),
        (("spec", "predictors", 0, "componentSpecs"), [{"spec": {"containers": [{"image": "x"}]}}]),
    ],
)
def test_the_crd_rejects_what_parse_deployment_rejects(path: tuple[str | int, ...], value: Any) -> None:
    doc = copy.deepcopy(next(doc for source, doc in VALID if source.startswith("examples/iris")))
    target: Any = doc
    for key in path[:-1]:
        target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
    target[path[-1]] = value
    with pytest.raises(SpecError):
        parse_deployment(doc)
    assert list(jsonschema.Draft7Validator(sdep_schema("v1")).iter_errors(doc)), value


def test_pod_fields_beside_the_containers_are_kept() -> None:
    doc = copy.deepcopy(next(doc for source, doc in VALID if source.startswith("examples/iris")))
    predictor = doc["spec"]["predictors"][0]
    predictor["componentSpecs"] = [
        {
            "spec": {
                "nodeSelector": {"pool": "gpu"},
                "volumes": [{"name": "cache", "emptyDir": {}}],
                "containers": [{"name": predictor["graph"]["name"], "securityContext": {"runAsUser": 1000}}],
            },
            "hpaSpec": {"maxReplicas": 3, "metrics": []},
        }
    ]
    parse_deployment(doc)
    assert list(jsonschema.Draft7Validator(sdep_schema("v1")).iter_errors(doc)) == []


def test_every_description_lands_on_its_field() -> None:
    text = json.dumps(sdep_schema("v1"))
    missing = [key for key, description in DESCRIPTIONS.items() if json.dumps(description) not in text]
    assert missing == [], "DESCRIPTIONS names a model field that does not exist (renamed?)"
    graph = sdep_schema("v1")["properties"]["spec"]["properties"]["predictors"]["items"]["properties"][
        "graph"
    ]
    assert graph["properties"]["modelUri"]["description"] == DESCRIPTIONS["PredictiveUnit.modelUri"]
