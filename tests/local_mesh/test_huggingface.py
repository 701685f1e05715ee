"""A Hugging Face pipeline through the real gateway: `seldon-mesh up` runs a HUGGINGFACE_SERVER deployment
(`protocol: v2`, a tiny text classifier built by the test, `modelUri: ./sentiment`, the `task`
parameter) and Envoy routes V2 to it. httpx and tritonclient (HTTP and gRPC) get the pipeline's own
answers in MLServer's `hg_jsonlist` shape; a request the pipeline cannot run is a V2 400 (gRPC
INVALID_ARGUMENT) at the gateway; a deployment whose folder holds no model says why in `seldon-mesh get`.
No model hub is reached: HF_HUB_OFFLINE=1 for the whole mesh."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.huggingface import build_text_classifier, pipeline_answers
from tests.helpers.mesh import Mesh, free_port, wait_for

pytestmark = pytest.mark.slow

TRITON_TEXTS = Path(__file__).resolve().parents[1] / "helpers" / "triton_texts.py"
TEXTS = ["good movie", "the movie is awful", "great"]
INFER = "/seldon/seldon/sentiment/v2/models/classifier/infer"

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
        name: classifier
        implementation: HUGGINGFACE_SERVER
        modelUri: ./{folder}
        parameters:
          - name: task
            type: STRING
            value: text-classification
"""


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf-mesh")
    build_text_classifier(folder / "sentiment")
    (folder / "empty").mkdir()
    (folder / "sentiment.yaml").write_text(MANIFEST.format(name="sentiment", folder="sentiment"))
    (folder / "no-model.yaml").write_text(MANIFEST.format(name="no-model", folder="empty"))
    return folder


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, model_folder: Path) -> Iterator[Mesh]:
    with pytest.MonkeyPatch.context() as patch:  # `up` and the runtimes it starts inherit it
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        running = Mesh(tmp_path_factory.mktemp("hf-mesh-state") / "state", free_port()).start(model_folder)
    try:
        running.wait_state("sentiment", "Available", timeout=180)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def expected(model_folder: Path) -> list[Any]:
    return pipeline_answers(model_folder / "sentiment", TEXTS)


def texts(name: str, items: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": "BYTES",
        "shape": [len(items)],
        "data": items,
        "parameters": {"content_type": "str"},
    }


def triton(mesh: Mesh, transport: str, name: str, items: list[str]) -> dict[str, Any]:
    url = f"127.0.0.1:{mesh.port}" + ("/seldon/seldon/sentiment" if transport == "http" else "")
    spec = {
        "transport": transport,
        "url": url,
        "headers": {"seldon": "sentiment", "namespace": "seldon"},
        "model": "classifier",
        "input": name,
        "texts": items,
    }
    result = subprocess.run(
        [sys.executable, str(TRITON_TEXTS), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_httpx_through_the_gateway_gets_the_pipeline_answers(mesh: Mesh, expected: list[Any]) -> None:
    response = mesh.wait_serving(INFER, {"inputs": [texts("array_inputs", TEXTS)]})
    assert response.headers["seldon-puid"]
    (output,) = response.json()["outputs"]
    assert output["parameters"] == {"content_type": "hg_jsonlist"}
    assert output["shape"] == [len(TEXTS), 1]
    assert [json.loads(item) for item in output["data"]] == expected


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_tritonclient_through_the_gateway(mesh: Mesh, expected: list[Any], transport: str) -> None:
    mesh.wait_serving(INFER, {"inputs": [texts("args", TEXTS[:1])]})
    answer = triton(mesh, transport, "array_inputs", TEXTS)
    assert answer["ready"]
    assert answer["metadata"] == {"name": "classifier", "platform": "huggingface"}
    assert answer["shape"] == [len(TEXTS), 1]
    assert answer["output"] == expected


def test_a_request_the_pipeline_cannot_run_is_a_v2_400_at_the_gateway(mesh: Mesh) -> None:
    mesh.wait_serving(INFER, {"inputs": [texts("args", TEXTS[:1])]})
    bad = {"inputs": [{**texts("doc", ["{not json"]), "parameters": {"content_type": "hg_json"}}]}
    response = httpx.post(mesh.gateway + INFER, json=bad, timeout=60)
    assert response.status_code == 400, response.text
    assert "is not JSON" in response.json()["error"]
    for transport in ("http", "grpc"):  # two texts as two positional arguments: the pipeline refuses
        error = triton(mesh, transport, "args", ["good", "bad"])["error"]
        assert error["status"] in ("400", "StatusCode.INVALID_ARGUMENT"), error
        assert "array_inputs" in error["message"]
    assert httpx.post(mesh.gateway + INFER, json={"inputs": [texts("args", ["good"])]}).status_code == 200


def test_a_folder_without_a_model_is_reported(mesh: Mesh) -> None:
    def failed() -> dict[str, Any] | None:
        status = mesh.state("no-model")
        reasons = " ".join(c.get("reason") or "" for c in status["components"])
        return status if "config.json missing" in reasons else None

    status = wait_for(failed, 120, "no-model to report its load failure")
    assert status["state"] != "Available"
