"""`python -m extproc` as `seldon-mesh up` runs it: a metrics port that another process holds costs the
metrics, and the graph service keeps serving (a restart on the same fixed ports used to fail forever)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers.ports import free_port


def test_extproc_serves_graphs_when_its_metrics_port_is_taken(tmp_path: Path) -> None:
    grpc_port, rest_port = free_port(), free_port()
    log_path = tmp_path / "extproc.log"
    with socket.socket() as squatter, log_path.open("wb") as log_file:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        metrics_port = squatter.getsockname()[1]
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "extproc",
                "--port",
                str(grpc_port),
                "--http-port",
                str(rest_port),
                "--metrics-port",
                str(metrics_port),
                "--state-dir",
                str(tmp_path / "state"),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            answer = _first_answer(f"http://127.0.0.1:{rest_port}/seldon/default/nope/api/v1.0/predictions")
            assert process.poll() is None, log_path.read_text()
        finally:
            process.terminate()
            process.wait(timeout=30)
    # the graph service answers in Seldon's error shape (with no config loaded: a 503 naming the reason)
    assert answer.status_code in (404, 503), answer.text
    assert answer.json()["status"]["status"] == "FAILURE"
    assert f"metrics not served: 127.0.0.1:{metrics_port}" in log_path.read_text()


def _first_answer(url: str, timeout_s: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.post(url, json={"data": {"ndarray": [[1.0]]}}, timeout=5.0)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
