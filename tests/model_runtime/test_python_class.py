"""User classes (Seldon's Python wrapper contract) in a real runtime process, over REST and gRPC."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator

import grpc
import httpx
import pytest
from google.protobuf import json_format

from generated.seldon import prediction_pb2 as pb
from tests.helpers.ports import free_port
from tests.helpers.runtime import REPO, RunningRuntime, start_runtime
from tests.model_runtime.conftest import TOY_MODELS, python_class, stubs_for

PARAMETERS = json.dumps(
    [
        {"name": "scale", "value": "2.5", "type": "FLOAT"},
        {"name": "offset", "value": "10", "type": "INT"},
        {"name": "label", "value": "blue", "type": "STRING"},
        {"name": "enabled", "value": "false", "type": "BOOL"},
    ]
)


@pytest.fixture(scope="module")
def scaled() -> Iterator[RunningRuntime]:
    env = {"PREDICTIVE_UNIT_ID": "scaler", "PREDICTIVE_UNIT_IMAGE": "example/scaled:1.0"}
    with start_runtime(
        python_class("ScaledModel", "--name", "scaler"), env=env | {"PREDICTIVE_UNIT_PARAMETERS": PARAMETERS}
    ) as runtime:
        yield runtime


def test_parameters_arrive_typed_and_meta_has_tags_metrics_and_request_path(scaled: RunningRuntime) -> None:
    body = {
        "meta": {"tags": {"from_request": 1}, "requestPath": {"upstream": "img:0"}},
        "data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]},
    }
    response = httpx.post(scaled.http_url + "/predict", json=body, headers={"Seldon-Puid": "p-1"})
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["data"]["ndarray"] == [[12.5, 15.0]]
    tags = out["meta"]["tags"]
    assert tags["param_types"] == ["float", "int", "str", "bool"]
    assert tags["enabled"] is False
    assert tags["label"] == "blue"  # per-request tags win over tags()
    assert tags["model"] == "scaled"
    assert tags["from_request"] == 1
    assert tags["seen_puid"] == "p-1"
    assert tags["seen_names"] == ["a", "b"]
    assert out["meta"]["requestPath"] == {"upstream": "img:0", "scaler": "example/scaled:1.0"}
    metrics = {m["key"]: m for m in out["meta"]["metrics"]}
    assert metrics["scale"] == {"type": "GAUGE", "key": "scale", "value": 2.5}
    assert metrics["calls"]["type"] == "COUNTER"


def test_command_line_parameters_win_over_the_environment() -> None:
    env = {"PREDICTIVE_UNIT_PARAMETERS": PARAMETERS}
    params = json.dumps([{"name": "scale", "value": "3", "type": "DOUBLE"}])
    with start_runtime(python_class("ScaledModel", "--parameters", params), env=env) as runtime:
        out = httpx.post(runtime.http_url + "/predict", json={"data": {"ndarray": [[1.0]]}}).json()
        assert out["data"]["ndarray"] == [[3.0]]
        assert out["meta"]["requestPath"] == {"model": ""}


def test_user_bad_request_is_400_and_grpc_invalid_argument(scaled: RunningRuntime) -> None:
    response = httpx.post(scaled.http_url + "/predict", json={"data": {"ndarray": [[-5000.0]]}})
    assert response.status_code == 400
    assert response.json()["status"]["info"] == "values below -1000 are not accepted"


def test_feedback_passes_reward_truth_and_routing(scaled: RunningRuntime) -> None:
    feedback = {
        "request": {"data": {"ndarray": [[1.0, 2.0]]}},
        "response": {"meta": {"routing": {"scaler": 1}}, "data": {"ndarray": [[0.1, 0.9]]}},
        "reward": 0.75,
        "truth": {"data": {"ndarray": [[0.0, 1.0]]}},
    }
    for path in ("/send-feedback", "/api/v1.0/feedback"):
        out = httpx.post(scaled.http_url + path, json=feedback).json()
        assert out["jsonData"]["rewards"][-1] == 0.75
        assert out["jsonData"]["routing"] == 1
        assert out["jsonData"]["truth"] == [[0.0, 1.0]]


def test_feedback_over_grpc(scaled: RunningRuntime) -> None:
    feedback = json_format.ParseDict(
        {
            "request": {"data": {"ndarray": [[1.0]]}},
            "response": {"meta": {"routing": {"scaler": 0}}},
            "reward": 2,
        },
        pb.Feedback(),
    )
    channel, stubs = stubs_for(scaled)
    with channel:
        for send in (stubs.model.SendFeedback, stubs.seldon.SendFeedback, stubs.generic.SendFeedback):
            reply = json_format.MessageToDict(send(feedback).jsonData)
            assert reply["rewards"][-1] == 2.0
            assert reply["routing"] == 0


def test_custom_health_status(scaled: RunningRuntime) -> None:
    out = httpx.get(scaled.http_url + "/health/status").json()
    assert out["data"]["ndarray"][0][0] == 2.5


def test_user_metadata_over_rest_and_grpc(scaled: RunningRuntime) -> None:
    metadata = httpx.get(scaled.http_url + "/metadata").json()
    assert metadata["versions"] == ["v1"]
    assert metadata["custom"] == {"author": "tests"}
    channel, stubs = stubs_for(scaled)
    with channel:
        model = stubs.seldon.ModelMetadata(pb.SeldonModelMetadataRequest(name="scaler"))
        assert model.platform == "python"
        assert list(model.inputs[0].schema.struct_value["names"]) == ["a", "b"]


def test_grpc_predict_with_tags_and_metrics(scaled: RunningRuntime) -> None:
    channel, stubs = stubs_for(scaled)
    with channel:
        request = json_format.ParseDict(
            {"data": {"tensor": {"shape": [1, 2], "values": [1, 2]}}}, pb.SeldonMessage()
        )
        response = stubs.model.Predict(request)
        assert list(response.data.tensor.values) == [12.5, 15.0]
        assert response.meta.tags["label"].string_value == "blue"
        assert {m.key for m in response.meta.metrics} == {"scale", "calls"}
        assert dict(response.meta.requestPath) == {"scaler": "example/scaled:1.0"}


@pytest.fixture(scope="module")
def kinds() -> Iterator[RunningRuntime]:
    with start_runtime(python_class("Kinds")) as runtime:
        yield runtime


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        ({"strData": "hello"}, {"strData": "HELLO"}),
        ({"binData": base64.b64encode(b"abc").decode()}, {"binData": base64.b64encode(b"cba").decode()}),
        ({"jsonData": {"x": [1, 2]}}, {"jsonData": {"echo": {"x": [1, 2]}, "names": []}}),
        (
            {"data": {"ndarray": [["a", "b"]]}},
            {"data": {"names": ["first", "second"], "ndarray": [["A", "B"]]}},
        ),
        (
            {"data": {"tensor": {"shape": [1, 2], "values": [1, 2]}}},
            {"data": {"names": ["first", "second"], "tensor": {"shape": [1, 2], "values": [1.0, 2.0]}}},
        ),
        # non-numeric output always comes back as ndarray
        (
            {
                "data": {
                    "tftensor": {
                        "dtype": "DT_STRING",
                        "tensorShape": {"dim": [{"size": 1}]},
                        "stringVal": ["eA=="],
                    }
                }
            },
            {"data": {"names": [], "ndarray": ["X"]}},
        ),
    ],
)
def test_two_argument_predict_answers_each_kind_in_kind(
    kinds: RunningRuntime, request_body: dict[str, object], expected: dict[str, object]
) -> None:
    out = httpx.post(kinds.http_url + "/predict", json=request_body).json()
    out.pop("meta")
    assert out == expected


def test_grpc_kinds(kinds: RunningRuntime) -> None:
    channel, stubs = stubs_for(kinds)
    with channel:
        assert stubs.seldon.Predict(pb.SeldonMessage(strData="hi")).strData == "HI"
        assert stubs.seldon.Predict(pb.SeldonMessage(binData=b"xyz")).binData == b"zyx"
        request = json_format.ParseDict({"jsonData": {"k": "v"}}, pb.SeldonMessage())
        out = json_format.MessageToDict(stubs.seldon.Predict(request).jsonData)
        assert out == {"echo": {"k": "v"}, "names": []}


def test_user_code_on_worker_threads() -> None:
    with start_runtime(python_class("ScaledModel", "--threads", "2")) as runtime:
        with httpx.Client() as client:
            for value in range(5):
                out = client.post(runtime.http_url + "/predict", json={"data": {"ndarray": [[value]]}}).json()
                assert out["data"]["ndarray"] == [[float(value)]]
        channel, stubs = stubs_for(runtime)
        with channel:
            request = json_format.ParseDict({"data": {"ndarray": [[3.0]]}}, pb.SeldonMessage())
            assert json_format.MessageToDict(stubs.model.Predict(request).data)["ndarray"] == [[3.0]]


def test_exception_in_user_code_is_500_and_grpc_internal() -> None:
    with start_runtime(python_class("Broken")) as runtime:
        response = httpx.post(runtime.http_url + "/predict", json={"data": {"ndarray": [[1.0]]}})
        assert response.status_code == 500
        status = response.json()["status"]
        assert status["reason"] == "MICROSERVICE_INTERNAL_ERROR"
        assert "ZeroDivisionError" in status["info"]
        assert "divided by zero" in status["info"]
        channel, stubs = stubs_for(runtime)
        with channel, pytest.raises(grpc.RpcError) as error:
            stubs.model.Predict(json_format.ParseDict({"data": {"ndarray": [[1.0]]}}, pb.SeldonMessage()))
        assert error.value.code() == grpc.StatusCode.INTERNAL
        assert "divided by zero" in str(error.value.details())
        assert runtime.is_running()
        assert httpx.get(runtime.http_url + "/ready").status_code == 200


def test_transformer_over_rest_and_grpc() -> None:
    with start_runtime(python_class("Transformer", "--service-type", "TRANSFORMER")) as runtime:
        body = {"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]}}
        out = httpx.post(runtime.http_url + "/transform-input", json=body).json()
        assert out["data"] == {"names": ["doubled_a", "doubled_b"], "ndarray": [[2.0, 4.0]]}
        out = httpx.post(runtime.http_url + "/transform-output", json=body).json()
        assert out["data"] == {"names": ["a", "b"], "ndarray": [[2.0, 3.0]]}
        # a one-node TRANSFORMER graph: the external predictions path transforms the input
        out = httpx.post(runtime.http_url + "/api/v1.0/predictions", json=body).json()
        assert out["data"]["ndarray"] == [[2.0, 4.0]]
        # predict is not part of a transformer
        assert httpx.post(runtime.http_url + "/predict", json=body).status_code == 501
        channel, stubs = stubs_for(runtime)
        with channel:
            request = json_format.ParseDict(body, pb.SeldonMessage())
            assert json_format.MessageToDict(stubs.transformer.TransformInput(request).data)["ndarray"] == [
                [2.0, 4.0]
            ]
            out_message = stubs.output_transformer.TransformOutput(request)
            assert json_format.MessageToDict(out_message.data)["ndarray"] == [[2.0, 3.0]]
            assert json_format.MessageToDict(stubs.seldon.Predict(request).data)["ndarray"] == [[2.0, 4.0]]


def test_router_wraps_the_route_as_a_nested_list() -> None:
    with start_runtime(python_class("Router", "--service-type", "ROUTER")) as runtime:
        positive = httpx.post(runtime.http_url + "/route", json={"data": {"ndarray": [[3.0]]}}).json()
        assert positive["data"]["ndarray"] == [[1]]
        negative = httpx.post(runtime.http_url + "/route", json={"data": {"ndarray": [[-3.0]]}}).json()
        assert negative["data"]["ndarray"] == [[0]]
        channel, stubs = stubs_for(runtime)
        with channel:
            request = json_format.ParseDict(
                {"data": {"tensor": {"shape": [1, 1], "values": [5]}}}, pb.SeldonMessage()
            )
            for route in (stubs.router.Route, stubs.generic.Route):
                reply = route(request)
                assert list(reply.data.tensor.values) == [1.0]


def test_combiner_averages_children() -> None:
    with start_runtime(python_class("Combiner", "--service-type", "COMBINER")) as runtime:
        children = [{"data": {"ndarray": [[1.0, 3.0]]}}, {"data": {"ndarray": [[3.0, 5.0]]}}]
        out = httpx.post(runtime.http_url + "/aggregate", json={"seldonMessages": children}).json()
        assert out["data"]["ndarray"] == [[2.0, 4.0]]
        assert out["data"]["names"] == ["t:0", "t:1"]
        channel, stubs = stubs_for(runtime)
        with channel:
            message_list = json_format.ParseDict({"seldonMessages": children}, pb.SeldonMessageList())
            reply = stubs.combiner.Aggregate(message_list)
            assert json_format.MessageToDict(reply.data)["ndarray"] == [[2.0, 4.0]]


def test_raw_methods_see_the_wire_form() -> None:
    with start_runtime(python_class("RawModel")) as runtime:
        out = httpx.post(runtime.http_url + "/predict", json={"data": {"ndarray": [[1]]}, "meta": {}}).json()
        assert out == {"jsonData": {"transport": "rest", "keys": ["data", "meta"]}}
        channel, stubs = stubs_for(runtime)
        with channel:
            assert stubs.model.Predict(pb.SeldonMessage(strData="x")).strData == "grpc:strData"


def test_a_bad_parameter_stops_startup_with_a_clear_error() -> None:
    params = json.dumps([{"name": "offset", "value": "ten", "type": "INT"}])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_runtime",
            *python_class("ScaledModel", "--parameters", params),
            "--http-port",
            "1",
            "--grpc-port",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "parameter 'offset': 'ten' is not a valid INT" in result.stderr


def test_seldon_core_microservice_command_line() -> None:
    params = json.dumps([{"name": "scale", "value": "4", "type": "FLOAT"}])
    metrics_port = free_port()
    with start_runtime(
        ["ScaledModel", "--service-type", "MODEL", "--parameters", params, "--host", "127.0.0.1"],
        cwd=TOY_MODELS,
        module="model_runtime.microservice",
        env={"PREDICTIVE_UNIT_METRICS_SERVICE_PORT": str(metrics_port), "PREDICTIVE_UNIT_ID": "scaled"},
    ) as runtime:
        out = httpx.post(
            runtime.http_url + "/api/v1.0/predictions", json={"data": {"ndarray": [[1.0]]}}
        ).json()
        assert out["data"]["ndarray"] == [[4.0]]
        # custom metrics on Seldon's metrics port and path, labelled with the node
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/prometheus").text
        assert 'scale{deployment_name="",image_name="",image_version="",method="predict",' in scraped
        assert 'model_name="scaled"' in scraped
        assert 'calls_total{deployment_name=""' in scraped
