"""Bad input gets Seldon's error JSON with a fitting status, and the mesh keeps serving."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.helpers.mesh import Mesh, pid_alive, wait_for

PREDICT = "/seldon/seldon/iris-model/api/v1.0/predictions"
GOOD = {"data": {"ndarray": [[1, 2, 3, 4]]}}


def _assert_seldon_error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["status"]
    assert error["status"] == "FAILURE"
    assert error["code"] == status
    assert error["info"]
    return dict(error)


def test_malformed_json_is_400_and_next_request_succeeds(mesh: Mesh) -> None:
    mesh.wait_serving(PREDICT, GOOD)
    response = httpx.post(
        mesh.gateway + PREDICT,
        content=b'{"data": {"ndarray": [[1, 2',
        headers={"content-type": "application/json"},
    )
    _assert_seldon_error(response, 400)
    assert httpx.post(mesh.gateway + PREDICT, json=GOOD).status_code == 200


def test_wrong_feature_count_is_400(mesh: Mesh) -> None:
    mesh.wait_serving(PREDICT, GOOD)
    error = _assert_seldon_error(
        httpx.post(mesh.gateway + PREDICT, json={"data": {"ndarray": [[1, 2, 3]]}}), 400
    )
    assert "feature" in str(error["info"]).lower()


def test_unknown_deployment_is_404(mesh: Mesh) -> None:
    response = httpx.post(mesh.gateway + "/seldon/seldon/no-such-model/api/v1.0/predictions", json=GOOD)
    _assert_seldon_error(response, 404)


def test_invalid_spec_is_rejected_with_every_path_and_nothing_changes(mesh: Mesh, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: iris-model, namespace: seldon}
spec:
  predictors:
    - name: a
      traffic: 60
      graph: {name: classifier, implementation: SKLEARN_SERVER}
    - name: b
      traffic: 30
      graph: {name: classifier, implementation: SKLEARN_SERVER, modelUri: ./model}
"""
    )
    result = mesh.cli("apply", "-f", str(bad))
    assert result.returncode != 0
    assert "spec.predictors[0].graph.modelUri" in result.stderr
    assert "traffic" in result.stderr
    assert mesh.state("iris-model")["state"] == "Available"
    assert httpx.post(mesh.gateway + PREDICT, json=GOOD).status_code == 200


def test_runtime_that_dies_answers_503_then_is_restarted(mesh: Mesh) -> None:
    mesh.wait_serving(PREDICT, GOOD)
    (pid,) = mesh.child_pids()
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 10, "the runtime to die")
    seen: set[int] = set()

    def restarted() -> bool:
        response = httpx.post(mesh.gateway + PREDICT, json=GOOD, timeout=10)
        if response.status_code != 200:
            _assert_seldon_error(response, 503)
            seen.add(response.status_code)
            return False
        return True

    wait_for(restarted, 60, "the runtime to be restarted and serve again")
    assert seen == {503}  # while it was down, clients got Seldon's 503 JSON, never a hang or a 404
    (component,) = mesh.get("iris-model")[0]["status"]["components"]
    assert component["restarts"] >= 1
    assert component["pid"] != pid
