"""Checks that only a real cluster can make: `make e2e-cluster`, against the current kube context.

Never run by `make test` or CI (no API server can run there). What they add to the offline suite:
- the API server's own validation of every rendered object (`kubectl apply --dry-run=server`), which
  includes the CEL rules (`x-kubernetes-validations`) of the Istio and Gateway API CRDs that the offline
  JSON-schema check cannot evaluate, and admission by whatever webhooks the cluster runs;
- our CRD accepted by the API server, and every example SeldonDeployment accepted against it;
- with SELDON_MESH_E2E_APPLY=1 (and the operator installed from charts/seldon-mesh): the iris example
  applied for real, `kubectl wait --for=condition=Ready sdep/iris-model`, and a prediction through the
  Istio ingress gateway at SELDON_MESH_E2E_GATEWAY (host:port).
Needs `kubectl` on PATH and a context with rights to create CRDs and objects in SELDON_MESH_E2E_NAMESPACE
(default `seldon-mesh-e2e`, created if absent).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = os.environ.get("SELDON_MESH_E2E_NAMESPACE", "seldon-mesh-e2e")
CRD = ROOT / "charts" / "seldon-mesh" / "crds" / "seldondeployments.yaml"
SPECS = sorted((ROOT / "tests" / "data" / "specs").glob("*.yaml"))
# The cluster's iris first: its model is in object storage, where the storage initializer can fetch it.
EXAMPLES = [
    ROOT / "examples" / "iris" / "kubernetes" / "iris.yaml",
    ROOT / "examples" / "iris" / "iris.yaml",
    *SPECS,
]


def kubectl(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def render(path: Path, ingress: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mesh.cli.main", "render", "-f", str(path), "--ingress", ingress],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.replace("namespace: seldon\n", f"namespace: {NAMESPACE}\n")


@pytest.fixture(scope="session", autouse=True)
def cluster() -> None:
    if shutil.which("kubectl") is None:
        raise RuntimeError("make e2e-cluster needs kubectl on PATH and a kube context")
    kubectl("version")
    namespaces = kubectl("get", "namespaces", "-o", "name")
    if f"namespace/{NAMESPACE}" not in namespaces.split():
        kubectl("create", "namespace", NAMESPACE)
    kubectl("apply", "--server-side", "-f", str(CRD))
    kubectl("wait", "--for=condition=Established", "crd/seldondeployments.machinelearning.seldon.io")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_examples_are_accepted_by_the_api_server(path: Path) -> None:
    text = path.read_text().replace("namespace: seldon\n", f"namespace: {NAMESPACE}\n")
    kubectl("apply", "--dry-run=server", "-n", NAMESPACE, "-f", "-", stdin=text)


@pytest.mark.parametrize("ingress", ["istio", "gateway-api", "seldon-mesh"])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_renderings_are_accepted_by_the_api_server(path: Path, ingress: str) -> None:
    kubectl("apply", "--dry-run=server", "-f", "-", stdin=render(path, ingress))


@pytest.mark.skipif(os.environ.get("SELDON_MESH_E2E_APPLY") != "1", reason="set SELDON_MESH_E2E_APPLY=1")
def test_iris_becomes_ready_and_answers() -> None:
    text = EXAMPLES[0].read_text().replace("namespace: seldon\n", f"namespace: {NAMESPACE}\n")
    kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=text)
    kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", "--timeout=300s", "sdep/iris-model")
    gateway = os.environ.get("SELDON_MESH_E2E_GATEWAY", "localhost:8080")
    request = urllib.request.Request(
        f"http://{gateway}/seldon/{NAMESPACE}/iris-model/api/v1.0/predictions",
        data=json.dumps({"data": {"ndarray": [[1, 2, 3, 4]]}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert len(body["data"]["ndarray"][0]) == 3
