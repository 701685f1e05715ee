"""Readiness, load failures, remote model URIs, workers and shutdown of a real runtime process."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers.runtime import RunningRuntime, start_runtime
from tests.model_runtime.conftest import IRIS_ROW, python_class

PREDICT = {"data": {"ndarray": [IRIS_ROW]}}


def _assert_unavailable(runtime: RunningRuntime, reason_fragment: str) -> None:
    ready = httpx.get(runtime.http_url + "/ready")
    assert ready.status_code == 503
    status = ready.json()["status"]
    assert status["reason"] == "MICROSERVICE_LOAD_FAILED"
    assert reason_fragment in status["info"]
    predict = httpx.post(runtime.http_url + "/predict", json=PREDICT)
    assert predict.status_code == 503
    assert reason_fragment in predict.json()["status"]["info"]
    with grpc.insecure_channel(runtime.grpc_target) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING


def _wait_for_load_failure(runtime: RunningRuntime, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        reason = httpx.get(runtime.http_url + "/ready").json()["status"]["reason"]
        if reason == "MICROSERVICE_LOAD_FAILED":
            return
        time.sleep(0.05)
    raise AssertionError("the load never failed")


def test_missing_model_is_not_ready_with_the_reason_and_keeps_running(tmp_path: Path) -> None:
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", str(tmp_path)]
    with start_runtime(args, wait_ready=False) as runtime:
        _wait_for_load_failure(runtime)
        _assert_unavailable(runtime, f"not found in {tmp_path}")
        assert httpx.get(runtime.http_url + "/live").status_code == 200
        assert runtime.is_running()


def test_failing_load_method_is_reported() -> None:
    with start_runtime(python_class("BadLoad"), wait_ready=False) as runtime:
        _wait_for_load_failure(runtime)
        _assert_unavailable(runtime, "weights.bin is missing")


def test_unknown_class_is_reported(tmp_path: Path) -> None:
    with start_runtime(["--class", "NoSuchModel", "--code-dir", str(tmp_path)], wait_ready=False) as runtime:
        _wait_for_load_failure(runtime)
        _assert_unavailable(runtime, "cannot import module 'NoSuchModel'")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("archive", ["model.tar.gz", "model.joblib"])
def test_model_over_http(iris_dir: Path, file_server: tuple[str, Path], archive: str) -> None:
    url, root = file_server
    if archive.endswith(".tar.gz"):
        with tarfile.open(root / archive, "w:gz") as tar:
            tar.add(iris_dir / "model.joblib", arcname="model.joblib")
    else:
        (root / archive).write_bytes((iris_dir / "model.joblib").read_bytes())
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", f"{url}/{archive}"]
    with start_runtime(args) as runtime:
        out = httpx.post(runtime.http_url + "/predict", json=PREDICT).json()
        assert sum(out["data"]["ndarray"][0]) == pytest.approx(1.0)


def test_http_404_model_is_reported(file_server: tuple[str, Path]) -> None:
    url, _ = file_server
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", f"{url}/missing.tar.gz"]
    with start_runtime(args, wait_ready=False) as runtime:
        _wait_for_load_failure(runtime)
        _assert_unavailable(runtime, "HTTP 404")


def _children(pid: int) -> set[int]:
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children.update(int(c) for c in text)
    return children


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_workers_share_the_ports_and_stop_with_the_parent(iris_dir: Path) -> None:
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", str(iris_dir), "--workers", "2"]
    with start_runtime(args) as runtime:
        workers = _children(runtime.process.pid)
        assert len(workers) >= 2
        # workers other than the first bind only once loaded: no fresh connection may meet a 503
        for _ in range(20):
            with httpx.Client() as client:
                assert client.post(runtime.http_url + "/predict", json=PREDICT).status_code == 200
        assert runtime.stop() == 0
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in workers), "a worker outlived the runtime"


def test_sigterm_stops_gracefully(iris_dir: Path) -> None:
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", str(iris_dir)]
    with start_runtime(args) as runtime:
        assert httpx.post(runtime.http_url + "/predict", json=PREDICT).status_code == 200
        assert runtime.stop() == 0
        assert "stopped" in runtime.log()


def test_port_in_use_is_a_startup_error(iris_dir: Path) -> None:
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", str(iris_dir)]
    with start_runtime(args) as first:
        command = [sys.executable, "-m", "model_runtime", *args, "--http-port", str(first.http_port)]
        result = subprocess.run(
            [*command, "--grpc-port", "0"], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 1
        assert f"cannot serve REST on 127.0.0.1:{first.http_port}" in result.stderr


def test_one_port_for_rest_and_grpc_is_a_startup_error(iris_dir: Path) -> None:
    """The REST socket listens as soon as it is bound: before, the gRPC server could bind the same port
    beside it (both SO_REUSEADDR, neither listening yet) and the runtime ran but never got ready."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", str(iris_dir)]
    command = [sys.executable, "-m", "model_runtime", *args, "--http-port", str(port)]
    command += ["--grpc-port", str(port)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"cannot serve gRPC on 127.0.0.1:{port}" in result.stderr
