"""V2 through the real gateway (`seldon-mesh up`, Envoy): tritonclient over HTTP and gRPC calls an sklearn
and an xgboost model deployed with `protocol: v2`, grpcurl lists and calls `inference.GRPCInferenceService`
by reflection, the same deployment answers Seldon v1 with the same numbers, and a model that cannot load
shows why in `seldon-mesh get`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.helpers.mesh import Mesh, free_port, wait_for
from tests.runtimes import models

pytestmark = pytest.mark.slow

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
TRITON_CLIENT = Path(__file__).resolve().parent / "triton_client.py"
ROWS = models.iris()[0][[0, 60, 120]]

MANIFEST = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: {name}
  namespace: seldon
spec:
  protocol: v2
  predictors:
    - name: default
      graph:
        name: {node}
        implementation: {implementation}
        modelUri: ./{folder}
"""

DEPLOYMENTS = {
    # deployment: (graph node = V2 model name, implementation, model folder, output name)
    "iris-v2": ("classifier", "SKLEARN_SERVER", "sklearn", "predict_proba"),
    "xgb-v2": ("booster", "XGBOOST_SERVER", "xgboost", "predict"),
}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("v2-mesh")
    for sub, build in (("sklearn", models.sklearn_model), ("xgboost", models.xgboost_model)):
        (folder / sub).mkdir()
        build(folder / sub)
    (folder / "broken").mkdir()
    (folder / "broken" / "model.json").write_text("{not a booster")
    for name, (node, implementation, sub, _) in DEPLOYMENTS.items():
        manifest = MANIFEST.format(name=name, node=node, implementation=implementation, folder=sub)
        (folder / f"{name}.yaml").write_text(manifest)
    broken = MANIFEST.format(
        name="broken-v2", node="booster", implementation="XGBOOST_SERVER", folder="broken"
    )
    (folder / "broken-v2.yaml").write_text(broken)
    running = Mesh(tmp_path_factory.mktemp("v2-mesh-state") / "state", free_port()).start(folder)
    try:
        for name in DEPLOYMENTS:
            running.wait_state(name, "Available")
        yield running
    finally:
        running.stop()


def _triton(spec: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(TRITON_CLIENT), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _v1_numbers(mesh: Mesh, name: str) -> np.ndarray:
    path = f"/seldon/seldon/{name}/api/v1.0/predictions"
    return np.asarray(mesh.wait_serving(path, {"data": {"ndarray": ROWS.tolist()}}).json()["data"]["ndarray"])


@pytest.mark.parametrize("name", list(DEPLOYMENTS))
@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_tritonclient_through_the_gateway(mesh: Mesh, name: str, transport: str) -> None:
    node, _, _, output = DEPLOYMENTS[name]
    v1 = _v1_numbers(mesh, name)
    url = f"127.0.0.1:{mesh.port}" + (f"/seldon/seldon/{name}" if transport == "http" else "")
    spec = {
        "transport": transport,
        "url": url,
        "headers": {"seldon": name, "namespace": "seldon"},
        "model": node,
        "rows": ROWS.tolist(),
        "output": output,
    }
    answer = _triton(spec)
    assert answer["ready"]
    assert answer["metadata"]["name"] == node
    assert answer["metadata"]["inputs"]
    assert answer["id"] == f"triton-{transport}"
    numbers = np.asarray(answer["output"])
    assert numbers.shape == (3, 3)
    assert numbers.argmax(axis=1).tolist() == [0, 1, 2]
    np.testing.assert_allclose(numbers, v1, rtol=1e-5)  # v1 sent float64, tritonclient FP32


def test_v2_rest_through_the_gateway_gives_the_v1_numbers(mesh: Mesh) -> None:
    v1 = _v1_numbers(mesh, "iris-v2")
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [3, 4], "data": ROWS.ravel().tolist()}]}
    response = httpx.post(f"{mesh.gateway}/seldon/seldon/iris-v2/v2/models/classifier/infer", json=body)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert np.asarray(output["data"]).reshape(output["shape"]).tolist() == v1.tolist()
    missing = httpx.post(f"{mesh.gateway}/seldon/seldon/iris-v2/v2/models/nope/infer", json=body)
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]


def _grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_grpcurl_lists_and_calls_the_inference_service(mesh: Mesh) -> None:
    headers = ["-H", "seldon: iris-v2", "-H", "namespace: seldon"]
    target = f"127.0.0.1:{mesh.port}"
    listed = _grpcurl(*headers, target, "list")
    assert listed.returncode == 0, listed.stderr
    assert "inference.GRPCInferenceService" in listed.stdout.split()
    methods = _grpcurl(*headers, target, "list", "inference.GRPCInferenceService")
    assert "inference.GRPCInferenceService.ModelInfer" in methods.stdout
    request = {
        "model_name": "classifier",
        "inputs": [
            {
                "name": "x",
                "datatype": "FP64",
                "shape": [1, 4],
                "contents": {"fp64_contents": ROWS[0].tolist()},
            }
        ],
    }
    called = _grpcurl(
        *headers, "-d", json.dumps(request), target, "inference.GRPCInferenceService/ModelInfer"
    )
    assert called.returncode == 0, called.stderr
    output = json.loads(called.stdout)["outputs"][0]
    assert output["name"] == "predict_proba"
    contents = output["contents"]
    assert contents.get("fp64Contents", contents.get("fp64_contents")) == pytest.approx(
        _v1_numbers(mesh, "iris-v2")[0].tolist()
    )


def test_a_model_that_cannot_load_shows_why_in_get(mesh: Mesh) -> None:
    def failed() -> dict[str, Any] | None:
        status = mesh.state("broken-v2")
        reasons = " ".join(c.get("reason") or "" for c in status["components"])
        return status if "model.json" in reasons else None

    status = wait_for(failed, 90, "broken-v2 to report its load failure")
    assert status["state"] != "Available"
    listing = mesh.cli("get")
    assert "broken-v2" in listing.stdout
