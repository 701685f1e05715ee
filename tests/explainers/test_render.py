"""The explainer's cluster objects: Deployment, Service and route (Istio VirtualService or Gateway API
HTTPRoute), validated strictly against the real schemas, named and wired as Seldon's are, at the path the
local gateway serves."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.render import Ingress, RenderSettings, render
from mesh.spec import SeldonDeployment, parse_deployment
from tests.helpers.k8s_schemas import validate_all
from xds_controller.translate.explainer import explainer_routes, explainer_view

Json = dict[str, Any]


def _deployment(explainer: Json, annotations: dict[str, str] | None = None) -> SeldonDeployment:
    return parse_deployment(
        {
            "apiVersion": "machinelearning.seldon.io/v1",
            "kind": "SeldonDeployment",
            "metadata": {"name": "income", "namespace": "seldon", "annotations": annotations or {}},
            "spec": {
                "predictors": [
                    {
                        "name": "default",
                        "graph": {
                            "name": "classifier",
                            "implementation": "SKLEARN_SERVER",
                            "modelUri": "gs://m/c",
                        },
                        "explainer": explainer,
                    }
                ]
            },
        }
    )


SAVED = {
    "type": "AnchorTabular",
    "modelUri": "gs://seldon-models/sklearn/income/explainer",
    "config": {"threshold": "0.95"},
    "envSecretRefName": "seldon-init",
    "replicas": 2,
    "containerSpec": {"name": "explainer", "resources": {"requests": {"cpu": "500m"}}},
}


def _named(manifests: list[Json], kind: str, name: str) -> Json:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert found, [(m["kind"], m["metadata"]["name"]) for m in manifests]
    return found[0]


@pytest.mark.parametrize("ingress", [Ingress.ISTIO, Ingress.GATEWAY_API, Ingress.SELDON_MESH])
def test_the_explainer_objects_are_valid_for_every_ingress(ingress: Ingress) -> None:
    manifests = render(
        _deployment(SAVED, {"seldon.io/rest-timeout": "100000"}), RenderSettings(ingress=ingress)
    )
    validate_all(manifests)
    deployment = _named(manifests, "Deployment", "income-default-explainer")
    service = _named(manifests, "Service", "income-default-explainer")
    assert deployment["spec"]["replicas"] == 2
    assert service["spec"]["ports"][0]["port"] == 9000
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in service["spec"]["selector"].items())
    if ingress is Ingress.ISTIO:
        (route,) = _named(manifests, "VirtualService", "income-explainer")["spec"]["http"]
        assert route["match"] == [{"uri": {"prefix": "/seldon/seldon/income-explainer/default/"}}]
        assert route["route"][0]["destination"]["host"] == "income-default-explainer.seldon.svc.cluster.local"
        assert route["timeout"] == "100s"
    elif ingress is Ingress.GATEWAY_API:
        (rule,) = _named(manifests, "HTTPRoute", "income-explainer")["spec"]["rules"]
        assert rule["matches"][0]["path"]["value"] == "/seldon/seldon/income-explainer/default"
        assert rule["backendRefs"] == [{"name": "income-default-explainer", "port": 9000}]
        assert rule["timeouts"] == {"request": "1m40s"}
    else:
        assert not [m for m in manifests if m["kind"] in ("VirtualService", "HTTPRoute")]


def test_the_explainer_container_gets_its_saved_explainer_and_asks_the_predictor_service() -> None:
    manifests = render(_deployment(SAVED), RenderSettings())
    pod = _named(manifests, "Deployment", "income-default-explainer")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    value = {args[i]: args[i + 1] for i in range(0, len(args) - 1) if args[i].startswith("--")}
    assert value["--type"] == "AnchorTabular"
    assert value["--model-uri"] == "/mnt/models"
    assert value["--predictor-url"] == "http://income-default.seldon.svc.cluster.local:8000"
    assert value["--config"] == '{"threshold": "0.95"}'
    assert container["resources"] == {"requests": {"cpu": "500m"}}  # containerSpec merged
    (init,) = pod["initContainers"]
    assert init["args"] == ["gs://seldon-models/sklearn/income/explainer", "/mnt/models"]
    assert init["envFrom"] == [{"secretRef": {"name": "seldon-init"}}]


def test_a_fitted_explainer_on_a_claim_and_one_from_init_parameters() -> None:
    claim = render(
        _deployment({"type": "KernelShap", "modelUri": "pvc://explainers/income"}), RenderSettings()
    )
    validate_all(claim)
    pod = _named(claim, "Deployment", "income-default-explainer")["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "explainers", "readOnly": True}
    assert pod["containers"][0]["volumeMounts"][0]["subPath"] == "income"
    fitted = render(_deployment({"type": "AnchorTabular", "initParameters": '{"seed": 1}'}), RenderSettings())
    validate_all(fitted)
    args = _named(fitted, "Deployment", "income-default-explainer")["spec"]["template"]["spec"]["containers"][
        0
    ]["args"]
    assert args[args.index("--init-parameters") + 1] == '{"seed": 1}'
    assert "--model-uri" not in args


def test_the_cluster_route_and_the_local_gateway_serve_the_same_path() -> None:
    deployment = _deployment(SAVED)
    view = explainer_view(deployment)
    assert view is not None
    (local,) = explainer_routes(view)
    (route,) = _named(render(deployment, RenderSettings()), "VirtualService", "income-explainer")["spec"][
        "http"
    ]
    assert route["match"][0]["uri"]["prefix"] == local.match.prefix
    assert route["rewrite"]["uri"] == local.route.prefix_rewrite


def test_no_explainer_renders_nothing_of_one() -> None:
    manifest = _deployment(SAVED).to_manifest()
    del manifest["spec"]["predictors"][0]["explainer"]
    names = [m["metadata"]["name"] for m in render(parse_deployment(manifest), RenderSettings())]
    assert not [n for n in names if "explainer" in n]


def test_integrated_gradients_runs_the_tensorflow_explainer_image() -> None:
    settings = RenderSettings()
    manifests = render(_deployment({"type": "IntegratedGradients", "modelUri": "gs://m/keras"}), settings)
    validate_all(manifests)
    pod = _named(manifests, "Deployment", "income-default-explainer")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == settings.explainer_tensorflow_image
