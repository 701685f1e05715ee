"""Classic Seldon manifests parse, and come out with the webhook's defaults applied."""

from __future__ import annotations

import pytest

from mesh.spec import (
    PREPACKAGED_SERVERS,
    Container,
    PredictiveUnit,
    SeldonDeployment,
    SpecError,
    UnitType,
    parse_deployment,
)

from .manifests import containers, iris, node, predictor, prepackaged, sample, with_graph


def test_iris_parses_with_defaults() -> None:
    deployment = parse_deployment(sample("iris.yaml"))
    assert deployment.key == ("seldon", "iris-model")
    assert deployment.api_version == "machinelearning.seldon.io/v1"
    assert deployment.spec.protocol == "seldon"
    assert deployment.spec.server_type == "rpc"
    assert deployment.spec.transport is None
    [default] = deployment.spec.predictors
    assert default.name == "default"
    assert default.replicas == 1
    assert default.traffic == 100  # the lone predictor takes all traffic
    assert not default.shadow
    graph = default.graph
    assert graph.name == "classifier"
    assert graph.type is UnitType.MODEL  # forced by the prepackaged implementation
    assert graph.implementation == "SKLEARN_SERVER"
    assert graph.model_uri == "gs://seldon-models/v1.19.0-dev/sklearn/iris"
    assert graph.is_prepackaged and not graph.is_builtin
    assert default.container_for("classifier") is None


def test_namespace_defaults_to_default() -> None:
    manifest = sample("iris.yaml")
    del manifest["metadata"]["namespace"]
    assert parse_deployment(manifest).key == ("default", "iris-model")


@pytest.mark.parametrize("version", ["v1", "v1alpha2", "v1alpha3"])
def test_every_served_version_parses(version: str) -> None:
    manifest = sample("iris.yaml")
    manifest["apiVersion"] = f"machinelearning.seldon.io/{version}"
    assert parse_deployment(manifest).api_version == f"machinelearning.seldon.io/{version}"


def test_transformer_then_model_with_component_containers() -> None:
    deployment = parse_deployment(sample("transformer.yaml"))
    [main] = deployment.spec.predictors
    assert [n.name for n in main.nodes()] == ["mean-transformer", "classifier"]
    assert [n.type for n in main.nodes()] == [UnitType.TRANSFORMER, UnitType.MODEL]
    assert all(n.implementation == "UNKNOWN_IMPLEMENTATION" for n in main.nodes())
    assert main.version == "v3"
    assert deployment.annotations == {"seldon.io/rest-timeout": "5000"}

    transformer = main.container_for("mean-transformer")
    assert isinstance(transformer, Container)
    assert transformer.image == "seldonio/mean_transformer:0.1"
    assert transformer.env_dict() == {"MODEL_NAME": "MeanTransformer"}  # valueFrom is cluster-only
    assert transformer.env[1].value_from == {"secretKeyRef": {"name": "keys", "key": "api"}}
    assert transformer.model_extra == {"imagePullPolicy": "IfNotPresent"}  # kept for the renderer
    classifier = main.container_for("classifier")
    assert classifier is not None and classifier.working_dir == "./models"
    assert main.component_specs[0].spec.rest() == {"terminationGracePeriodSeconds": 20}


def test_ab_test_router() -> None:
    deployment = parse_deployment(sample("abtest.yaml"))
    graph = deployment.spec.predictors[0].graph
    assert graph.type is UnitType.ROUTER  # implied by RANDOM_ABTEST
    assert graph.is_builtin and not graph.is_prepackaged
    assert graph.typed_parameters() == {"ratioA": 0.5}
    assert [c.type for c in graph.children] == [UnitType.MODEL, UnitType.MODEL]


def test_canary_splits_75_25() -> None:
    deployment = parse_deployment(sample("canary.yaml"))
    assert [(p.name, p.traffic, p.shadow) for p in deployment.spec.predictors] == [
        ("main", 75, False),
        ("canary", 25, False),
    ]
    assert deployment.spec.protocol == "v2"


def test_shadow_next_to_a_main_predictor() -> None:
    deployment = parse_deployment(sample("shadow.yaml"))
    main, shadow = deployment.spec.predictors
    assert (main.traffic, main.shadow) == (100, False)
    assert (shadow.traffic, shadow.shadow) == (0, True)
    assert main.graph.logger is not None
    assert (main.graph.logger.mode, main.graph.logger.url) == ("all", "http://logger.seldon/")


def test_several_shadows_are_allowed() -> None:
    manifest = sample("shadow.yaml")
    extra = predictor("shadow-2", prepackaged(), shadow=True)
    manifest["spec"]["predictors"].append(extra)
    assert [p.shadow for p in parse_deployment(manifest).spec.predictors] == [False, True, True]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, UnitType.MODEL),
        ({"methods": ["TRANSFORM_INPUT"]}, None),
        ({"type": "OUTPUT_TRANSFORMER"}, UnitType.OUTPUT_TRANSFORMER),
        ({"type": "UNKNOWN_TYPE", "methods": ["ROUTE"], "children": [prepackaged()]}, UnitType.UNKNOWN_TYPE),
    ],
)
def test_user_node_type_defaulting(fields: dict[str, object], expected: UnitType | None) -> None:
    graph = node("step", **fields)
    unit = parse_deployment(with_graph(graph, componentSpecs=containers("step"))).spec.predictors[0].graph
    assert unit.type == expected
    assert unit.implementation == "UNKNOWN_IMPLEMENTATION"


@pytest.mark.parametrize(
    ("implementation", "expected"),
    [
        ("SIMPLE_MODEL", UnitType.MODEL),
        ("SIMPLE_ROUTER", UnitType.ROUTER),
        ("EPSILON_GREEDY", UnitType.ROUTER),
        ("THOMPSON_SAMPLING", UnitType.ROUTER),
        ("AVERAGE_COMBINER", UnitType.COMBINER),
    ],
)
def test_builtin_implementation_implies_type(implementation: str, expected: UnitType) -> None:
    children = [prepackaged("a"), prepackaged("b")]
    parameters = [{"name": "n_branches", "value": "2", "type": "INT"}]
    graph = node("top", implementation=implementation, children=children, parameters=parameters)
    unit = parse_deployment(with_graph(graph)).spec.predictors[0].graph
    assert unit.type is expected
    assert unit.is_builtin


def test_prepackaged_implementation_forces_model_type() -> None:
    graph = prepackaged(type="TRANSFORMER")
    assert parse_deployment(with_graph(graph)).spec.predictors[0].graph.type is UnitType.MODEL


def test_every_prepackaged_server_parses_under_a_protocol_it_supports() -> None:
    for name, info in PREPACKAGED_SERVERS.items():
        protocol = sorted(info.protocols)[0]
        graph = node("model", implementation=name, modelUri="s3://bucket/model")
        deployment = parse_deployment(iris(protocol=protocol, predictors=[predictor("p", graph)]))
        assert deployment.spec.predictors[0].graph.is_prepackaged, name


def test_null_fields_count_as_absent() -> None:
    manifest = iris(transport=None, replicas=None)
    manifest["spec"]["predictors"][0]["traffic"] = None
    deployment = parse_deployment(manifest)
    assert deployment.spec.transport is None
    assert deployment.spec.predictors[0].traffic == 100


def test_unknown_kubernetes_fields_are_ignored_and_status_dropped() -> None:
    manifest = sample("iris.yaml")
    manifest["metadata"].update(creationTimestamp="2024-01-01T00:00:00Z", resourceVersion="12", generation=3)
    manifest["status"] = {"state": "Available"}
    manifest["spec"]["predictors"][0]["graph"]["somethingNew"] = True
    deployment = parse_deployment(manifest)
    assert deployment.metadata.generation == 3
    assert deployment.status is None
    assert deployment == parse_deployment(sample("iris.yaml")).model_copy(
        update={"metadata": deployment.metadata}
    )


def test_snake_case_names_are_accepted_too() -> None:
    graph = {"name": "classifier", "implementation": "SKLEARN_SERVER", "model_uri": "gs://bucket/iris"}
    deployment = parse_deployment(with_graph(graph))
    assert deployment.spec.predictors[0].graph.model_uri == "gs://bucket/iris"


def test_models_are_frozen() -> None:
    deployment = parse_deployment(sample("iris.yaml"))
    with pytest.raises(ValueError, match="frozen"):
        setattr(deployment.spec.predictors[0].graph, "name", "other")  # noqa: B010


def test_not_a_mapping_is_an_error() -> None:
    with pytest.raises(SpecError) as caught:
        parse_deployment(["not", "a", "deployment"])  # type: ignore[arg-type]
    assert caught.value.errors[0].path == ""


def test_constructed_models_are_usable() -> None:
    unit = PredictiveUnit(name="m", implementation="XGBOOST_SERVER")
    assert unit.is_prepackaged
    assert isinstance(SeldonDeployment.model_validate({"spec": {"predictors": []}}).spec.predictors, tuple)
