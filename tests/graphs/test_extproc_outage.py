"""extproc down: graph predictors fail fast with Seldon's 503 JSON saying so (gRPC: UNAVAILABLE), single-model
predictors are unaffected, and graphs recover by themselves when the supervisor has restarted extproc.

The supervisor waits its restart backoff (0.5 s) and extproc needs longer than that to import and bind,
so the requests right after the kill see extproc down.
"""

from __future__ import annotations

import os
import signal

import grpc
import pytest

from tests.graphs.client import assert_seldon_error, grpc_predict, ndarray, predict
from tests.helpers.mesh import Mesh, pid_alive, wait_for


def _kill_extproc(mesh: Mesh) -> None:
    pid = int((mesh.state_dir / "extproc.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 10, "extproc to die", interval=0.005)


def _recovered(mesh: Mesh) -> None:
    wait_for(lambda: predict(mesh, "chain", ndarray([[1, 2]])).status_code == 200, 30, "graphs to recover")


def test_rest_graphs_fail_fast_single_models_serve_and_graphs_recover(mesh: Mesh) -> None:
    assert predict(mesh, "chain", ndarray([[1, 2]])).status_code == 200
    _kill_extproc(mesh)
    try:
        error = assert_seldon_error(predict(mesh, "chain", ndarray([[1, 2]]), timeout=5), 503)
        assert error["reason"] == "UNAVAILABLE"
        assert error["info"] == "graph service (extproc) unavailable"  # Envoy's own reply is empty
        single = predict(mesh, "single", ndarray([[1.0]]))
        assert single.status_code == 200 and single.json()["data"]["ndarray"] == [[2.0]]
    finally:
        _recovered(mesh)
    reply, _ = grpc_predict(mesh, "grpc-chain", ndarray([[1.0]]))
    assert reply["data"]["ndarray"] == [[40.0]]


def test_grpc_graphs_are_unavailable_while_extproc_is_down(mesh: Mesh) -> None:
    _kill_extproc(mesh)
    try:
        with pytest.raises(grpc.RpcError) as raised:
            grpc_predict(mesh, "grpc-chain", ndarray([[1.0]]))
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        _recovered(mesh)
