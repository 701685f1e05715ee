"""What Seldon Core's admission webhook accepts, mesh.spec accepts (a migrating user changes nothing),
and what it refuses, mesh.spec refuses: each case written as Seldon's examples write manifests."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mesh.render import render
from mesh.spec import parse_deployment, parse_documents
from tests.helpers.k8s_schemas import validate_all
from tests.spec.manifests import containers, errors_of, iris, node, predictor, prepackaged, with_graph


def _two(*predictors: dict[str, Any]) -> dict[str, Any]:
    manifest = iris()
    manifest["spec"]["predictors"] = list(predictors)
    return manifest


ACCEPTED = {
    "a main predictor below 100 next to a shadow": lambda: _two(
        predictor("main", prepackaged(), traffic=90), predictor("shadow", prepackaged(), shadow=True)
    ),
    "no-engine with any value": lambda: with_graph(
        prepackaged(), annotations={"seldon.io/no-engine": "yes please"}
    ),
    "no-engine set to false": lambda: with_graph(prepackaged(), annotations={"seldon.io/no-engine": "false"}),
    "RANDOM_ABTEST typed UNKNOWN_TYPE": lambda: with_graph(
        node(
            "ab",
            implementation="RANDOM_ABTEST",
            type="UNKNOWN_TYPE",
            children=[prepackaged("a"), prepackaged("b")],
        )
    ),
    "the same container name in two componentSpecs": lambda: with_graph(
        node("m", type="MODEL"), componentSpecs=containers("m") + containers("m")
    ),
    "a deployment name longer than 63 characters": lambda: {
        **iris(),
        "metadata": {"name": "a-model-whose-name-is-well-over-sixty-three-characters-long-as-some-are"},
    },
    "a predictor name longer than 63 characters": lambda: with_graph_named("p" * 70),
    "HUGGINGFACE_SERVER without modelUri": lambda: {
        **with_graph(
            node(
                "hf",
                implementation="HUGGINGFACE_SERVER",
                parameters=[{"name": "task", "value": "text-classification", "type": "STRING"}],
            )
        ),
        "spec": {
            **with_graph(node("hf", implementation="HUGGINGFACE_SERVER"))["spec"],
            "protocol": "v2",
        },
    },
}


def with_graph_named(name: str) -> dict[str, Any]:
    manifest = with_graph(prepackaged())
    manifest["spec"]["predictors"][0]["name"] = name
    return manifest


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_accepted_as_seldon_accepts_it(case: str) -> None:
    deployment = parse_deployment(copy.deepcopy(ACCEPTED[case]()))
    validate_all(render(deployment))  # and it renders to valid objects


def test_the_main_predictor_beside_a_shadow_takes_all_traffic() -> None:
    deployment = parse_deployment(ACCEPTED["a main predictor below 100 next to a shadow"]())
    assert [p.traffic for p in deployment.spec.predictors if not p.shadow] == [100]


def test_a_lone_predictor_with_part_of_the_traffic_is_still_refused() -> None:
    manifest = with_graph(prepackaged())
    manifest["spec"]["predictors"][0]["traffic"] = 40
    assert "spec.predictors[0].traffic" in errors_of(manifest)


def test_endpoint_types_are_checked_across_the_deployment() -> None:
    manifest = _two(
        predictor("a", prepackaged(endpoint={"type": "REST"}), traffic=50),
        predictor("b", prepackaged(endpoint={"type": "GRPC"}), traffic=50),
    )
    errors = errors_of(manifest)
    assert "one endpoint type" in errors["spec.predictors[1].graph.endpoint.type"]


def test_a_multi_document_file_applies_its_seldon_deployments_and_skips_the_rest() -> None:
    import yaml

    text = yaml.safe_dump_all(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "seldon"}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"K": "v"}},
            iris(),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        ]
    )
    assert [d.metadata.name for d in parse_documents(text, "seldon-example.yaml")] == ["iris-model"]


def test_a_misspelt_seldon_kind_is_still_an_error() -> None:
    manifest = iris()
    manifest["kind"] = "SeldonDeploymnet"
    with pytest.raises(Exception) as error:
        parse_documents(__import__("yaml").safe_dump(manifest), "typo.yaml")
    assert "kind" in str(error.value)


def _mab(image: str) -> dict[str, Any]:
    manifest = iris()
    manifest["spec"]["predictors"] = [
        {
            "name": "default",
            "componentSpecs": [
                {
                    "spec": {
                        "containers": [
                            {"name": "eg-router", "image": image},
                            {"name": "model-a", "image": "seldonio/mock_classifier:1.0"},
                            {"name": "model-b", "image": "seldonio/mock_classifier:1.0"},
                        ]
                    }
                }
            ],
            "graph": {
                "name": "eg-router",
                "type": "ROUTER",
                "parameters": [
                    {"name": "n_branches", "value": "2", "type": "INT"},
                    {"name": "epsilon", "value": "0.2", "type": "FLOAT"},
                    {"name": "verbose", "value": "1", "type": "BOOL"},
                    {"name": "branch_names", "value": "a:b", "type": "STRING"},
                    {"name": "seed", "value": "1", "type": "INT"},
                ],
                "children": [{"name": "model-a", "type": "MODEL"}, {"name": "model-b", "type": "MODEL"}],
            },
        }
    ]
    return manifest


@pytest.mark.parametrize(
    ("image", "implementation"),
    [
        ("seldonio/mab_epsilon_greedy:1.18.0", "EPSILON_GREEDY"),
        ("docker.io/seldonio/mab_thompson_sampling:1.17.1", "THOMPSON_SAMPLING"),
        ("seldonio/mab_epsilon_greedy@sha256:abc", "EPSILON_GREEDY"),
    ],
)
def test_seldons_mab_router_images_run_as_the_built_in_routers(image: str, implementation: str) -> None:
    deployment = parse_deployment(_mab(image))
    predictor = deployment.spec.predictors[0]
    assert predictor.graph.implementation == implementation
    assert predictor.graph.typed_parameters()["epsilon"] == 0.2
    assert [c.name for c in predictor.component_specs[0].spec.containers] == ["model-a", "model-b"]
    rendered = render(deployment)
    validate_all(rendered)
    assert any(m["metadata"]["name"].endswith("-extproc") for m in rendered)


def test_another_image_named_like_a_router_is_left_alone() -> None:
    deployment = parse_deployment(_mab("example.com/mab_epsilon_greedy:1"))
    assert deployment.spec.predictors[0].graph.implementation == "UNKNOWN_IMPLEMENTATION"
