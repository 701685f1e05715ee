"""Every validation rule rejects its case with the exact field path a kubectl user would look for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mesh.spec import SpecError, parse_deployment

from .manifests import containers, errors_of, iris, node, predictor, prepackaged, sample, with_graph

Manifest = dict[str, Any]


def _set(manifest: Manifest, path: str, value: Any) -> Manifest:
    """Set a dotted path (`spec.predictors.0.traffic`) in a manifest and return the manifest."""
    *parents, last = path.split(".")
    target: Any = manifest
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return manifest


def _two(first: Manifest, second: Manifest, **spec: Any) -> Manifest:
    return iris(predictors=[first, second], **spec)


def _router(implementation: str, children: int, parameters: list[dict[str, str]] | None = None) -> Manifest:
    kids = [prepackaged(f"model-{i}") for i in range(children)]
    return with_graph(
        node("router", implementation=implementation, children=kids, parameters=parameters or [])
    )


def _param(name: str, value: str, type_: str) -> dict[str, str]:
    return {"name": name, "value": value, "type": type_}


CASES: list[tuple[str, Callable[[], Manifest], str, str]] = [
    # identity
    (
        "bad apiVersion",
        lambda: _set(iris(), "apiVersion", "machinelearning.seldon.io/v2"),
        "apiVersion",
        "must be",
    ),
    (
        "missing apiVersion",
        lambda: {k: v for k, v in iris().items() if k != "apiVersion"},
        "apiVersion",
        "required",
    ),
    ("missing name", lambda: _set(iris(), "metadata.name", ""), "metadata.name", "required"),
    (
        "no metadata",
        lambda: {k: v for k, v in iris().items() if k != "metadata"},
        "metadata.name",
        "required",
    ),
    ("uppercase name", lambda: _set(iris(), "metadata.name", "Iris"), "metadata.name", "DNS-1123"),
    ("name too long", lambda: _set(iris(), "metadata.name", "a" * 254), "metadata.name", "longer than 253"),
    ("dotted namespace", lambda: _set(iris(), "metadata.namespace", "a.b"), "metadata.namespace", "DNS-1123"),
    ("no predictors", lambda: iris(predictors=[]), "spec.predictors", "at least one"),
    ("no spec", lambda: {k: v for k, v in iris().items() if k != "spec"}, "spec", "required"),
    (
        "predictor without a graph",
        lambda: iris(predictors=[{"name": "default"}]),
        "spec.predictors[0].graph",
        "is required",
    ),
    # spec enums
    ("bad protocol", lambda: iris(protocol="http"), "spec.protocol", "'seldon'"),
    ("bad transport", lambda: iris(transport="http"), "spec.transport", "'rest'"),
    ("bad serverType", lambda: iris(serverType="queue"), "spec.serverType", "'rpc'"),
    # predictors
    (
        "predictor name",
        lambda: _set(iris(), "spec.predictors.0.name", "Main_1"),
        "spec.predictors[0].name",
        "DNS",
    ),
    (
        "duplicate predictor names",
        lambda: _two(predictor("a", prepackaged(), traffic=50), predictor("a", prepackaged(), traffic=50)),
        "spec.predictors[1].name",
        "duplicate predictor name 'a'",
    ),
    (
        "traffic over 100",
        lambda: _set(iris(), "spec.predictors.0.traffic", 101),
        "spec.predictors[0].traffic",
        "100",
    ),
    (
        "negative traffic",
        lambda: _set(iris(), "spec.predictors.0.traffic", -1),
        "spec.predictors[0].traffic",
        "0",
    ),
    (
        "traffic not a number",
        lambda: _set(iris(), "spec.predictors.0.traffic", "abc"),
        "spec.predictors[0].traffic",
        "abc",
    ),
    (
        "single predictor at 40%",
        lambda: _set(iris(), "spec.predictors.0.traffic", 40),
        "spec.predictors[0].traffic",
        "not 40",
    ),
    (
        "traffic sums to 90",
        lambda: _two(predictor("a", prepackaged(), traffic=60), predictor("b", prepackaged(), traffic=30)),
        "spec.predictors",
        "sum to 100, got 90",
    ),
    (
        "shadow as the only predictor",
        lambda: _set(iris(), "spec.predictors.0.shadow", True),
        "spec.predictors[0].shadow",
        "not a shadow",
    ),
    (
        "only shadows",
        lambda: _two(predictor("a", prepackaged(), shadow=True), predictor("b", prepackaged(), shadow=True)),
        "spec.predictors",
        "not a shadow",
    ),
    (
        "duplicate svc-name",
        lambda: _two(
            predictor("a", prepackaged(), traffic=50, annotations={"seldon.io/svc-name": "svc"}),
            predictor("b", prepackaged(), traffic=50, annotations={"seldon.io/svc-name": "svc"}),
        ),
        'spec.predictors[1].annotations["seldon.io/svc-name"]',
        "duplicate service name",
    ),
    (
        "no-engine on a two-node graph",
        lambda: with_graph(
            prepackaged(children=[prepackaged("b")]), annotations={"seldon.io/no-engine": "true"}
        ),
        'spec.predictors[0].annotations["seldon.io/no-engine"]',
        "single node",
    ),
    (
        "kafka without env",
        lambda: iris(serverType="kafka"),
        "spec.predictors[0].svcOrchSpec.env",
        "KAFKA_BROKER, KAFKA_INPUT_TOPIC, KAFKA_OUTPUT_TOPIC",
    ),
    (
        "kafka with a missing topic",
        lambda: _set(
            iris(serverType="kafka"),
            "spec.predictors.0.svcOrchSpec",
            {
                "env": [
                    {"name": "KAFKA_BROKER", "value": "b:9092"},
                    {"name": "KAFKA_INPUT_TOPIC", "value": "in"},
                ]
            },
        ),
        "spec.predictors[0].svcOrchSpec.env",
        "needs KAFKA_OUTPUT_TOPIC",
    ),
    (
        "duplicate containers in a pod",
        lambda: with_graph(
            node("m"), componentSpecs=[{"spec": {"containers": [{"name": "m"}, {"name": "m"}]}}]
        ),
        "spec.predictors[0].componentSpecs[0].spec.containers[1].name",
        "duplicate container",
    ),
    (
        "container name not a label",
        lambda: with_graph(prepackaged(), componentSpecs=containers("Side_Car")),
        "spec.predictors[0].componentSpecs[0].spec.containers[0].name",
        "DNS-1123",
    ),
    (
        "unknown explainer",
        lambda: _set(iris(), "spec.predictors.0.explainer", {"type": "Lime"}),
        "spec.predictors[0].explainer.type",
        "unknown explainer 'Lime'",
    ),
    # annotations
    *[
        (
            f"annotation {name} not a positive integer",
            lambda name=name: _set(iris(), "metadata.annotations", {name: "0"}),
            f'metadata.annotations["{name}"]',
            "positive integer",
        )
        for name in (
            "seldon.io/rest-timeout",
            "seldon.io/grpc-timeout",
            "seldon.io/grpc-max-message-size",
            "seldon.io/per-try-timeout",
        )
    ],
    (
        "retries negative",
        lambda: iris(annotations={"seldon.io/retries": "-1"}),
        'spec.annotations["seldon.io/retries"]',
        "non-negative integer",
    ),
    (
        "too many retries",
        lambda: _set(iris(), "metadata.annotations", {"seldon.io/retries": "50"}),
        'metadata.annotations["seldon.io/retries"]',
        "at most 10",
    ),
    (
        "message size above what HTTP/2 windows allow",
        lambda: iris(annotations={"seldon.io/grpc-max-message-size": str(2**31)}),
        'spec.annotations["seldon.io/grpc-max-message-size"]',
        "2^31-1",
    ),
    (
        "unknown retry condition",
        lambda: iris(annotations={"seldon.io/retry-on": "5xx, sometimes"}),
        'spec.annotations["seldon.io/retry-on"]',
        "'sometimes'",
    ),
    (
        "empty retry-on",
        lambda: iris(annotations={"seldon.io/retry-on": " , "}),
        'spec.annotations["seldon.io/retry-on"]',
        "comma-separated",
    ),
    (
        "sticky header that is not a header name",
        lambda: iris(annotations={"seldon.io/sticky-header": "x user"}),
        'spec.annotations["seldon.io/sticky-header"]',
        "HTTP header name",
    ),
    (
        "predictor annotation checked too",
        lambda: _set(iris(), "spec.predictors.0.annotations", {"seldon.io/per-try-timeout": "1.5"}),
        'spec.predictors[0].annotations["seldon.io/per-try-timeout"]',
        "positive integer",
    ),
    (
        "spec annotation not a number",
        lambda: iris(annotations={"seldon.io/rest-timeout": "10s"}),
        'spec.annotations["seldon.io/rest-timeout"]',
        "'10s'",
    ),
    (
        "annotation that YAML made a number",
        lambda: iris(annotations={"seldon.io/rest-timeout": 1000}),
        'spec.annotations["seldon.io/rest-timeout"]',
        "quote it",
    ),
    (
        "flag annotation not a boolean",
        lambda: iris(annotations={"seldon.io/headless-svc": "maybe"}),
        'spec.annotations["seldon.io/headless-svc"]',
        "not a boolean",
    ),
    # graph nodes
    (
        "node without container",
        lambda: with_graph(node("m")),
        "spec.predictors[0].graph",
        "no container named 'm'",
    ),
    (
        "child without container",
        lambda: with_graph(
            node("t", type="TRANSFORMER", children=[node("m")]), componentSpecs=containers("t")
        ),
        "spec.predictors[0].graph.children[0]",
        "no container named 'm'",
    ),
    (
        "node with no known type or methods",
        lambda: with_graph(node("m", type="UNKNOWN_TYPE"), componentSpecs=containers("m")),
        "spec.predictors[0].graph.type",
        "no known type or methods",
    ),
    (
        "unknown node type",
        lambda: with_graph(prepackaged(type="PREDICTOR")),
        "spec.predictors[0].graph.type",
        "'MODEL'",
    ),
    (
        "unknown method",
        lambda: with_graph(prepackaged(methods=["PREDICT"])),
        "spec.predictors[0].graph.methods[0]",
        "'ROUTE'",
    ),
    (
        "prepackaged without modelUri",
        lambda: with_graph(node("m", implementation="SKLEARN_SERVER")),
        "spec.predictors[0].graph.modelUri",
        "needs a modelUri",
    ),
    (
        "unknown implementation",
        lambda: with_graph(node("m", implementation="PYTORCH_SERVER", modelUri="s3://b/m")),
        "spec.predictors[0].graph.implementation",
        "unknown implementation 'PYTORCH_SERVER'",
    ),
    (
        "sklearn under the tensorflow protocol",
        lambda: iris(protocol="tensorflow"),
        "spec.predictors[0].graph.implementation",
        "does not support the 'tensorflow' protocol",
    ),
    (
        "tensorflow server under v2",
        lambda: _set(iris(protocol="v2"), "spec.predictors.0.graph.implementation", "TENSORFLOW_SERVER"),
        "spec.predictors[0].graph.implementation",
        "does not support the 'v2' protocol",
    ),
    (
        "triton under seldon",
        lambda: _set(iris(), "spec.predictors.0.graph.implementation", "TRITON_SERVER"),
        "spec.predictors[0].graph.implementation",
        "does not support the 'seldon' protocol",
    ),
    (
        "logger without mode",
        lambda: with_graph(prepackaged(logger={"url": "http://logger"})),
        "spec.predictors[0].graph.logger.mode",
        "required",
    ),
    (
        "logger with a bad mode",
        lambda: with_graph(prepackaged(logger={"mode": "everything"})),
        "spec.predictors[0].graph.logger.mode",
        "'all'",
    ),
    (
        "modelUri with an unknown scheme",
        lambda: with_graph(prepackaged(modelUri="ftp://host/model")),
        "spec.predictors[0].graph.modelUri",
        "unsupported scheme 'ftp'",
    ),
    (
        "duplicate node names",
        lambda: with_graph(
            node("r", implementation="RANDOM_ABTEST", children=[prepackaged("m"), prepackaged("m")])
        ),
        "spec.predictors[0].graph.children[1].name",
        "duplicate graph node name 'm'",
    ),
    (
        "node name not a label",
        lambda: with_graph(prepackaged("My_Model")),
        "spec.predictors[0].graph.name",
        "DNS",
    ),
    ("node without a name", lambda: with_graph(prepackaged("")), "spec.predictors[0].graph.name", "required"),
    (
        "two endpoint types in a graph",
        lambda: with_graph(
            prepackaged(
                "a", endpoint={"type": "REST"}, children=[prepackaged("b", endpoint={"type": "GRPC"})]
            )
        ),
        "spec.predictors[0].graph.children[0].endpoint.type",
        "one endpoint type",
    ),
    (
        "endpoint type against spec.transport",
        lambda: _set(iris(transport="rest"), "spec.predictors.0.graph.endpoint", {"type": "GRPC"}),
        "spec.predictors[0].graph.endpoint.type",
        "contradicts spec.transport 'rest'",
    ),
    # routers and combiners
    (
        "router without children",
        lambda: _router("RANDOM_ABTEST", 0),
        "spec.predictors[0].graph.children",
        "a router needs children",
    ),
    (
        "user router without children",
        lambda: with_graph(node("r", type="ROUTER"), componentSpecs=containers("r")),
        "spec.predictors[0].graph.children",
        "a router needs children",
    ),
    (
        "combiner without children",
        lambda: _router("AVERAGE_COMBINER", 0),
        "spec.predictors[0].graph.children",
        "a combiner needs children",
    ),
    (
        "A/B test with 3 children",
        lambda: _router("RANDOM_ABTEST", 3),
        "spec.predictors[0].graph.children",
        "exactly 2",
    ),
    (
        "ratioA above 1",
        lambda: _router("RANDOM_ABTEST", 2, [_param("ratioA", "1.5", "FLOAT")]),
        "spec.predictors[0].graph.parameters[0].value",
        "between 0 and 1",
    ),
    (
        "ratioA not a FLOAT",
        lambda: _router("RANDOM_ABTEST", 2, [_param("ratioA", "1", "INT")]),
        "spec.predictors[0].graph.parameters[0].type",
        "must be a FLOAT",
    ),
    (
        "built-in with a contradicting type",
        lambda: _set(_router("RANDOM_ABTEST", 2), "spec.predictors.0.graph.type", "COMBINER"),
        "spec.predictors[0].graph.type",
        "RANDOM_ABTEST is a ROUTER",
    ),
    (
        "bandit without n_branches",
        lambda: _router("EPSILON_GREEDY", 2),
        "spec.predictors[0].graph.parameters",
        "n_branches",
    ),
    (
        "bandit with the wrong n_branches",
        lambda: _router("THOMPSON_SAMPLING", 3, [_param("n_branches", "2", "INT")]),
        "spec.predictors[0].graph.parameters[0].value",
        "n_branches is 2 but the node has 3 children",
    ),
    # parameters
    *[
        (
            f"{type_} parameter that does not parse",
            lambda type_=type_, value=value: with_graph(prepackaged(parameters=[_param("p", value, type_)])),
            "spec.predictors[0].graph.parameters[0].value",
            f"{value!r} is not",
        )
        for type_, value in (("INT", "1.5"), ("FLOAT", "fast"), ("DOUBLE", ""), ("BOOL", "maybe"))
    ],
    (
        "parameter of an unknown type",
        lambda: with_graph(prepackaged(parameters=[_param("p", "1", "LONG")])),
        "spec.predictors[0].graph.parameters[0].type",
        "'INT'",
    ),
    (
        "parameter value that YAML made a number",
        lambda: with_graph(prepackaged(parameters=[{"name": "p", "value": 1, "type": "INT"}])),
        "spec.predictors[0].graph.parameters[0].value",
        "quote it",
    ),
    (
        "duplicate parameter",
        lambda: with_graph(prepackaged(parameters=[_param("p", "1", "INT"), _param("p", "2", "INT")])),
        "spec.predictors[0].graph.parameters[1].name",
        "duplicate parameter 'p'",
    ),
    # nested type errors keep their camelCase path
    (
        "port out of range",
        lambda: with_graph(prepackaged(endpoint={"httpPort": 70000})),
        "spec.predictors[0].graph.endpoint.httpPort",
        "65535",
    ),
    (
        "replicas negative in a componentSpec",
        lambda: with_graph(prepackaged(), componentSpecs=[{"replicas": -1, "spec": {"containers": []}}]),
        "spec.predictors[0].componentSpecs[0].replicas",
        "greater than or equal to 0",
    ),
    (
        "label value not a string",
        lambda: _set(iris(), "metadata.labels", {"tier": 1}),
        'metadata.labels["tier"]',
        "string",
    ),
]


@pytest.mark.parametrize(("manifest", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_reports_its_path(manifest: Callable[[], Manifest], path: str, fragment: str) -> None:
    errors = errors_of(manifest())
    assert path in errors, errors
    assert fragment in errors[path]


def test_kind_other_than_seldon_deployment_is_the_only_error() -> None:
    manifest = iris(predictors=[])
    manifest["kind"] = "Deployment"
    assert errors_of(manifest) == {"kind": "must be SeldonDeployment, got 'Deployment'"}


def test_every_problem_is_reported_at_once() -> None:
    manifest = _two(
        predictor("a", node("m", implementation="SKLEARN_SERVER"), traffic=10),
        predictor("a", prepackaged(parameters=[_param("ratio", "x", "FLOAT")]), traffic="abc"),
        protocol="v2",
    )
    manifest["metadata"]["name"] = "Bad_Name"
    manifest["metadata"]["annotations"] = {"seldon.io/retries": "-3"}
    assert set(errors_of(manifest)) == {
        "metadata.name",
        'metadata.annotations["seldon.io/retries"]',
        "spec.predictors[0].graph.modelUri",
        "spec.predictors[1].name",
        "spec.predictors[1].graph.parameters[0].value",
        "spec.predictors[1].traffic",  # a type error, merged with the rule errors
    }


def test_rule_errors_caused_by_a_pruned_field_are_not_reported() -> None:
    # An invalid protocol must not also produce "SKLEARN_SERVER does not support ..." from the default.
    assert set(errors_of(iris(protocol="grpc"))) == {"spec.protocol"}
    # A bad traffic value must not also produce "traffic must sum to 100".
    manifest = _two(predictor("a", prepackaged(), traffic=50), predictor("b", prepackaged(), traffic="half"))
    assert set(errors_of(manifest)) == {"spec.predictors[1].traffic"}


def test_unparseable_list_item_does_not_hide_other_predictors() -> None:
    manifest = _two(predictor("a", prepackaged(), traffic=50), predictor("b", prepackaged(), traffic=50))
    manifest["spec"]["predictors"][0]["graph"]["children"] = ["not-a-node"]
    manifest["spec"]["predictors"][1]["graph"]["modelUri"] = "ftp://x"
    assert set(errors_of(manifest)) == {
        "spec.predictors[0].graph.children[0]",
        "spec.predictors[1].graph.modelUri",
    }


def test_message_names_every_path() -> None:
    manifest = iris(protocol="bogus")
    manifest["metadata"]["name"] = ""
    with pytest.raises(SpecError) as caught:
        parse_deployment(manifest)
    text = str(caught.value)
    assert text.splitlines()[0] == "invalid SeldonDeployment (2 problems):"
    assert "  - spec.protocol: " in text
    assert "  - metadata.name: is required" in text


@pytest.mark.parametrize(
    "uri",
    [
        "/mnt/models/iris",
        "./model",
        "model",
        "file:///models/iris",
        "http://h/m",
        "https://h/m",
        "gs://b/m",
        "s3://b/m",
    ],
)
def test_model_uri_schemes_that_are_accepted(uri: str) -> None:
    parse_deployment(with_graph(prepackaged(modelUri=uri)))


def test_traffic_annotations_that_are_valid() -> None:
    annotations = {
        "seldon.io/retries": "0",
        "seldon.io/retry-on": "5xx,reset, unavailable,deadline-exceeded",
        "seldon.io/per-try-timeout": "250",
        "seldon.io/sticky-header": "X-User-Id",
        "seldon.io/grpc-max-message-size": str(50 * 2**20),
    }
    assert parse_deployment(iris(annotations=annotations)).annotations == annotations


def test_single_predictor_at_100_percent_and_a_shadow_with_a_mirror_share_are_valid() -> None:
    manifest = sample("shadow.yaml")
    manifest["spec"]["predictors"][0]["traffic"] = 100
    manifest["spec"]["predictors"][1]["traffic"] = 30
    assert [p.traffic for p in parse_deployment(manifest).spec.predictors] == [100, 30]


def test_custom_image_lifts_the_protocol_check() -> None:
    # Seldon only checks the protocol when it would pick the server image itself.
    manifest = with_graph(
        node("m", implementation="TRITON_SERVER", modelUri="s3://b/m"),
        componentSpecs=[{"spec": {"containers": [{"name": "m", "image": "example/triton-seldon:1"}]}}],
    )
    parse_deployment(manifest)


def test_several_broken_items_in_one_list_do_not_hide_errors_elsewhere_in_the_node() -> None:
    parameters = [{"name": "a", "value": 1, "type": "INT"}, {"name": "b", "type": "INT"}]
    graph = node("m", implementation="TRITON_SERVER", modelUri="s3://b/m", parameters=parameters)
    assert set(errors_of(with_graph(graph))) == {
        "spec.predictors[0].graph.parameters[0].value",
        "spec.predictors[0].graph.parameters[1].value",
        "spec.predictors[0].graph.implementation",  # TRITON_SERVER under the seldon protocol
    }
