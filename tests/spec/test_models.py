"""What consumers read off a parsed deployment: typed parameters, env, ports, annotations, manifests."""

from __future__ import annotations

import json

import pytest

from mesh.spec import (
    PREPACKAGED_SERVERS,
    ContainerPorts,
    FieldError,
    SpecError,
    UnitType,
    parse_deployment,
    parse_documents,
)

from .manifests import SPECS, containers, iris, node, prepackaged, sample, with_graph


@pytest.mark.parametrize("name", sorted(p.name for p in SPECS.glob("*.yaml")))
def test_to_manifest_round_trips(name: str) -> None:
    deployment = parse_deployment(sample(name))
    manifest = deployment.to_manifest()
    assert parse_deployment(manifest) == deployment
    assert manifest["apiVersion"] == deployment.api_version


def test_to_manifest_is_camel_case_with_defaults_and_no_nulls() -> None:
    manifest = parse_deployment(sample("transformer.yaml")).to_manifest()
    main = manifest["spec"]["predictors"][0]
    assert main["traffic"] == 100
    assert main["graph"]["type"] == "TRANSFORMER"
    assert main["graph"]["implementation"] == "UNKNOWN_IMPLEMENTATION"
    container = main["componentSpecs"][0]["spec"]["containers"][1]
    assert container["workingDir"] == "./models"
    assert container["ports"] == [{"containerPort": 9100, "name": "http"}]
    assert main["componentSpecs"][0]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert manifest["metadata"]["namespace"] == "default"
    assert "transport" not in manifest["spec"]
    assert "modelUri" not in main["graph"]


def test_typed_parameters() -> None:
    [main] = parse_deployment(sample("transformer.yaml")).spec.predictors
    classifier = main.graph.children[0]
    assert classifier.typed_parameters() == {
        "threshold": 0.25,
        "verbose": True,
        "batch": 32,
        "label": "setosa",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [(v, True) for v in ("y", "YES", "t", "True", "on", "1")]
    + [(v, False) for v in ("n", "No", "f", "FALSE", "off", "0")],
)
def test_bool_parameters_follow_strtobool(value: str, expected: bool) -> None:
    graph = prepackaged(parameters=[{"name": "flag", "value": value, "type": "BOOL"}])
    assert parse_deployment(with_graph(graph)).spec.predictors[0].graph.typed_parameters() == {
        "flag": expected
    }


def test_ports_in_container_order_then_prepackaged_nodes() -> None:
    deployment = parse_deployment(sample("transformer.yaml"))
    [main] = deployment.spec.predictors
    # mean-transformer comes first; classifier declares its HTTP port, so it is kept and not reused.
    assert main.ports_for("mean-transformer") == ContainerPorts(http=9000, grpc=9500, metrics=6000)
    assert main.ports_for("classifier") == ContainerPorts(http=9100, grpc=9501, metrics=6001)
    assert main.ports_for("absent") is None


def test_ports_skip_explicit_ones_and_builtins_get_none() -> None:
    graph = node(
        "router",
        implementation="RANDOM_ABTEST",
        children=[node("user", endpoint={"httpPort": 9000}), prepackaged("packaged")],
    )
    [default] = parse_deployment(with_graph(graph, componentSpecs=containers("user"))).spec.predictors
    assert default.ports_for("router") is None
    assert default.ports_for("user") == ContainerPorts(9000, 9500, 6000)
    assert default.ports_for("packaged") == ContainerPorts(9001, 9501, 6001)


def test_deployment_annotations_spec_wins_over_metadata() -> None:
    manifest = iris(annotations={"seldon.io/rest-timeout": "2000", "team": "spec"})
    manifest["metadata"]["annotations"] = {"seldon.io/rest-timeout": "1000", "owner": "ml"}
    assert parse_deployment(manifest).annotations == {
        "seldon.io/rest-timeout": "2000",
        "team": "spec",
        "owner": "ml",
    }


def test_nodes_walk_pre_order() -> None:
    graph = node(
        "a",
        type="COMBINER",
        children=[prepackaged("b", children=[prepackaged("c")]), prepackaged("d")],
    )
    [default] = parse_deployment(with_graph(graph, componentSpecs=containers("a"))).spec.predictors
    assert [n.name for n in default.nodes()] == ["a", "b", "c", "d"]
    assert default.graph.type is UnitType.COMBINER


def test_prepackaged_servers_protocols() -> None:
    assert PREPACKAGED_SERVERS["TEMPO_SERVER"].supports("kfserving")
    assert not PREPACKAGED_SERVERS["TEMPO_SERVER"].supports("seldon")
    assert PREPACKAGED_SERVERS["TENSORFLOW_SERVER"].supports("tensorflow")
    assert not PREPACKAGED_SERVERS["MLFLOW_SERVER"].supports("tensorflow")
    assert {"LIGHTGBM_SERVER", "ONNX_SERVER"} <= set(PREPACKAGED_SERVERS)


def test_spec_error_is_a_value_error_with_every_field_error() -> None:
    error = SpecError([FieldError("metadata.name", "is required"), FieldError("", "bad", source="f.yaml")])
    assert isinstance(error, ValueError)
    assert str(error).splitlines() == [
        "invalid SeldonDeployment (2 problems):",
        "  - metadata.name: is required",
        "  - f.yaml: bad",
    ]


def test_parsed_deployment_survives_parse_documents_of_its_manifest() -> None:
    deployment = parse_deployment(sample("canary.yaml"))
    assert parse_documents(json.dumps(deployment.to_manifest())) == [deployment]
