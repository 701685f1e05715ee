"""HUGGINGFACE_SERVER in a real runtime process: a tiny text classifier built by the test (no hub
download: HF_HUB_OFFLINE=1) answers V2 over REST and gRPC with what the transformers pipeline itself
answers, in MLServer's `hg_jsonlist` shape; bad requests get a V2 400 (gRPC INVALID_ARGUMENT) and the
process keeps serving; a model that cannot load says why in `/ready`; `optimum_model` runs it on ONNX
Runtime with the same answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from generated.inference import dataplane_pb2 as v2
from generated.inference import dataplane_pb2_grpc as v2_grpc
from tests.helpers.huggingface import LABELS, build_text_classifier, pipeline_answers
from tests.helpers.mesh import wait_for
from tests.helpers.runtime import RunningRuntime, start_runtime

TEXTS = ["good movie", "the movie is awful", "great"]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def parameters(**values: Any) -> str:
    types = {bool: "BOOL", int: "INT", str: "STRING"}
    return json.dumps([{"name": k, "value": str(v), "type": types[type(v)]} for k, v in values.items()])


def hf_runtime(folder: Path | None, wait_ready: bool = True, **values: Any) -> Any:
    env = {**OFFLINE, "PREDICTIVE_UNIT_PARAMETERS": parameters(**values)}
    args = ["--implementation", "HUGGINGFACE_SERVER", "--name", "sentiment"]
    args += ["--model-uri", str(folder)] if folder else []
    return start_runtime(args, env=env, timeout=180, wait_ready=wait_ready)


@pytest.fixture(scope="session")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_text_classifier(tmp_path_factory.mktemp("hf") / "sentiment")


@pytest.fixture(scope="module")
def expected(classifier: Path) -> list[dict[str, Any]]:
    """What the pipeline answers in this process (the runtime must answer the same)."""
    return pipeline_answers(classifier, TEXTS)


@pytest.fixture(scope="module")
def runtime(classifier: Path) -> Iterator[RunningRuntime]:
    with hf_runtime(classifier, task="text-classification") as running:
        yield running


def infer(runtime: RunningRuntime, *inputs: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{runtime.http_url}/v2/models/sentiment/infer", json={"inputs": list(inputs)}, timeout=60
    )


def texts(name: str, items: list[str], content_type: str | None = "str") -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": name, "datatype": "BYTES", "shape": [len(items)], "data": items}
    if content_type:
        tensor["parameters"] = {"content_type": content_type}
    return tensor


def jsonlist(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert (output["name"], output["datatype"]) == ("output", "BYTES")
    assert output["parameters"] == {"content_type": "hg_jsonlist"}
    assert output["shape"] == [len(output["data"]), 1]
    return [json.loads(item) for item in output["data"]]


def test_rest_answers_what_the_pipeline_answers(runtime: RunningRuntime, expected: list[Any]) -> None:
    assert jsonlist(infer(runtime, texts("array_inputs", TEXTS))) == expected
    assert jsonlist(infer(runtime, texts("args", TEXTS[:1], content_type=None))) == expected[:1]
    assert {answer["label"] for answer in expected} <= set(LABELS.values())
    assert len({answer["score"] for answer in expected}) == len(TEXTS)  # each text its own score


def test_other_inputs_are_keyword_arguments(runtime: RunningRuntime) -> None:
    top_k = {
        "name": "top_k",
        "datatype": "INT32",
        "shape": [1],
        "data": [2],
        "parameters": {"content_type": "raw"},
    }
    ranked = jsonlist(infer(runtime, texts("args", ["good movie"]), top_k))  # one text: its top 2 labels
    assert sorted(item["label"] for item in ranked) == sorted(LABELS.values())
    assert sum(item["score"] for item in ranked) == pytest.approx(1.0)


def test_grpc_answers_what_rest_answers(runtime: RunningRuntime, expected: list[Any]) -> None:
    request = v2.ModelInferRequest(model_name="sentiment", id="grpc-1")
    tensor = request.inputs.add(name="array_inputs", datatype="BYTES", shape=[len(TEXTS)])
    tensor.parameters["content_type"].string_param = "str"
    tensor.contents.bytes_contents.extend(t.encode() for t in TEXTS)
    with grpc.insecure_channel(runtime.grpc_target) as channel:
        reply = v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    (output,) = reply.outputs
    assert (reply.id, output.name, list(output.shape)) == ("grpc-1", "output", [len(TEXTS), 1])
    assert output.parameters["content_type"].string_param == "hg_jsonlist"
    assert [json.loads(item) for item in output.contents.bytes_contents] == expected


def test_metadata_names_the_task_inputs_and_the_jsonlist_output(runtime: RunningRuntime) -> None:
    meta = httpx.get(f"{runtime.http_url}/v2/models/sentiment").json()
    assert meta["platform"] == "huggingface"
    assert [i["name"] for i in meta["inputs"]] == ["args"]
    assert meta["outputs"][0]["parameters"] == {"content_type": "hg_jsonlist"}


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([texts("args", ["x"], content_type="zzz")], "unknown content_type"),
        ([texts("doc", ["{not json"], content_type="hg_json")], "is not JSON"),
        ([texts("args", ["good", "bad"])], "array_inputs"),  # two positional arguments: a hint says why
        ([{"name": "array_inputs", "datatype": "INT32", "shape": [2], "data": [1, 2]}], "cannot run"),
        ([texts("args", ["good"]), texts("no_such_argument", ["x"])], "cannot run"),
        ([texts("args", [" ".join(["movie"] * 100)])], "cannot run"),  # past the 32 positions of the model
    ],
)
def test_bad_requests_get_a_v2_400_and_the_runtime_serves_on(
    runtime: RunningRuntime, inputs: list[dict[str, Any]], message: str
) -> None:
    response = infer(runtime, *inputs)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert infer(runtime, texts("args", ["good"])).status_code == 200


def test_a_bad_grpc_request_is_invalid_argument(runtime: RunningRuntime) -> None:
    request = v2.ModelInferRequest(model_name="sentiment")
    tensor = request.inputs.add(name="args", datatype="BYTES", shape=[1])
    tensor.parameters["content_type"].string_param = "hg_jsonlist"
    tensor.contents.bytes_contents.append(b"[not json")
    with grpc.insecure_channel(runtime.grpc_target) as channel, pytest.raises(grpc.RpcError) as error:
        v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not JSON" in str(error.value.details())


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({}, "needs the `task` parameter"),
        ({"task": "no-such-task"}, "is not a transformers pipeline task"),
        ({"task": "text-classification", "model_kwargs": "[1]"}, "must be a JSON object"),
        ({"task": "text-classification", "folder": "empty"}, "config.json missing"),
    ],
)
def test_a_runtime_that_cannot_load_says_why(
    classifier: Path, tmp_path: Path, values: dict[str, Any], reason: str
) -> None:
    folder = tmp_path if values.pop("folder", None) else classifier
    with hf_runtime(folder, wait_ready=False, **values) as running:
        status = wait_for(
            lambda: (
                (s := httpx.get(running.http_url + "/ready", timeout=10).json()["status"])["reason"]
                == "MICROSERVICE_LOAD_FAILED"
                and s
            ),
            120,
            "the load to fail",
        )
        assert reason in status["info"]
        assert infer(running, texts("args", ["good"])).status_code == 503
        assert running.is_running()


def test_optimum_model_runs_on_onnx_runtime_with_the_same_answers(
    classifier: Path, expected: list[dict[str, Any]]
) -> None:
    """Also a model named by `pretrained_model` (a path here, a hub id elsewhere), with no modelUri."""
    values = {"task": "sentiment-analysis", "optimum_model": True, "pretrained_model": str(classifier)}
    with hf_runtime(None, **values) as running:
        answers = jsonlist(infer(running, texts("array_inputs", TEXTS)))
    assert [a["label"] for a in answers] == [e["label"] for e in expected]
    assert [a["score"] for a in answers] == pytest.approx([e["score"] for e in expected], rel=1e-4)
