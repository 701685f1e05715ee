"""The README's quick start, through the real Envoy: curl-style REST, grpcurl with no proto files, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.helpers.mesh import Mesh

PREDICT = "/seldon/seldon/iris-model/api/v1.0/predictions"
GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def _grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_rest_ndarray_returns_three_probabilities(mesh: Mesh) -> None:
    response = mesh.wait_serving(PREDICT, {"data": {"ndarray": [[1, 2, 3, 4]]}})
    body = response.json()
    assert body["data"]["names"] == ["t:0", "t:1", "t:2"]
    (row,) = body["data"]["ndarray"]
    assert len(row) == 3
    assert sum(row) == pytest.approx(1.0)
    assert response.headers["seldon-predictor"] == "default"
    assert response.headers["seldon-puid"]
    assert body["meta"]["puid"] == response.headers["seldon-puid"]


def test_rest_tensor_in_gives_tensor_out(mesh: Mesh) -> None:
    request = {"data": {"tensor": {"shape": [2, 4], "values": [1, 2, 3, 4, 5.1, 3.5, 1.4, 0.2]}}}
    body = mesh.wait_serving(PREDICT, request).json()
    assert body["data"]["tensor"]["shape"] == [2, 3]
    values = body["data"]["tensor"]["values"]
    assert sum(values[:3]) == pytest.approx(1.0)
    assert max(range(3), key=lambda i: values[3 + i]) == 0  # a setosa-like flower


def test_grpcurl_predict_needs_no_proto_files(mesh: Mesh) -> None:
    rest = mesh.wait_serving(PREDICT, {"data": {"ndarray": [[1, 2, 3, 4]]}}).json()["data"]["ndarray"][0]
    result = _grpcurl(
        "-H", "seldon: iris-model", "-H", "namespace: seldon",
        "-d", '{"data":{"ndarray":[[1,2,3,4]]}}',
        f"127.0.0.1:{mesh.port}", "seldon.protos.Seldon/Predict",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["data"]["names"] == ["t:0", "t:1", "t:2"]
    assert body["data"]["ndarray"][0] == pytest.approx(rest)


def test_grpcurl_lists_services_through_the_gateway(mesh: Mesh) -> None:
    result = _grpcurl(f"127.0.0.1:{mesh.port}", "list")
    assert result.returncode == 0, result.stderr
    assert "seldon.protos.Seldon" in result.stdout.split()
    routed = _grpcurl("-H", "seldon: iris-model", "-H", "namespace: seldon", f"127.0.0.1:{mesh.port}", "list")
    assert routed.returncode == 0, routed.stderr
    assert "seldon.protos.Seldon" in routed.stdout.split()


def test_cli_predict_and_get(mesh: Mesh) -> None:
    mesh.wait_serving(PREDICT, {"data": {"ndarray": [[1, 2, 3, 4]]}})
    result = mesh.cli("predict", "iris-model", "-n", "seldon", "--data", '{"data":{"ndarray":[[1,2,3,4]]}}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data"]["names"] == ["t:0", "t:1", "t:2"]
    table = mesh.cli("get")
    assert table.returncode == 0, table.stderr
    assert "iris-model" in table.stdout and "Available" in table.stdout
    (deployment,) = mesh.get("iris-model")
    (component,) = deployment["status"]["components"]
    assert component["node"] == "classifier" and component["state"] == "Ready"


def test_swagger_ui_is_served_through_the_gateway(mesh: Mesh) -> None:
    mesh.wait_serving(PREDICT, {"data": {"ndarray": [[1, 2, 3, 4]]}})
    page_url = f"{mesh.gateway}/seldon/seldon/iris-model/api/v1.0/doc/"
    response = httpx.get(page_url, timeout=10)
    assert response.status_code == 200
    assert "swagger" in response.text.lower()
    # every asset the page loads comes from the mesh itself, through the gateway (the page works offline)
    assets = re.findall(r'(?:href|src)="([^"]+)"', response.text)
    assert assets and not [a for a in assets if "//" in a], assets
    for asset in assets:
        loaded = httpx.get(urljoin(page_url, asset), timeout=10)
        assert loaded.status_code == 200 and len(loaded.content) > 10_000, asset
    spec = httpx.get(urljoin(page_url, "../../../seldon.json"), timeout=10)
    assert spec.status_code == 200 and spec.json()["openapi"]
