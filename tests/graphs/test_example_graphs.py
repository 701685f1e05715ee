"""Seldon's example graphs through the real Envoy gateway, extproc and real runtimes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import httpx

from generated.inference import dataplane_pb2, dataplane_pb2_grpc
from tests.graphs.client import grpc_predict, many, ndarray, predict
from tests.helpers.mesh import Mesh


def test_input_transformer_then_model(mesh: Mesh) -> None:
    response = predict(mesh, "chain", ndarray([[1, 2]]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"]["ndarray"] == [[4.0, 6.0]]  # (x + 1) * 2
    meta = body["meta"]
    assert meta["tags"] == {"seen_pre": True, "seen_model": True}
    assert meta["routing"] == {"pre": -1}
    assert set(meta["requestPath"]) == {"pre", "model"}
    assert response.headers["Seldon-Puid"] == meta["puid"]
    assert response.headers["Seldon-Predictor"] == "main"


def test_client_puid_and_tags_are_kept(mesh: Mesh) -> None:
    body = {**ndarray([[1, 2]]), "meta": {"puid": "my-request-1", "tags": {"client": "yes"}}}
    meta = predict(mesh, "chain", body).json()["meta"]
    assert meta["puid"] == "my-request-1"
    assert meta["tags"]["client"] == "yes" and meta["tags"]["seen_model"] is True


def test_output_transformer_transformer_model_over_grpc(mesh: Mesh) -> None:
    reply, headers = grpc_predict(mesh, "grpc-chain", ndarray([[1.0]]))
    assert reply["data"]["ndarray"] == [[40.0]]  # ((1 + 1) * 2) * 10
    assert reply["meta"]["tags"] == {"seen_pre": True, "seen_model": True, "seen_post": True}
    assert headers["seldon-predictor"] == "main"
    assert headers["seldon-puid"] == reply["meta"]["puid"]


def test_combiner_over_two_models(mesh: Mesh) -> None:
    body = predict(mesh, "combiner", ndarray([[1.0, 2.0]])).json()
    assert body["data"]["ndarray"] == [[5.0, 10.0]]  # 2x + 3x
    assert body["meta"]["routing"] == {"sum": -1}
    assert body["meta"]["tags"] == {"seen_double": True, "seen_triple": True}


def test_random_abtest_honours_ratio_a(mesh: Mesh) -> None:
    replies = many(mesh, "abtest", ndarray([[1.0]]), 4000)
    to_a = sum(1 for r in replies if r["meta"]["routing"]["ab"] == 0)
    assert abs(to_a / len(replies) - 0.25) <= 0.03, to_a
    assert {tuple(r["meta"]["requestPath"]) for r in replies} == {("ab", "a"), ("ab", "b")}


def test_v2_client_to_seldon_graph_keeps_its_datatype(mesh: Mesh) -> None:
    request = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    response = httpx.post(mesh.gateway + "/seldon/default/chain/v2/models/chain/infer", json=request)
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    assert output == {"name": "output-0", "shape": [1, 2], "datatype": "FP32", "data": [4.0, 6.0]}


def test_v2_grpc_client_to_seldon_graph(mesh: Mesh) -> None:
    tensor = dataplane_pb2.ModelInferRequest.InferInputTensor(
        name="x", datatype="FP64", shape=[1, 1], contents=dataplane_pb2.InferTensorContents(fp64_contents=[1])
    )
    with grpc.insecure_channel(f"127.0.0.1:{mesh.port}") as channel:
        stub = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel)
        reply = stub.ModelInfer(
            dataplane_pb2.ModelInferRequest(model_name="combiner", inputs=[tensor]),
            metadata=(("seldon", "combiner"), ("namespace", "default")),
            timeout=30,
        )
    assert list(reply.outputs[0].contents.fp64_contents) == [5.0]
    assert reply.outputs[0].datatype == "FP64"


def test_python_class_node_in_front_of_mlserver(mesh: Mesh) -> None:
    setosa, virginica = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]
    body = predict(mesh, "mixed", ndarray([setosa, virginica])).json()
    assert body["data"]["ndarray"] == [[0], [2]]
    assert body["meta"]["tags"] == {"seen_scaler": True}
    request = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": virginica}]}
    response = httpx.post(mesh.gateway + "/seldon/default/mixed/v2/models/mixed/infer", json=request)
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    assert output["datatype"] == "INT64" and output["data"] == [2]


def test_graph_metadata(mesh: Mesh) -> None:
    response = httpx.get(mesh.gateway + "/seldon/default/mixed/api/v1.0/metadata")
    assert response.status_code == 200, response.text
    metadata = response.json()
    assert metadata["name"] == "main"
    assert set(metadata["models"]) == {"scaler", "iris"}
    assert {"graphinputs", "graphoutputs"} <= set(metadata)


def test_feedback_reaches_the_models_on_the_path(mesh: Mesh) -> None:
    prediction = predict(mesh, "chain", ndarray([[1, 2]])).json()
    feedback = {"request": ndarray([[1, 2]]), "response": prediction, "reward": 1.0}
    response = httpx.post(mesh.gateway + "/seldon/default/chain/api/v1.0/feedback", json=feedback)
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["routing"] == {"pre": -1}


def test_seldon_clients_reach_a_single_v2_server_through_translation(mesh: Mesh) -> None:
    virginica = [6.7, 3.0, 5.2, 2.3]
    response = predict(mesh, "iris-v2", ndarray([virginica]))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["ndarray"] == [[2]]
    reply, _ = grpc_predict(mesh, "iris-v2", ndarray([virginica]))
    assert reply["data"]["ndarray"] == [[2.0]]
    # V2 clients still go straight to the server (no extproc on the way)
    request = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": virginica}]}
    direct = httpx.post(mesh.gateway + "/seldon/default/iris-v2/v2/models/iris/infer", json=request)
    assert direct.status_code == 200 and direct.json()["model_name"] == "iris"


def test_large_messages_up_to_the_max_message_size_annotation(mesh: Mesh) -> None:
    rows = [[1.0] * 10] * 120_000  # about 6 MB of JSON, above Envoy's 4 MiB retry buffer
    response = predict(mesh, "chain", ndarray(rows), timeout=120)
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["data"]["ndarray"]) == len(rows)
    # no annotation: the default limit, 2 GiB - 1 as in Seldon (over a limit: test_request_limits)
    unannotated = predict(mesh, "combiner", ndarray(rows), timeout=120)
    assert unannotated.status_code == 200, unannotated.text[:300]


def test_grpcurl_calls_a_graph_with_no_proto_files(mesh: Mesh) -> None:
    grpcurl = [str(Path(sys.executable).parent / "grpcurl"), "-plaintext"]
    headers = ["-H", "seldon: grpc-chain", "-H", "namespace: default"]
    target = f"127.0.0.1:{mesh.port}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*grpcurl, *headers, *args], capture_output=True, text=True, timeout=60, check=False
        )

    listed = run(target, "list")
    assert listed.returncode == 0, listed.stderr
    assert "seldon.protos.Seldon" in listed.stdout.split()
    called = run("-d", '{"data":{"ndarray":[[1]]}}', target, "seldon.protos.Seldon/Predict")
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["data"]["ndarray"] == [[40]]
