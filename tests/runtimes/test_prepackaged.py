"""Every prepackaged runtime loads a fixture-trained model and answers Seldon v1 and V2 (REST and gRPC)
with the numbers the library itself gives."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from generated.inference import dataplane_pb2 as v2
from generated.inference import dataplane_pb2_grpc as v2_grpc
from tests.helpers.runtime import RunningRuntime, start_runtime
from tests.runtimes import models

pytestmark = [
    # mlflow and its helpers warn about their own internals at import and load time
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*"),
]

ROWS = models.iris()[0][[0, 60, 120]]  # one row of each class


def _expected(implementation: str, folder: Path) -> np.ndarray:
    """What the library predicts in this process (the runtime must return the same)."""
    if implementation == "SKLEARN_SERVER":
        import joblib

        return np.asarray(joblib.load(folder / "model.joblib").predict_proba(ROWS))
    if implementation == "XGBOOST_SERVER":
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(str(folder / "model.json"))
        return np.asarray(booster.predict(xgboost.DMatrix(ROWS)))
    if implementation == "LIGHTGBM_SERVER":
        import lightgbm

        return np.asarray(lightgbm.Booster(model_file=str(folder / "model.txt")).predict(ROWS))
    if implementation == "ONNX_SERVER":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return np.asarray(session.run(None, {name: ROWS.astype(np.float32)})[0])
    import mlflow.pyfunc
    import pandas as pd

    frame = pd.DataFrame(ROWS, columns=models.MLFLOW_COLUMNS)
    return np.asarray(mlflow.pyfunc.load_model(str(folder)).predict(frame))


IMPLEMENTATIONS = ["SKLEARN_SERVER", "XGBOOST_SERVER", "LIGHTGBM_SERVER", "ONNX_SERVER", "MLFLOW_SERVER"]


@pytest.fixture(scope="module")
def runtimes(model_folders: dict[str, Path]) -> Iterator[dict[str, RunningRuntime]]:
    """All five runtimes, started side by side (their imports and loads overlap instead of queueing)."""
    managers = {
        name: start_runtime(
            ["--implementation", name, "--model-uri", str(model_folders[name]), "--name", "clf"], timeout=120
        )
        for name in IMPLEMENTATIONS
    }
    with ThreadPoolExecutor(len(managers)) as pool:
        starting = {name: pool.submit(manager.__enter__) for name, manager in managers.items()}
    entered: dict[str, RunningRuntime] = {}
    try:
        for name, future in starting.items():
            if future.exception() is None:
                entered[name] = future.result()
        for future in starting.values():
            future.result()  # re-raise the first start failure, after keeping the others for cleanup
        yield entered
    finally:
        for name in entered:
            managers[name].__exit__(None, None, None)


@pytest.fixture(params=IMPLEMENTATIONS)
def served(request: pytest.FixtureRequest, runtimes: dict[str, RunningRuntime]) -> tuple[str, RunningRuntime]:
    return request.param, runtimes[request.param]


def test_v1_and_v2_give_the_library_numbers(
    served: tuple[str, RunningRuntime], model_folders: dict[str, Path]
) -> None:
    implementation, runtime = served
    expected = _expected(implementation, model_folders[implementation])

    v1 = httpx.post(runtime.http_url + "/api/v1.0/predictions", json={"data": {"ndarray": ROWS.tolist()}})
    assert v1.status_code == 200, v1.text
    v1_numbers = np.asarray(v1.json()["data"]["ndarray"])

    body = {
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": list(ROWS.shape), "data": ROWS.ravel().tolist()}
        ]
    }
    rest = httpx.post(runtime.http_url + "/v2/models/clf/infer", json=body)
    assert rest.status_code == 200, rest.text
    output = rest.json()["outputs"][0]
    rest_numbers = np.asarray(output["data"]).reshape(output["shape"])

    with grpc.insecure_channel(runtime.grpc_target) as channel:
        request = v2.ModelInferRequest(model_name="clf")
        request.inputs.add(name="x", datatype="FP64", shape=list(ROWS.shape))
        request.raw_input_contents.append(ROWS.astype("<f8").tobytes())
        reply = v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    grpc_out = reply.outputs[0]
    dtype = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8"}[grpc_out.datatype]
    grpc_numbers = np.frombuffer(reply.raw_output_contents[0], dtype=dtype).reshape(list(grpc_out.shape))

    np.testing.assert_allclose(v1_numbers, expected, rtol=1e-6)
    np.testing.assert_allclose(rest_numbers, v1_numbers, rtol=1e-6)
    np.testing.assert_allclose(grpc_numbers, v1_numbers, rtol=1e-6)
    classes = expected if expected.ndim == 1 else expected.argmax(axis=1)  # labels or probabilities
    assert classes.tolist() == [0, 1, 2]


def test_v2_metadata_describes_the_model(served: tuple[str, RunningRuntime]) -> None:
    implementation, runtime = served
    response = httpx.get(runtime.http_url + "/v2/models/clf")
    assert response.status_code == 200, response.text
    meta = response.json()
    assert meta["name"] == "clf"
    assert meta["platform"]
    assert meta["inputs"], meta
    if implementation == "MLFLOW_SERVER":  # the signature's columns
        assert [i["name"] for i in meta["inputs"]] == models.MLFLOW_COLUMNS
        assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    else:
        assert meta["inputs"][0]["shape"][-1] == 4


def test_bytes_to_a_numeric_model_is_a_400_and_the_runtime_keeps_serving(
    served: tuple[str, RunningRuntime],
) -> None:
    _, runtime = served
    body = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1, 4], "data": ["a", "b", "c", "d"]}]}
    response = httpx.post(runtime.http_url + "/v2/models/clf/infer", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert httpx.get(runtime.http_url + "/v2/models/clf/ready").status_code == 200


def test_xgboost_falls_back_to_model_bst(tmp_path: Path) -> None:
    models.xgboost_model(tmp_path, "model.bst")
    with start_runtime(["--implementation", "XGBOOST_SERVER", "--model-uri", str(tmp_path)]) as runtime:
        response = httpx.post(runtime.http_url + "/predict", json={"data": {"ndarray": ROWS.tolist()}})
        assert response.status_code == 200, response.text
        assert np.asarray(response.json()["data"]["ndarray"]).argmax(axis=1).tolist() == [0, 1, 2]


def test_a_model_that_fails_to_load_leaves_the_runtime_up_and_not_ready(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text("{not a booster")
    args = ["--implementation", "XGBOOST_SERVER", "--model-uri", str(tmp_path), "--name", "clf"]
    with start_runtime(args, wait_ready=False) as runtime:
        ready = _wait_for_failure(runtime)
        status = ready.json()["status"]
        assert status["reason"] == "MICROSERVICE_LOAD_FAILED"
        assert "model.json" in status["info"]
        v2_ready = httpx.get(runtime.http_url + "/v2/health/ready")
        assert v2_ready.status_code == 503
        assert "model.json" in v2_ready.json()["error"]
        index = httpx.post(runtime.http_url + "/v2/repository/index").json()
        assert index[0]["state"] == "UNAVAILABLE"
        assert "model.json" in index[0]["reason"]
        assert runtime.is_running()


def _wait_for_failure(runtime: RunningRuntime) -> httpx.Response:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = httpx.get(runtime.http_url + "/ready")
        if response.status_code == 503 and response.json()["status"]["reason"] != "MICROSERVICE_NOT_READY":
            return response
        time.sleep(0.05)
    raise AssertionError(f"the load never failed\n{runtime.log()}")
