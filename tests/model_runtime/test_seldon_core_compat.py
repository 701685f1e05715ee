"""User code written for Seldon's `seldon_core` package runs unchanged: classes from seldon_core_models/,
served by real runtime processes (`seldon-mesh-runtime --class` and `seldon-core-microservice`), called
over REST and gRPC."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import json_format

import seldon_core
from generated.seldon import prediction_pb2 as pb
from seldon_core.flask_utils import SeldonMicroserviceException
from seldon_core.metrics import create_counter, validate_metrics
from tests.helpers.ports import free_port
from tests.helpers.runtime import REPO, RunningRuntime, start_runtime
from tests.model_runtime.conftest import stubs_for

MODELS = Path(__file__).resolve().parent / "seldon_core_models"
ROWS = {"data": {"names": ["a", "b"], "ndarray": [[0.25, 3.0]]}}


def _class(name: str, *extra: str) -> list[str]:
    return ["--class", name, "--code-dir", str(MODELS), *extra]


def _env(**extra: str) -> dict[str, str]:
    # the user class imports seldon_core from this checkout: no Seldon package is installed here
    return {"PYTHONPATH": str(REPO), **extra}


@pytest.fixture(scope="module")
def iris() -> Iterator[tuple[RunningRuntime, int, int]]:
    metrics_port, custom_port = free_port(), free_port()
    params = json.dumps([{"name": "multiplier", "value": "2", "type": "FLOAT"}])
    env = _env(PREDICTIVE_UNIT_ID="iris", CUSTOM_SERVICE_PORT=str(custom_port))
    with start_runtime(
        _class("IrisClassifier", "--parameters", params, "--metrics-port", str(metrics_port)), env=env
    ) as runtime:
        yield runtime, metrics_port, custom_port


def test_seldons_package_is_not_installed_and_ours_is_the_shim() -> None:
    assert Path(seldon_core.__file__).parent == REPO / "seldon_core"
    error = SeldonMicroserviceException("bad", status_code=418, reason="TEAPOT")
    assert error.to_dict() == {"status": {"status": 1, "info": "bad", "code": -1, "reason": "TEAPOT"}}
    assert validate_metrics([create_counter("c", 1)])
    assert validate_metrics([{"type": "HISTOGRAM", "key": "c", "value": 1}])  # Seldon 1.15's fourth type
    assert not validate_metrics([{"type": "SUMMARY", "key": "c", "value": 1}])


def test_predict_with_class_names_tags_and_runtime_metrics(iris: tuple[RunningRuntime, int, int]) -> None:
    runtime, _, _ = iris
    response = httpx.post(runtime.http_url + "/api/v1.0/predictions", json=ROWS)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["data"]["names"] == ["setosa", "versicolor"]  # class_names as an attribute
    assert out["data"]["ndarray"] == [[0.5, 0.5]]  # multiplier=2 from the typed parameters
    assert out["meta"]["tags"] == {"model": "iris", "loaded": True}  # load() ran before serving
    assert {m["key"] for m in out["meta"]["metrics"]} >= {"iris_requests", "iris_gauge", "iris_timer"}


def test_exception_status_and_reason_reach_rest_clients(iris: tuple[RunningRuntime, int, int]) -> None:
    runtime, _, _ = iris
    response = httpx.post(runtime.http_url + "/predict", json={"data": {"ndarray": [[-1.0, 2.0]]}})
    assert response.status_code == 400
    status = response.json()["status"]
    assert (status["info"], status["reason"]) == ("negative measurements", "MY_REASON")
    response = httpx.post(runtime.http_url + "/predict", json={"data": {"ndarray": [[5000.0, 2.0]]}})
    assert response.status_code == 422
    assert response.json()["status"]["reason"] == "OUT_OF_RANGE"


def test_exception_status_reaches_grpc_clients(iris: tuple[RunningRuntime, int, int]) -> None:
    runtime, _, _ = iris
    channel, stubs = stubs_for(runtime)
    with channel:
        good = json_format.ParseDict(ROWS, pb.SeldonMessage())
        reply = stubs.model.Predict(good, timeout=10)
        assert list(reply.data.names) == ["setosa", "versicolor"]
        bad = json_format.ParseDict({"data": {"ndarray": [[-1.0, 2.0]]}}, pb.SeldonMessage())
        with pytest.raises(grpc.RpcError) as error:
            stubs.model.Predict(bad, timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.value.details() == "negative measurements"


def test_init_metadata_health_status_and_feedback(iris: tuple[RunningRuntime, int, int]) -> None:
    runtime, _, _ = iris
    metadata = httpx.get(runtime.http_url + "/api/v1.0/metadata").json()
    assert (metadata["name"], metadata["versions"], metadata["custom"]) == (
        "iris",
        ["iris/v1"],
        {"team": "migration"},
    )
    feedback = {"request": ROWS, "reward": 1.0}
    assert httpx.post(runtime.http_url + "/api/v1.0/feedback", json=feedback).status_code == 200
    health = httpx.get(runtime.http_url + "/health/status").json()
    assert health["jsonData"]["healthy"] is True
    assert health["jsonData"]["rewards"] >= 1


def test_custom_metrics_on_the_metrics_port(iris: tuple[RunningRuntime, int, int]) -> None:
    runtime, metrics_port, _ = iris
    assert httpx.post(runtime.http_url + "/predict", json=ROWS).status_code == 200
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/prometheus").text
    assert "iris_gauge{" in scraped
    assert "iris_requests_total{" in scraped
    assert "iris_timer_bucket{" in scraped


def test_custom_service_runs_beside_the_model(iris: tuple[RunningRuntime, int, int]) -> None:
    _, _, custom_port = iris
    reply = httpx.get(f"http://127.0.0.1:{custom_port}/")
    assert reply.text == "custom service of a model loaded=True"


def test_raw_methods_keep_their_semantics() -> None:
    args = _class("RawTransformer", "--service-type", "TRANSFORMER")
    with start_runtime(args, env=_env()) as runtime:
        out = httpx.post(runtime.http_url + "/transform-input", json={"data": {"ndarray": [[1, 2]]}}).json()
        assert out["data"] == {"names": ["doubled"], "ndarray": [[2, 4]]}
        channel, stubs = stubs_for(runtime)
        with channel:
            reply = stubs.transformer.TransformInput(pb.SeldonMessage(strData="x"), timeout=10)
            assert reply.strData == "raw grpc transform"
    with start_runtime(_class("RawTransformer"), env=_env()) as runtime:
        out = httpx.post(runtime.http_url + "/predict", json={"strData": "hi", "meta": {}}).json()
        assert out["jsonData"] == {"raw": True, "keys": ["meta", "strData"]}


def test_model_error_handler_makes_the_reply() -> None:
    with start_runtime(_class("ErrorHandlerModel"), env=_env()) as runtime:
        response = httpx.post(runtime.http_url + "/predict", json=ROWS)
        assert response.status_code == 402
        assert response.json() == {"status": {"status": 402, "message": "Test-Error-Msg", "app_code": 1402}}


def test_seldon_core_microservice_accepts_seldons_flags_and_environment() -> None:
    metrics_port = free_port()
    seldon_flags = [
        "IrisClassifier",
        "--service-type",
        "MODEL",
        "--workers",
        "1",
        "--threads",
        "2",
        "--max-requests",
        "1000",
        "--max-requests-jitter",
        "50",
        "--keepalive",
        "2",
        "--single-threaded",
        "--log-level",
        "info",
        "--metrics-port",
        str(metrics_port),
        "--grpc-workers",
        "2",
        "--some-future-flag",
        "--host",
        "127.0.0.1",
    ]
    env = _env(
        CUSTOM_SERVICE_PORT=str(free_port()),
        GUNICORN_MAX_REQUESTS="99",  # the flag wins, as in Seldon
        PERSISTENCE="1",
        SELDON_DEBUG="true",
    )
    with start_runtime(seldon_flags, cwd=MODELS, env=env, module="seldon_core.microservice") as runtime:
        out = httpx.post(runtime.http_url + "/api/v1.0/predictions", json=ROWS).json()
        assert out["data"]["names"] == ["setosa", "versicolor"]
        log = runtime.log()
    for line in (
        "--max-requests 1000 ignored",
        "--max-requests-jitter 50 ignored",
        "--keepalive 2 ignored",
        "$PERSISTENCE 1 ignored",
        "$SELDON_DEBUG ignored",
        "--single-threaded ignored",
        "--grpc-workers 2 ignored",
        "unknown arguments ignored: --some-future-flag",
    ):
        assert line in log, log


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "seldon-core-microservice"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "--service-type" in result.stdout


def test_storage_download_as_custom_servers_call_it(tmp_path: Path) -> None:
    from seldon_core.storage import Storage

    source = tmp_path / "model"
    source.mkdir()
    (source / "model.joblib").write_bytes(b"w")
    out = tmp_path / "out"
    assert Storage.download(str(source), str(out)) == str(out)
    assert (out / "model.joblib").read_bytes() == b"w"
    assert Storage.download(str(source)) == str(source)


def test_the_protos_are_the_runtimes() -> None:
    import seldon_core.proto.prediction_pb2_grpc as shim_grpc  # the module form imports too

    from generated.seldon import prediction_pb2_grpc
    from seldon_core.proto import prediction_pb2 as shim_pb2

    assert shim_pb2.SeldonMessage is pb.SeldonMessage
    assert shim_grpc.ModelStub is prediction_pb2_grpc.ModelStub


def test_utils_convert_messages_as_predict_raw_code_expects(monkeypatch: pytest.MonkeyPatch) -> None:
    from seldon_core.utils import (
        get_data_from_proto,
        getenv_as_bool,
        json_to_seldon_message,
        seldon_message_to_json,
    )

    message = json_to_seldon_message({"data": {"tensor": {"shape": [1, 2], "values": [1.0, 2.0]}}})
    assert get_data_from_proto(message).tolist() == [[1.0, 2.0]]
    assert seldon_message_to_json(message)["data"]["tensor"]["shape"] == [1, 2]
    ndarray = json_to_seldon_message({"data": {"ndarray": [[1, 2], [3, 4]]}})
    assert get_data_from_proto(ndarray).shape == (2, 2)
    assert get_data_from_proto(json_to_seldon_message({"strData": "hi"})) == "hi"
    monkeypatch.setenv("MY_FLAG", "true")
    assert getenv_as_bool("MY_FLAG") is True
    assert getenv_as_bool("MY_UNSET_FLAG", default=True) is True


def test_custom_service_starts_once_with_several_workers() -> None:
    custom_port = free_port()
    args = _class("IrisClassifier", "--workers", "2")
    with start_runtime(args, env=_env(CUSTOM_SERVICE_PORT=str(custom_port))) as runtime:
        # custom_service() runs in a thread started after load(): the runtime may be ready a moment
        # before the user's server listens.
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{custom_port}/", timeout=5).status_code == 200
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        log = runtime.log()
    assert log.count("custom_service() started") == 1, log
    assert "custom_service() raised" not in log
