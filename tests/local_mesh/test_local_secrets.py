"""A Secret applied beside a SeldonDeployment serves its `envSecretRefName` locally: its keys (`data` in
base64, `stringData` in plain text) reach the node's runtime and its model download (a prepackaged server
reading `s3://` from a real S3-compatible server with IAM on), stored the owner's alone and shown nowhere:
not by the control API, not on a command line. A deployment whose Secret is missing fails, naming it."""

from __future__ import annotations

import base64
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.mesh import Mesh, free_port
from tests.model_runtime import test_storage_s3
from tests.model_runtime.test_storage_s3 import BUCKET, S3

s3 = test_storage_s3.s3  # the real S3-compatible server (moto's, IAM on) as a fixture of this module too

TOKEN = "tok-3f9a1c"  # what must never leave the store and the runtime's environment
GREETER = """
import os


class Greeter:
    def predict(self, X, features_names=None):
        return X

    def tags(self):
        return {"greeting": os.environ.get("GREETING", ""), "token": os.environ.get("API_TOKEN", "")}
"""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _manifests(s3: S3) -> str:
    keys = "\n".join(f"  {k}: {_b64(v)}" for k, v in s3.env().items())
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: seldon}}
---
apiVersion: v1
kind: Secret
metadata: {{name: app-env, namespace: seldon}}
type: Opaque
data:
  API_TOKEN: {_b64(TOKEN)}
  GREETING: {_b64("overridden by stringData")}
stringData:
  GREETING: hello
---
apiVersion: v1
kind: Secret
metadata: {{name: s3-creds, namespace: seldon}}
data:
{keys}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: greeter, namespace: seldon}}
spec:
  predictors:
    - name: default
      componentSpecs:
        - spec:
            containers:
              - name: greeter
                image: example/greeter:0.1
                env: [{{name: MODEL_NAME, value: Greeter}}]
      graph: {{name: greeter, type: MODEL, envSecretRefName: app-env}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: iris-s3, namespace: seldon}}
spec:
  predictors:
    - name: default
      graph:
        name: classifier
        implementation: SKLEARN_SERVER
        modelUri: s3://{BUCKET}/sklearn/iris
        envSecretRefName: s3-creds
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: orphan, namespace: seldon}}
spec:
  predictors:
    - name: default
      graph:
        name: classifier
        implementation: SKLEARN_SERVER
        modelUri: s3://{BUCKET}/sklearn/iris
        envSecretRefName: no-such-secret
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, s3: S3) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("secrets")
    (folder / "Greeter.py").write_text(GREETER)
    (folder / "app.yaml").write_text(_manifests(s3))
    running = Mesh(folder / "state", free_port()).start()
    try:
        yield running
    finally:
        running.stop()


def test_apply_keeps_the_secrets_and_their_keys_reach_the_runtime(mesh: Mesh) -> None:
    applied = mesh.cli("apply", "-f", str(mesh.state_dir.parent / "app.yaml"))
    assert applied.returncode == 0, applied.stderr
    assert "secret/app-env configured" in applied.stdout
    assert "kept Secret 'app-env' (API_TOKEN, GREETING)" in applied.stderr and TOKEN not in applied.stderr
    mesh.wait_state("greeter", "Available")
    answer = mesh.wait_serving("/seldon/seldon/greeter/api/v1.0/predictions", {"data": {"ndarray": [[1]]}})
    assert answer.json()["meta"]["tags"] == {"greeting": "hello", "token": TOKEN}


def test_a_model_downloads_with_the_secrets_credentials(mesh: Mesh) -> None:
    mesh.wait_state("iris-s3", "Available")
    row = {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}
    answer = mesh.wait_serving("/seldon/seldon/iris-s3/api/v1.0/predictions", row)
    assert len(answer.json()["data"]["ndarray"][0]) == 3


def test_a_missing_secret_fails_the_deployment_naming_it(mesh: Mesh) -> None:
    failed = mesh.wait_state("orphan", "Failed")
    assert "Secret 'no-such-secret'" in str(failed), failed


def test_secret_values_are_stored_privately_and_shown_nowhere(mesh: Mesh) -> None:
    mesh.wait_state("greeter", "Available")
    for path in [p for p in mesh.state_dir.rglob("*") if p.is_file()]:  # the store and all else
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    shown = mesh.cli("get", "-o", "yaml")
    assert shown.returncode == 0 and TOKEN not in shown.stdout
    url, headers = mesh.control()
    for endpoint in ("/v1/deployments", "/v1/info", "/v1/metrics"):
        assert TOKEN not in httpx.get(url + endpoint, headers=headers).text
    for pid in mesh.child_pids():
        assert TOKEN.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert any(TOKEN.encode() in Path(f"/proc/{pid}/environ").read_bytes() for pid in mesh.child_pids())
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert TOKEN not in ps
