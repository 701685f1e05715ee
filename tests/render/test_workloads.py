"""mesh.render's workloads: the Deployments, Services, extproc, autoscalers and budgets of a corpus of
SeldonDeployments, validated strictly against the real schemas, and what users and tools rely on in them
(Seldon's names, labels, ports, environment and /mnt/models), asserted by name."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.config import parse_config
from mesh.render import Ingress, RenderSettings, ServerImages, render
from mesh.render.names import MAX_NAME
from mesh.spec import SeldonDeployment, SpecError, load_path, parse_deployment
from mesh.spec.extproc_config import needs_extproc
from tests.helpers.k8s_schemas import validate_all
from xds_controller.translate import Direct, plan_predictor

ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = ROOT / "tests" / "data" / "render" / "corpus"
GOLDEN = ROOT / "tests" / "data" / "render" / "golden-workloads"
SOURCES = [
    ROOT / "examples" / "iris" / "iris.yaml",
    ROOT / "examples" / "iris" / "kubernetes" / "iris.yaml",
    *sorted((ROOT / "tests" / "data" / "specs").glob("*.yaml")),
    *sorted(CORPUS_DIR.glob("*.yaml")),
]
Json = dict[str, Any]


def _corpus() -> dict[str, SeldonDeployment]:
    out: dict[str, SeldonDeployment] = {}
    for path in SOURCES:
        for deployment in load_path(path):
            out[f"{path.parent.name}/{path.stem}/{deployment.metadata.name}"] = deployment
    return out


CORPUS = _corpus()


def one(path: str) -> SeldonDeployment:
    return next(d for key, d in CORPUS.items() if key.startswith(path))


def of_kind(manifests: list[Json], kind: str) -> list[Json]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: list[Json], kind: str, name: str) -> Json:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert found, f"no {kind} {name}: {[(m['kind'], m['metadata']['name']) for m in manifests]}"
    return found[0]


def env_of(container: Json) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def pods(manifests: list[Json]) -> Iterator[tuple[Json, Json]]:
    for deployment in of_kind(manifests, "Deployment"):
        yield deployment, deployment["spec"]["template"]


@pytest.mark.parametrize("case", sorted(CORPUS))
@pytest.mark.parametrize("ingress", list(Ingress))
def test_every_rendered_object_is_valid(case: str, ingress: Ingress) -> None:
    manifests = render(CORPUS[case], RenderSettings(ingress=ingress))
    validate_all(manifests)
    assert len({(m["kind"], m["metadata"]["name"]) for m in manifests}) == len(manifests), "a name twice"
    for manifest in manifests:
        assert len(manifest["metadata"]["name"]) <= MAX_NAME
        assert manifest["metadata"]["labels"]["seldon-deployment-id"] == CORPUS[case].metadata.name


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_every_service_selects_the_pods_it_means(case: str) -> None:
    deployment = CORPUS[case]
    manifests = render(deployment)
    templates = [t for _, t in pods(manifests)]
    for service in of_kind(manifests, "Service"):
        spec = service["spec"]
        if spec["type"] == "ExternalName":
            continue
        selected = [t for t in templates if spec["selector"].items() <= t["metadata"]["labels"].items()]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {len(selected)} pod kinds"
        container_ports = {
            p["containerPort"] for c in selected[0]["spec"]["containers"] for p in c.get("ports", [])
        }
        assert {p["targetPort"] for p in spec["ports"]} <= container_ports
    for predictor in deployment.spec.predictors:
        service = named(manifests, "Service", _predictor_service(deployment, predictor.name))
        if service["spec"]["type"] != "ExternalName":
            assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
                ("http", 8000),
                ("grpc", 5001),
            ]


def _predictor_service(deployment: SeldonDeployment, predictor: str) -> str:
    from mesh.render.names import predictor_service

    found = deployment.predictor(predictor)
    assert found is not None
    return predictor_service(deployment, found)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_pods_carry_seldons_labels_and_the_subset_label(case: str) -> None:
    deployment = CORPUS[case]
    for workload, template in pods(render(deployment)):
        labels = template["metadata"]["labels"]
        assert labels["seldon-deployment-id"] == deployment.metadata.name
        assert {"app", "version", "seldon-app", "seldon-predictor"} <= labels.keys()
        assert labels["app.kubernetes.io/managed-by"] == "seldon-mesh"
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        strategy = workload["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0


def test_iris_is_what_a_seldon_user_expects() -> None:
    deployment = one("iris/iris")
    manifests = render(deployment)
    workload = named(manifests, "Deployment", "iris-model-default-0-classifier")
    assert workload["spec"]["replicas"] == 1
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "classifier"
    assert container["image"] == RenderSettings().runtime_image
    args = container["args"]
    assert args[args.index("--implementation") + 1] == "SKLEARN_SERVER"
    assert args[args.index("--model-uri") + 1] == "/mnt/models"
    assert "--gateway-facing" in args
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
        ("http", 9000),
        ("grpc", 9500),
        ("metrics", 6000),
    ]
    env = env_of(container)
    assert env["PREDICTIVE_UNIT_ID"] == "classifier"
    assert env["PREDICTOR_ID"] == "default"
    assert env["SELDON_DEPLOYMENT_ID"] == "iris-model"
    assert env["PREDICTIVE_UNIT_HTTP_SERVICE_PORT"] == "9000"
    (init,) = pod["initContainers"]
    assert init["image"] == RenderSettings().storage_initializer_image
    assert init["args"] == ["./model", "/mnt/models"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert container["securityContext"]["runAsNonRoot"] is True
    service = named(manifests, "Service", "iris-model-default")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8000, 9000), (5001, 9500)]
    named(manifests, "Service", "iris-model-default-classifier")
    assert not of_kind(manifests, "ConfigMap"), "a single model needs no extproc"


def test_a_users_container_keeps_its_image_and_gets_the_seldon_environment() -> None:
    manifests = render(one("corpus/custom-container"))
    workload = named(manifests, "Deployment", "custom-default-0-fraud-log-shipper")
    template = workload["spec"]["template"]
    fraud, shipper = template["spec"]["containers"]
    assert fraud["image"] == "example.com/fraud/model:7.0" and "command" not in fraud
    assert fraud["imagePullPolicy"] == "IfNotPresent"
    env = env_of(fraud)
    assert env["PREDICTIVE_UNIT_SERVICE_PORT"] == "9100", "what the user set is kept"
    assert env["MODEL_NAME"] == "FraudModel"
    assert json.loads(env["PREDICTIVE_UNIT_PARAMETERS"]) == [
        {"name": "threshold", "value": "0.7", "type": "FLOAT"}
    ]
    assert env["PREDICTOR_LABELS"] == '{"version": "v7"}'
    assert fraud["readinessProbe"] == {
        "tcpSocket": {"port": 9100},
        "initialDelaySeconds": 20,
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    assert shipper == {"name": "log-shipper", "image": "example.com/ops/shipper:1.2"}
    assert template["spec"]["serviceAccountName"] == "fraud-models"
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "true"
    assert template["metadata"]["labels"]["version"] == "v7"
    service = named(manifests, "Service", "custom-default")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [9100, 9500]


def test_a_graph_runs_extproc_with_its_config_pointing_at_component_services() -> None:
    deployment = one("corpus/graph-combiner")
    manifests = render(deployment)
    config_map = named(manifests, "ConfigMap", "ensemble-main-graph")
    config = parse_config(json.loads(config_map["data"]["graph.json"]))
    graph = config.deployment("models", "ensemble")
    assert graph is not None
    root = graph.predictors[0].graph
    sklearn = root.children[0].children[0]
    assert sklearn.http == "ensemble-main-sklearn.models.svc.cluster.local:9001"
    extproc = named(manifests, "Deployment", "ensemble-main-extproc")
    assert extproc["spec"]["replicas"] == 2
    template = extproc["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["image"] == RenderSettings().extproc_image
    assert {"name": "graph", "configMap": {"name": "ensemble-main-graph"}} in template["spec"]["volumes"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "graph")
    assert "subPath" not in mount, "a subPath mount is never updated by the kubelet"
    service = named(manifests, "Service", "ensemble-main")
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    models = named(manifests, "Deployment", "ensemble-main-1-sklearn-xgboost")
    pod = models["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["sklearn", "xgboost"]
    assert pod["nodeSelector"] == {"pool": "models"}, "the empty componentSpec's pod fields apply"
    inits = {c["name"]: c for c in pod["initContainers"]}
    assert inits["sklearn-model-initializer"]["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert "envFrom" not in inits["xgboost-model-initializer"]
    assert all("--gateway-facing" not in c["args"] for c in pod["containers"])


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_extproc_exactly_where_the_gateway_needs_it(case: str) -> None:
    deployment = CORPUS[case]
    manifests = render(deployment)
    for predictor in deployment.spec.predictors:
        local = not isinstance(plan_predictor(deployment, predictor), Direct)
        assert needs_extproc(predictor) == local
        extproc = [m for m in of_kind(manifests, "Deployment") if m["metadata"]["name"].endswith("-extproc")]
        has = any(
            m["spec"]["template"]["metadata"]["labels"]["seldon-predictor"] == predictor.name for m in extproc
        )
        assert has == local


def test_an_hpa_owns_replicas_and_v2beta1_metrics_are_restated() -> None:
    manifests = render(one("corpus/hpa"))
    main = named(manifests, "Deployment", "autoscaled-main-0-classifier")
    assert "replicas" not in main["spec"]
    hpa = named(manifests, "HorizontalPodAutoscaler", "autoscaled-main-0-classifier")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": main["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        },
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": "100"},
            },
        },
    ]
    canary = named(manifests, "HorizontalPodAutoscaler", "autoscaled-canary-0-classifier")
    assert canary["spec"]["metrics"][0]["resource"]["target"] == {
        "type": "AverageValue",
        "averageValue": "512Mi",
    }
    pdb = named(manifests, "PodDisruptionBudget", "autoscaled-main-0-classifier")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == main["spec"]["selector"]["matchLabels"]
    other = named(manifests, "Deployment", "autoscaled-canary-0-classifier")
    assert pdb["spec"]["selector"]["matchLabels"] != other["spec"]["selector"]["matchLabels"]
    assert main["spec"]["template"]["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "500m"}}


def test_keda_scales_and_a_pvc_model_is_mounted_not_downloaded() -> None:
    manifests = render(one("corpus/keda"))
    workload = named(manifests, "Deployment", "keda-model-default-0-classifier")
    assert "replicas" not in workload["spec"]
    scaled = named(manifests, "ScaledObject", workload["metadata"]["name"])
    assert scaled["spec"]["scaleTargetRef"]["name"] == workload["metadata"]["name"]
    assert scaled["spec"]["triggers"][0]["type"] == "prometheus"
    assert scaled["spec"]["maxReplicaCount"] == 5
    pod = workload["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert pod["volumes"] == [
        {
            "name": "classifier-provision-location",
            "persistentVolumeClaim": {"claimName": "models-claim", "readOnly": True},
        }
    ]
    mount = pod["containers"][0]["volumeMounts"][0]
    assert mount == {
        "name": "classifier-provision-location",
        "mountPath": "/mnt/models",
        "readOnly": True,
        "subPath": "xgboost/iris",
    }


def test_upstream_servers_run_the_images_predictor_servers_names() -> None:
    settings = RenderSettings()
    triton, tfserving = (d for k, d in CORPUS.items() if k.startswith("corpus/upstream-servers"))
    manifests = render(triton, settings)
    resnet = named(manifests, "Deployment", "triton-default-0-resnet")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert resnet["image"] == settings.predictor_servers["TRITON_SERVER"].v2
    assert "--model-repository=/mnt/models" in resnet["args"]
    assert resnet["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    hf = named(manifests, "Deployment", "triton-hf-0-sentiment")["spec"]["template"]["spec"]["containers"][0]
    assert hf["image"] == settings.predictor_servers["HUGGINGFACE_SERVER"].v2
    env = env_of(hf)
    assert env["MLSERVER_MODEL_IMPLEMENTATION"] == "mlserver_huggingface.HuggingFaceRuntime"
    assert json.loads(env["MLSERVER_MODEL_EXTRA"]) == {"task": "text-classification"}
    assert (env["MLSERVER_HTTP_PORT"], env["MLSERVER_GRPC_PORT"]) == ("9000", "9500")
    manifests = render(tfserving, settings)
    tf = named(manifests, "Deployment", "tfserving-default-0-halfplustwo")["spec"]["template"]["spec"]
    assert "initContainers" not in tf, "seldon.io/no-storage-initializer"
    assert "--model_base_path=gs://seldon-models/tfserving/half_plus_two" in tf["containers"][0]["args"]
    custom = settings.model_copy(
        update={"predictor_servers": {"SKLEARN_SERVER": ServerImages(v2="seldonio/mlserver:1.7.1-sklearn")}}
    )
    v2 = parse_deployment(
        {
            **one("iris/iris").to_manifest(),
            "spec": {**one("iris/iris").to_manifest()["spec"], "protocol": "v2"},
        }
    )
    container = of_kind(render(v2, custom), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "seldonio/mlserver:1.7.1-sklearn"
    assert env_of(container)["MLSERVER_MODEL_IMPLEMENTATION"] == "mlserver_sklearn.SKLearnModel"


def test_a_predictor_servers_image_of_our_runtime_runs_our_runtime() -> None:
    """HUGGINGFACE_SERVER pointed at seldonio/seldon-mesh-runtime-huggingface (docker/Dockerfile's
    runtime-huggingface target) runs seldon-mesh-runtime with the node's parameters, not MLServer's."""
    image = "registry.example:5000/seldonio/seldon-mesh-runtime-huggingface:0.1.0"
    defaults = RenderSettings()
    servers = {**defaults.predictor_servers, "HUGGINGFACE_SERVER": ServerImages(v2=image)}
    settings = defaults.model_copy(update={"predictor_servers": servers})
    triton = next(d for k, d in CORPUS.items() if k.startswith("corpus/upstream-servers"))
    hf = named(render(triton, settings), "Deployment", "triton-hf-0-sentiment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert hf["image"] == image
    assert hf["command"] == ["seldon-mesh-runtime"]
    assert hf["args"][:2] == ["--implementation", "HUGGINGFACE_SERVER"]
    assert "MLSERVER_MODEL_IMPLEMENTATION" not in env_of(hf)
    assert hf["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_a_server_with_no_image_is_rejected_with_its_field_path() -> None:
    settings = RenderSettings(predictor_servers={})
    triton = next(d for k, d in CORPUS.items() if k.startswith("corpus/upstream-servers"))
    with pytest.raises(SpecError) as error:
        render(triton, settings)
    assert error.value.errors[0].path == "spec.predictors[0].graph.implementation"


def test_long_names_are_shortened_and_headless_is_honoured() -> None:
    manifests = render(one("corpus/multi-shadow"))
    names = [m["metadata"]["name"] for m in manifests]
    assert all(len(n) <= MAX_NAME for n in names)
    assert any(n.startswith("seldon-") and len(n) == 39 for n in names)
    headless = [s for s in of_kind(manifests, "Service") if s["spec"].get("clusterIP") == "None"]
    assert [s["metadata"]["labels"]["seldon-predictor"] for s in headless] == ["shadow-b"]


def test_owner_references_when_the_deployment_is_in_a_cluster() -> None:
    manifest = one("iris/iris").to_manifest()
    manifest["metadata"]["uid"] = "5f0c-uid"
    for rendered in render(parse_deployment(manifest)):
        (owner,) = rendered["metadata"]["ownerReferences"]
        assert owner["uid"] == "5f0c-uid" and owner["kind"] == "SeldonDeployment" and owner["controller"]


def test_rendering_is_pure_and_objects_share_nothing() -> None:
    deployment = one("corpus/graph-combiner")
    first, second = render(deployment), render(deployment)
    assert first == second
    first[1]["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"].append(
        "X"
    )
    assert render(deployment) == second


GOLDEN_CASES = ("iris/iris", "corpus/graph-combiner", "corpus/hpa")


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_renderings(case: str) -> None:
    from mesh.cli.render import to_yaml_stream

    path = GOLDEN / (case.split("/")[1] + ".yaml")
    text = to_yaml_stream(render(one(case), RenderSettings(ingress=Ingress.SELDON_MESH)))
    if os.environ.get("UPDATE_GOLDENS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text, f"{path} differs: UPDATE_GOLDENS=1 rewrites it, then review the diff"
    assert [d for d in yaml.safe_load_all(text) if d]


def test_seldons_istio_gateway_annotation_picks_the_gateway() -> None:
    manifest = one("iris/iris").to_manifest()
    manifest["metadata"]["annotations"] = {"seldon.io/istio-gateway": "team/edge"}
    (service,) = of_kind(render(parse_deployment(manifest)), "VirtualService")
    assert service["spec"]["gateways"] == ["team/edge"]


def test_a_logged_single_model_logs_in_process_through_a_spool_that_survives_restarts() -> None:
    manifest = one("iris/iris").to_manifest()
    manifest["spec"]["predictors"][0]["graph"]["logger"] = {"mode": "all"}
    manifests = render(parse_deployment(manifest))
    validate_all(manifests)
    pod = of_kind(manifests, "Deployment")[0]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--logger-mode") + 1] == "all"
    spool = args[args.index("--logger-spool-dir") + 1]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == spool)
    assert {"name": mount["name"], "emptyDir": {}} in pod["volumes"]
    assert env_of(container)["REQUEST_LOGGER_DEFAULT_ENDPOINT"] == RenderSettings().request_logger_endpoint
    manifest["metadata"]["annotations"] = {"seldon.io/payload-log-stream": "true"}
    streamed = of_kind(render(parse_deployment(manifest)), "Deployment")[0]["spec"]["template"]["spec"]
    assert "--logger-mode" not in streamed["containers"][0]["args"]


def _runtime_containers(manifests: list[Json]) -> list[Json]:
    runtime = RenderSettings().runtime_image
    return [
        c
        for _, template in pods(manifests)
        for c in template["spec"]["containers"]
        if c.get("image") == runtime and c.get("command") == ["seldon-mesh-runtime"]
    ]


def _flag(container: Json, flag: str) -> str:
    args: list[str] = container["args"]
    assert args.count(flag) == 1, (container["name"], args)
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("annotated", [None, "1048576"])
def test_the_request_limit_reaches_every_runtime_and_extproc_as_locally(annotated: str | None) -> None:
    """`seldon.io/grpc-max-message-size` is one limit for REST and gRPC: our runtimes get both flags of
    it (as `seldon-mesh up` gives them), extproc reads it from its graph config; 2 GiB - 1 without it."""
    source = yaml.safe_load((CORPUS_DIR / "graph-combiner.yaml").read_text())
    if annotated is not None:
        source["metadata"]["annotations"] = {"seldon.io/grpc-max-message-size": annotated}
    manifests = render(parse_deployment(source))
    expected = annotated or str(2**31 - 1)
    containers = _runtime_containers(manifests)
    assert [c["name"] for c in containers] == ["sklearn", "xgboost"]
    for container in containers:
        assert (
            _flag(container, "--max-request-bytes")
            == _flag(container, "--grpc-max-message-bytes")
            == expected
        )
    config_map = named(manifests, "ConfigMap", "ensemble-main-graph")
    graph = parse_config(json.loads(config_map["data"]["graph.json"])).deployment("models", "ensemble")
    assert graph is not None
    assert graph.predictors[0].rest_body_bytes == int(expected)
    single = _runtime_containers(render(one("iris/iris")))
    assert [_flag(c, "--max-request-bytes") for c in single] == [str(2**31 - 1)]
