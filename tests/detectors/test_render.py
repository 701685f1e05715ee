"""A detector's cluster objects, validated strictly against the Kubernetes schemas, and what
`seldon-mesh detector render` prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mesh.render import RenderSettings
from mesh.render.detectors import DetectorSpec, detector_url, render_detector
from tests.helpers.k8s_schemas import validate_all

BIN = Path(sys.executable).parent


def _drift() -> DetectorSpec:
    return DetectorSpec(
        name="income-drift",
        namespace="seldon",
        kind="DriftDetector",
        storage_uri="s3://detectors/income/drift",
        reply_url="http://default-broker",
        event_type="io.seldon.serving.inference.drift",
        event_source="io.seldon.serving.incomecd",
        protocol="seldon.http",
        drift_batch_size=500,
        env_secret_ref_name="seldon-init-container-secret",
    )


def test_a_detector_renders_a_valid_deployment_and_service() -> None:
    manifests = render_detector(_drift(), RenderSettings())
    validate_all(manifests)
    deployment, service = manifests
    assert [m["kind"] for m in manifests] == ["Deployment", "Service"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == RenderSettings().detector_image
    args = container["args"]
    assert args[args.index("--storage_uri") + 1] == "/mnt/detector"
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[-3:] == ["DriftDetector", "--drift_batch_size", "500"]  # Seldon's flag order: after the kind
    (init,) = pod["initContainers"]
    assert init["args"] == ["s3://detectors/income/drift", "/mnt/detector"]
    assert init["envFrom"] == [{"secretRef": {"name": "seldon-init-container-secret"}}]
    template = deployment["spec"]["template"]["metadata"]
    assert template["annotations"]["prometheus.io/path"] == "/v1/metrics"
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert detector_url(_drift()) == "http://income-drift.seldon"


def test_a_pvc_detector_is_mounted_not_downloaded() -> None:
    spec = DetectorSpec(
        name="od", namespace="default", kind="OutlierDetector", storage_uri="pvc://models/od/v1"
    )
    manifests = render_detector(spec, RenderSettings())
    validate_all(manifests)
    pod = manifests[0]["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    claim = {"claimName": "models", "readOnly": True}
    assert pod["volumes"] == [{"name": "detector", "persistentVolumeClaim": claim}]
    args = pod["containers"][0]["args"]
    assert args[args.index("--storage_uri") + 1] == "/mnt/detector/od/v1"


@pytest.mark.parametrize(
    ("kind", "drift_batch_size"),
    [("Explainer", None), ("OutlierDetector", 10), ("DriftDetector", 0)],
)
def test_a_detector_spec_refuses_what_seldons_server_would(kind: str, drift_batch_size: int | None) -> None:
    with pytest.raises(ValueError):
        DetectorSpec(
            name="d", namespace="n", kind=kind, storage_uri="gs://b/d", drift_batch_size=drift_batch_size
        )


def test_the_cli_prints_the_objects_for_kubectl_apply() -> None:
    command = [str(BIN / "seldon-mesh"), "detector", "render", "--name", "cifar10od", "-n", "cifar10"]
    command += ["--storage_uri", "gs://seldon-models/alibi-detect/od/OutlierVAE/cifar10"]
    command += ["--reply_url", "http://hello-display.cifar10", "OutlierDetector"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    manifests = [m for m in yaml.safe_load_all(result.stdout) if m]
    validate_all(manifests)
    assert [m["kind"] for m in manifests] == ["Deployment", "Service"]
    assert "http://cifar10od.cifar10" in result.stderr  # the logger.url to give a node


def test_the_cli_refuses_a_missing_detector_kind() -> None:
    result = subprocess.run(
        [str(BIN / "seldon-mesh"), "detector", "render", "--name", "x", "--storage_uri", "gs://b/x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "OutlierDetector" in result.stderr


def test_serve_says_when_the_detector_cannot_be_fetched(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-detector"
    result = subprocess.run(
        [str(BIN / "seldon-mesh"), "detector", "serve", "--storage_uri", str(missing), "OutlierDetector"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1  # before any environment is built or any port bound
    assert "does not exist" in result.stderr
