"""TENSORFLOW_SERVER in the cluster renderings: TF Serving's image under `protocol: tensorflow` (as Seldon
runs it), seldon-mesh's runtime under `protocol: seldon`, which translates Seldon messages itself as
Seldon's tfserving proxy does (TF Serving alone would not answer them)."""

from __future__ import annotations

from typing import Any

from mesh.render import RenderSettings, render
from mesh.spec import parse_deployment


def _deployment(protocol: str) -> Any:
    return parse_deployment(
        {
            "apiVersion": "machinelearning.seldon.io/v1",
            "kind": "SeldonDeployment",
            "metadata": {"name": "tf", "namespace": "models"},
            "spec": {
                "protocol": protocol,
                "predictors": [
                    {
                        "name": "default",
                        "graph": {
                            "name": "toy",
                            "implementation": "TENSORFLOW_SERVER",
                            "modelUri": "gs://bucket/toy",
                            "parameters": [{"name": "signature_name", "type": "STRING", "value": "predict"}],
                        },
                    }
                ],
            },
        }
    )


def _container(protocol: str, settings: RenderSettings) -> dict[str, Any]:
    manifests = render(_deployment(protocol), settings)
    deployment = next(
        m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("toy")
    )
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "toy")


def test_seldon_protocol_runs_the_runtime() -> None:
    settings = RenderSettings()
    container = _container("seldon", settings)
    assert container["image"] == settings.runtime_image
    args = container["args"]
    assert args[args.index("--implementation") + 1] == "TENSORFLOW_SERVER"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_tensorflow_protocol_runs_tf_serving() -> None:
    settings = RenderSettings()
    container = _container("tensorflow", settings)
    assert container["image"] == settings.predictor_servers["TENSORFLOW_SERVER"].tensorflow
    assert "--model_name=toy" in container["args"]
