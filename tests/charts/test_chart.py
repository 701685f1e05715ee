"""charts/seldon-mesh with the real Helm engine: lint-clean, and what it renders under each notable set of
values is valid for Kubernetes 1.29 and 1.37 and keeps the cluster contracts the operator, the webhook and
the in-cluster gateway rely on (names, ports, paths, settings, the Envoy bootstrap)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from mesh.local.envoy import find_envoy_binary
from mesh.render import Ingress, RenderSettings, ServerImages
from mesh.render.crd import custom_resource_definition
from mesh.render.labels import CONTROLLER_LABEL
from tests.charts.helm import CHART, NAMESPACE, RELEASE, Rendered, crds, render, settings_of
from tests.helpers.k8s_schemas import validate_all
from xds_controller.admin import ADMIN_CLUSTER, POD_PATHS
from xds_controller.bootstrap import GATEWAY_STATS_PREFIXES, render_bootstrap
from xds_controller.translate import Upstream

Json = dict[str, Any]
ADMIN_SOCKET = "/var/run/envoy/admin.sock"  # the gateway pod's emptyDir
CERT_MANAGER = "cert-manager.io/v1"  # no schema of cert-manager's CRDs in shared/schemas
CASES: dict[str, Json] = {
    "defaults": {},
    "istio off": {"istio": {"enabled": False}},
    "gateway-api": {"istio": {"enabled": False}, "gatewayApi": {"enabled": True}},
    "gateway": {"istio": {"enabled": False}, "gateway": {"enabled": True}},
    "singleNamespace": {"singleNamespace": True},
    "singleNamespace with the gateway": {"singleNamespace": True, "gateway": {"enabled": True}},
    "certManager": {"certManager": {"enabled": True}},
    "everything": {
        "keda": {"enabled": True},
        "gatewayApi": {"enabled": True},
        "gateway": {"enabled": True, "service": {"type": "LoadBalancer"}},
        "certManager": {"enabled": True},
        "controllerId": "team-a",
        "image": {"registry": "mirror.example.com", "tag": "0.2.0", "pullSecrets": [{"name": "mirror"}]},
        "operator": {"nodeSelector": {"pool": "system"}, "tolerations": [{"operator": "Exists"}]},
    },
}
CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"


def full(name: str) -> str:
    return f"{RELEASE}-{name}"


def container(deployment: Json) -> Json:
    containers: list[Json] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.mark.parametrize("case", CASES)
def test_lint_is_clean(case: str) -> None:
    for strict in (False, True):
        report = helm_python.lint(CHART, CASES[case], strict=strict, namespace=NAMESPACE)
        problems = [m for m in report["messages"] if m["severity"] >= 2]  # 1 is info ("icon is recommended")
        assert report["errors"] == [] and problems == [], report


_VALID: set[str] = set()  # objects validated already (most are the same in every case)


@pytest.mark.parametrize("case", CASES)
def test_every_rendered_object_is_valid(case: str) -> None:
    rendered = render(CASES[case])
    objects = {json.dumps(o, sort_keys=True): o for o in rendered.objects if o["apiVersion"] != CERT_MANAGER}
    validate_all([o for key, o in objects.items() if key not in _VALID])
    _VALID.update(objects)
    assert all(o["metadata"].get("namespace", NAMESPACE) == NAMESPACE for o in rendered.objects)
    assert len({(o["kind"], o["metadata"]["name"]) for o in rendered.objects}) == len(rendered.objects)


def test_the_crd_is_installed_from_crds_and_is_the_generated_one() -> None:
    installed = crds()
    assert installed == [custom_resource_definition()]
    validate_all(installed)


@pytest.mark.parametrize("case", CASES)
def test_settings_parse_as_render_settings(case: str) -> None:
    raw = settings_of(render(CASES[case]))
    assert set(raw) == set(RenderSettings.model_fields)  # exactly the fields, no typo silently ignored
    RenderSettings.model_validate(raw)


def test_default_settings_are_render_settings_defaults() -> None:
    # the chart's defaults and the code's say the same (images at the appVersion, Seldon's upstream servers)
    assert RenderSettings.model_validate(settings_of(render())) == RenderSettings()


def test_settings_carry_the_values() -> None:
    values = {
        "istio": {"gateway": "ingress/public"},
        "image": {"registry": "mirror.example.com/", "tag": "9.9.9"},
        "extproc": {"image": {"tag": "1.2.3"}},
        "storageInitializer": {"image": {"registry": "other.example.com", "repository": "me/init"}},
        "controllerId": "team-a",
        "clusterDomain": "corp.internal",
        "requestLogger": {"defaultEndpoint": "http://logs.example:8080"},
        "predictor_servers": {
            "MLFLOW_SERVER": {
                "protocols": {
                    "seldon": {"image": "me/mlflow", "defaultImageVersion": "1.0"},
                    "v2": {"image": "seldonio/mlserver", "defaultImageVersion": "1.7.1-mlflow"},
                }
            },
            "TRITON_SERVER": {"protocols": {"v2": {"image": "nvcr.io/nvidia/tritonserver:24.01-py3"}}},
        },
    }
    settings = RenderSettings.model_validate(settings_of(render(values)))
    assert settings.ingress is Ingress.ISTIO
    assert settings.istio_gateway == "ingress/public"
    assert settings.runtime_image == "mirror.example.com/seldonio/seldon-mesh-runtime:9.9.9"
    assert settings.extproc_image == "mirror.example.com/seldonio/seldon-mesh-extproc:1.2.3"
    assert settings.storage_initializer_image == "other.example.com/me/init:9.9.9"
    assert settings.controller_id == "team-a"
    assert settings.cluster_domain == "corp.internal"
    assert settings.request_logger_endpoint == "http://logs.example:8080"
    assert settings.predictor_servers["MLFLOW_SERVER"] == ServerImages(
        seldon="me/mlflow:1.0", v2="seldonio/mlserver:1.7.1-mlflow"
    )
    assert settings.predictor_servers["TRITON_SERVER"] == ServerImages(
        v2="nvcr.io/nvidia/tritonserver:24.01-py3"
    )
    assert (
        settings.predictor_servers["TENSORFLOW_SERVER"]
        == RenderSettings().predictor_servers["TENSORFLOW_SERVER"]
    )


@pytest.mark.parametrize(
    ("values", "ingress"),
    [
        ({}, Ingress.ISTIO),
        ({"istio": {"enabled": False}}, Ingress.SELDON_MESH),
        ({"gatewayApi": {"enabled": True, "parent": "gw/main"}}, Ingress.GATEWAY_API),
        ({"gateway": {"enabled": True}}, Ingress.SELDON_MESH),
        ({"gatewayApi": {"enabled": True}, "ingress": "istio"}, Ingress.ISTIO),
    ],
)
def test_the_ingress_follows_what_is_enabled(values: Json, ingress: Ingress) -> None:
    settings = RenderSettings.model_validate(settings_of(render(values)))
    assert settings.ingress is ingress
    if ingress is Ingress.GATEWAY_API:
        assert settings.gateway_api_parent == "gw/main"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        # values.schema.json
        ({"ingress": "nginx"}, "at '/ingress': value must be one of"),
        ({"singlenamespace": True}, "additional properties 'singlenamespace' not allowed"),
        ({"gateway": {"service": {"type": "Ingress"}}}, "at '/gateway/service/type'"),
        ({"istio": {"gateway": "seldon-gateway"}}, "at '/istio/gateway'"),
        (
            {"predictor_servers": {"X": {"protocols": {"grpc": {"image": "x"}}}}},
            "additional properties 'grpc' not allowed",
        ),
        # the templates' own checks
        ({"ingress": "gateway-api"}, "needs gatewayApi.enabled"),
        ({"istio": {"enabled": False}, "ingress": "istio"}, "needs istio.enabled"),
    ],
)
def test_bad_values_fail_with_a_reason(values: Json, message: str) -> None:
    with pytest.raises(helm_python.HelmError, match=message):
        render(values)


def test_the_operator_pod_keeps_its_contract() -> None:
    rendered = render()
    deployment = rendered.named("Deployment", full("operator"))
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    assert main["command"] == ["seldon-mesh", "operator"]
    assert main["args"] == [
        "--settings=/etc/seldon-mesh/settings.yaml",
        "--webhook-port=9443",
        "--health-port=8080",
        f"--webhook-service={full('webhook')}",
        f"--webhook-secret={full('webhook-cert')}",
        f"--webhook-config={full('validating')}",
        f"--webhook-config={full('mutating')}",
    ]
    env = {e["name"]: e for e in main["env"]}
    assert env["WATCH_NAMESPACE"]["value"] == ""
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["CONTROLLER_ID"]["value"] == ""
    assert main["image"] == "seldonio/seldon-mesh-operator:0.1.0"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert main[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"webhook": 9443, "health": 8080}
    assert main["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/seldon-mesh"]]["configMap"]["name"] == full("settings")  # settings.yaml in it
    assert "emptyDir" in volumes[mounts["/tmp"]]  # the one writable path (the root filesystem is read-only)
    assert pod["serviceAccountName"] == full("operator")
    assert rendered.has("ServiceAccount", full("operator"))


def test_single_namespace_watches_the_release_namespace() -> None:
    rendered = render({"singleNamespace": True, "gateway": {"enabled": True}}, namespace="models")
    env = {
        e["name"]: e.get("value") for e in container(rendered.named("Deployment", full("operator")))["env"]
    }
    assert env["WATCH_NAMESPACE"] == "models"
    controller = container(rendered.named("Deployment", full("gateway-controller")))
    assert controller["args"][-2:] == ["--namespace", "models"]
    for hook in (
        *rendered.of_kind("ValidatingWebhookConfiguration"),
        *rendered.of_kind("MutatingWebhookConfiguration"),
    ):
        assert hook["webhooks"][0]["namespaceSelector"] == {
            "matchLabels": {"kubernetes.io/metadata.name": "models"}
        }


def test_the_webhooks_reach_the_operator() -> None:
    rendered = render()
    service = rendered.named("Service", full("webhook"))
    operator = rendered.named("Deployment", full("operator"))
    pod_labels = operator["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    named_ports = {p["name"]: p["containerPort"] for p in container(operator)["ports"]}
    assert port["port"] == 443 and named_ports[port["targetPort"]] == 9443
    for kind, name, path in (
        ("ValidatingWebhookConfiguration", full("validating"), "/validate"),
        ("MutatingWebhookConfiguration", full("mutating"), "/mutate"),
    ):
        (hook,) = rendered.named(kind, name)["webhooks"]
        assert hook["clientConfig"] == {
            "service": {"name": full("webhook"), "namespace": NAMESPACE, "path": path, "port": 443}
        }
        assert hook["rules"] == [
            {
                "apiGroups": ["machinelearning.seldon.io"],
                "apiVersions": ["v1", "v1alpha2", "v1alpha3"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["seldondeployments"],
                "scope": "Namespaced",
            }
        ]
        assert hook["admissionReviewVersions"] == ["v1"] and hook["sideEffects"] == "None"
        assert "namespaceSelector" not in hook
        assert hook["objectSelector"] == {
            "matchExpressions": [{"key": CONTROLLER_LABEL, "operator": "DoesNotExist"}]
        }
        assert hook["timeoutSeconds"] == 5 and hook["failurePolicy"] == "Fail"


def test_a_controller_id_scopes_the_webhooks_to_its_seldon_deployments() -> None:
    rendered = render({"controllerId": "team-a"})
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        (configuration,) = rendered.of_kind(kind)
        (hook,) = configuration["webhooks"]
        assert hook["objectSelector"] == {"matchLabels": {CONTROLLER_LABEL: "team-a"}}
    env = {
        e["name"]: e.get("value") for e in container(rendered.named("Deployment", full("operator")))["env"]
    }
    assert env["CONTROLLER_ID"] == "team-a"
    assert RenderSettings.model_validate(settings_of(rendered)).controller_id == "team-a"


def test_cert_manager_issues_the_webhook_certificate() -> None:
    rendered = render({"certManager": {"enabled": True}})
    certificate = rendered.named("Certificate", full("webhook-cert"))
    assert certificate["apiVersion"] == CERT_MANAGER
    assert certificate["spec"]["secretName"] == full("webhook-cert")
    assert certificate["spec"]["dnsNames"] == [
        f"{full('webhook')}.{NAMESPACE}.svc",
        f"{full('webhook')}.{NAMESPACE}.svc.cluster.local",
    ]
    issuer = rendered.named("Issuer", certificate["spec"]["issuerRef"]["name"])
    assert issuer["spec"] == {"selfSigned": {}} and certificate["spec"]["issuerRef"]["kind"] == "Issuer"
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        (hook,) = rendered.of_kind(kind)
        assert hook["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": f"{NAMESPACE}/{full('webhook-cert')}"
        }
    operator = rendered.named("Deployment", full("operator"))
    main = container(operator)
    assert not any(
        a.startswith(("--webhook-service", "--webhook-secret", "--webhook-config")) for a in main["args"]
    )
    assert f"--cert-dir={CERT_DIR}" in main["args"]
    mount = next(m for m in main["volumeMounts"] if m["mountPath"] == CERT_DIR)
    volume = next(v for v in operator["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == full("webhook-cert")
    # cert-manager's cainjector patches the CA: the operator gets no webhook or Secret permissions
    assert not rendered.has("ClusterRole", full("operator-webhooks"))
    assert not rendered.has("Role", full("operator-webhook-cert"))


def test_the_gateway_keeps_its_contract() -> None:
    rendered = render({"gateway": {"enabled": True}})
    controller = rendered.named("Deployment", full("gateway-controller"))
    main = container(controller)
    assert main["command"] == ["python", "-m", "xds_controller.kube"]
    assert main["args"] == ["--xds-port", "18000", "--health-port", "8081", "--listen-port", "8080"]
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    xds = rendered.named("Service", full("xds"))
    assert xds["spec"]["ports"] == [
        {
            "name": "grpc-xds",
            "port": 18000,
            "targetPort": "grpc-xds",
            "protocol": "TCP",
            "appProtocol": "grpc",
        }
    ]
    envoy_deployment = rendered.named("Deployment", full("gateway"))
    envoy = container(envoy_deployment)
    assert envoy["image"] == "envoyproxy/envoy:v1.40.0"
    assert envoy["args"][:2] == ["-c", "/etc/envoy/bootstrap.json"]
    pod = envoy_deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    mount = next(m for m in envoy["volumeMounts"] if m["mountPath"] == "/etc/envoy")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == full("gateway-bootstrap")
    gateway = rendered.named("Service", full("gateway"))
    assert gateway["spec"]["type"] == "ClusterIP"
    assert gateway["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert {p["name"]: p["containerPort"] for p in envoy["ports"]} == {"http": 8080, "stats": 9902}
    annotations = envoy_deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9902"
    assert annotations["prometheus.io/path"] == "/stats/prometheus"
    admin = next(m for m in envoy["volumeMounts"] if m["mountPath"] == "/var/run/envoy")
    assert next(v for v in pod["volumes"] if v["name"] == admin["name"])["emptyDir"]["medium"] == "Memory"
    typed = render({"gateway": {"enabled": True, "service": {"type": "LoadBalancer"}}})
    assert typed.named("Service", full("gateway"))["spec"]["type"] == "LoadBalancer"
    budget = rendered.named("PodDisruptionBudget", full("gateway"))
    assert budget["spec"]["selector"]["matchLabels"] == envoy_deployment["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["maxUnavailable"] == 1
    single = render({"gateway": {"enabled": True, "envoy": {"replicas": 1}}})
    assert not single.has("PodDisruptionBudget", full("gateway"))  # it would block every drain
    assert not render().has("Deployment", full("gateway"))


def test_services_select_exactly_their_pods() -> None:
    rendered = render(CASES["everything"])
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in rendered.of_kind("Deployment")
    }
    for deployment in rendered.of_kind("Deployment"):
        assert (
            deployment["spec"]["selector"]["matchLabels"].items()
            <= pods[deployment["metadata"]["name"]].items()
        )
    for service in rendered.of_kind("Service"):
        selected = [
            name for name, labels in pods.items() if service["spec"]["selector"].items() <= labels.items()
        ]
        assert len(selected) == 1, (service["metadata"]["name"], selected)


def _bootstrap(rendered: Rendered) -> Json:
    loaded: Json = json.loads(
        rendered.named("ConfigMap", full("gateway-bootstrap"))["data"]["bootstrap.json"]
    )
    return loaded


@pytest.mark.parametrize("namespace", [NAMESPACE, "edge"])
def test_the_gateway_bootstrap_is_render_bootstraps(namespace: str) -> None:
    chart_bootstrap = _bootstrap(render({"gateway": {"enabled": True}}, namespace=namespace))
    expected = render_bootstrap(
        "seldon-mesh-gateway",
        Upstream(f"{full('xds')}.{namespace}.svc", 18000),
        admin_port=0,
        cluster="seldon-mesh-gateway",
        stats_prefixes=GATEWAY_STATS_PREFIXES,
        admin_socket=ADMIN_SOCKET,
        stats_port=9902,
        stats_host="0.0.0.0",  # the pod's interfaces: the kubelet and Prometheus come from outside it
        stats_paths=POD_PATHS,
    )
    # The xDS server's address is a Service name: a STRICT_DNS cluster (a STATIC one refuses a name).
    xds_cluster, admin_cluster = chart_bootstrap["static_resources"]["clusters"]
    assert xds_cluster["type"] == "STRICT_DNS"
    assert admin_cluster["name"] == ADMIN_CLUSTER
    assert chart_bootstrap["admin"] == {"address": {"pipe": {"path": ADMIN_SOCKET, "mode": 0o600}}}
    assert chart_bootstrap == expected


def test_envoy_accepts_the_gateway_bootstrap(tmp_path: Path) -> None:
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(_bootstrap(render({"gateway": {"enabled": True}}))))
    result = subprocess.run(
        [str(find_envoy_binary()), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_is_a_grafana_configmap() -> None:
    rendered = render()
    dashboard = rendered.named("ConfigMap", full("dashboard"))
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = (CHART / "dashboards" / "seldon-mesh.json").read_text(encoding="utf-8")
    assert json.loads(dashboard["data"]["seldon-mesh.json"]) == json.loads(source)
    assert not render({"grafana": {"dashboard": {"enabled": False}}}).has("ConfigMap", full("dashboard"))


def test_notes_say_how_to_start() -> None:
    assert "kubectl apply -f examples/iris/iris.yaml" in render().notes
    assert "port-forward svc/seldon-mesh-gateway" in render({"gateway": {"enabled": True}}).notes


def test_values_file_is_documented() -> None:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    for key in (
        "istio",
        "keda",
        "predictor_servers",
        "storageInitializer",
        "singleNamespace",
        "controllerId",
    ):
        assert key in values
    # every top-level key has a comment right above it
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith((" ", "#")) and line.split(":")[0] in values:
            assert lines[index - 1].startswith("#"), line


@pytest.mark.parametrize("case", ["defaults", "everything"])
def test_every_pod_meets_the_restricted_pod_security_standard(case: str) -> None:
    for deployment in render(CASES[case]).of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"]
        assert not any(pod.get(key) for key in ("hostNetwork", "hostPID", "hostIPC")), name
        assert not any("hostPath" in volume for volume in pod.get("volumes", [])), name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for each in pod["containers"]:
            context = each["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert "privileged" not in context and not any("hostPort" in p for p in each.get("ports", []))
            assert each["resources"]["requests"], name
