"""`seldon-mesh render`: the YAML stream kubectl apply takes, and apply's rejection of a bad spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers.k8s_schemas import validate_all

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "examples" / "iris" / "iris.yaml"
CANARY = ROOT / "tests" / "data" / "specs" / "canary.yaml"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mesh.cli.main", "render", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )


def kinds(stdout: str) -> list[str]:
    return [doc["kind"] for doc in yaml.safe_load_all(stdout) if doc]


def test_render_prints_a_valid_multi_document_stream() -> None:
    result = run("-f", str(IRIS))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("---\n")
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert {"Deployment", "Service", "VirtualService", "DestinationRule"} <= set(kinds(result.stdout))
    assert all(doc["metadata"]["namespace"] == "seldon" for doc in docs)
    validate_all(docs)


def test_each_ingress_renders_its_own_objects() -> None:
    gateway_api = kinds(run("-f", str(CANARY), "--ingress", "gateway-api").stdout)
    assert "HTTPRoute" in gateway_api and "GRPCRoute" in gateway_api
    assert "VirtualService" not in gateway_api
    ours = kinds(run("-f", str(CANARY), "--ingress", "seldon-mesh").stdout)
    assert "Deployment" in ours
    assert not {"VirtualService", "DestinationRule", "HTTPRoute", "GRPCRoute"} & set(ours)


def test_stdin_and_folders_are_read_like_apply() -> None:
    from_stdin = run("-f", "-", stdin=IRIS.read_text())
    from_file = run("-f", str(IRIS))
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == from_file.stdout


def test_an_invalid_spec_names_every_field_and_prints_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: bad}\n"
        "spec:\n  predictors:\n  - name: a\n    traffic: 300\n"
        "    graph: {name: m, implementation: SKLEARN_SERVER}\n"
    )
    result = run("-f", str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "spec.predictors[0].traffic" in result.stderr
    assert "spec.predictors[0].graph.modelUri" in result.stderr


def test_a_missing_file_is_an_error() -> None:
    result = run("-f", "no-such-file.yaml")
    assert result.returncode == 1
    assert "no such file" in result.stderr


def test_other_kinds_beside_a_deployment_are_skipped_with_a_note(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: seldon}\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {KEY: v}\n---\n"
        + IRIS.read_text()
    )
    result = run("-f", str(mixed))
    assert result.returncode == 0, result.stderr
    assert "skipped Namespace 'seldon'" in result.stderr and "skipped Secret 'creds'" in result.stderr
    assert "Secret" not in kinds(result.stdout) and "Deployment" in kinds(result.stdout)
