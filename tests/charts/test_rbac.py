"""The chart's RBAC is exactly what the operator and the gateway controller use: every kind mesh.render
renders (for a corpus of SeldonDeployments, with each ingress, under the settings the chart gives the
operator) may be read, created, patched and deleted; nothing else, no `*`, Secrets only by name in the
release namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mesh.render import RenderSettings, render
from mesh.spec import SeldonDeployment, load_path
from tests.charts.helm import NAMESPACE, RELEASE, Rendered, settings_of
from tests.charts.helm import render as render_chart

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    *sorted((ROOT / "examples").glob("**/*.yaml")),
    *sorted((ROOT / "tests" / "data" / "specs").glob("*.yaml")),
    *sorted((ROOT / "tests" / "data" / "render" / "corpus").glob("*.yaml")),
]
# kind -> (API group, resource); a kind mesh.render starts rendering must be added here and to the chart.
RESOURCES = {
    "Deployment": ("apps", "deployments"),
    "Service": ("", "services"),
    "ConfigMap": ("", "configmaps"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "ScaledObject": ("keda.sh", "scaledobjects"),
    "VirtualService": ("networking.istio.io", "virtualservices"),
    "DestinationRule": ("networking.istio.io", "destinationrules"),
    "EnvoyFilter": ("networking.istio.io", "envoyfilters"),
    "HTTPRoute": ("gateway.networking.k8s.io", "httproutes"),
    "GRPCRoute": ("gateway.networking.k8s.io", "grpcroutes"),
}
MANAGE = {"get", "list", "watch", "create", "patch", "delete"}
INGRESS_VALUES: dict[str, dict[str, Any]] = {
    "istio": {"keda": {"enabled": True}},
    "gateway-api": {"keda": {"enabled": True}, "istio": {"enabled": False}, "gatewayApi": {"enabled": True}},
    "seldon-mesh": {"keda": {"enabled": True}, "istio": {"enabled": False}, "gateway": {"enabled": True}},
}
Grants = dict[tuple[str, str], set[str]]


def corpus() -> list[SeldonDeployment]:
    return [deployment for path in SOURCES for deployment in load_path(path)]


def grants(rendered: Rendered, role: str, kinds: tuple[str, ...] = ("ClusterRole", "Role")) -> Grants:
    out: Grants = {}
    for kind in kinds:
        for obj in rendered.of_kind(kind):
            if obj["metadata"]["name"] != role:
                continue
            for rule in obj["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def rendered_resources(settings: RenderSettings) -> set[tuple[str, str]]:
    kinds = {m["kind"] for deployment in corpus() for m in render(deployment, settings)}
    unknown = kinds - set(RESOURCES)
    assert not unknown, f"mesh.render renders {unknown}: add them to RESOURCES and the chart's RBAC"
    return {RESOURCES[kind] for kind in kinds}


@pytest.mark.parametrize("ingress", INGRESS_VALUES)
def test_the_operator_may_manage_every_kind_it_renders(ingress: str) -> None:
    chart = render_chart(INGRESS_VALUES[ingress])
    settings = RenderSettings.model_validate(settings_of(chart))
    assert settings.ingress == ingress
    needed = rendered_resources(settings)
    granted = grants(chart, f"{RELEASE}-operator")
    for resource in sorted(needed):
        assert granted.get(resource, set()) >= MANAGE, (resource, granted.get(resource))
    # the corpus exercises every optional kind (an HPA, a KEDA ScaledObject, a PDB, graph ConfigMaps)
    assert {
        RESOURCES[k] for k in ("HorizontalPodAutoscaler", "ScaledObject", "PodDisruptionBudget", "ConfigMap")
    } <= needed


def test_the_operator_gets_nothing_more() -> None:
    # everything enabled: the renderable kinds, its own resource and events, and not one resource more
    chart = render_chart({"keda": {"enabled": True}, "gatewayApi": {"enabled": True}})
    granted = grants(chart, f"{RELEASE}-operator")
    renderable = set(RESOURCES.values()) - {("networking.istio.io", "envoyfilters")}
    assert set(granted) == renderable | {
        ("machinelearning.seldon.io", "seldondeployments"),
        ("machinelearning.seldon.io", "seldondeployments/status"),
        ("machinelearning.seldon.io", "seldondeployments/finalizers"),
        ("", "events"),
    }
    assert granted[("machinelearning.seldon.io", "seldondeployments")] == {"get", "list", "watch", "patch"}
    assert granted[("machinelearning.seldon.io", "seldondeployments/finalizers")] == {"update"}
    assert all(verbs == MANAGE for resource, verbs in granted.items() if resource in renderable)


@pytest.mark.parametrize(
    ("values", "read_only"),
    [
        ({}, {("keda.sh", "scaledobjects"), ("gateway.networking.k8s.io", "httproutes")}),
        ({"istio": {"enabled": False}}, {("networking.istio.io", "virtualservices")}),
    ],
)
def test_optional_kinds_are_written_only_when_enabled(
    values: dict[str, Any], read_only: set[tuple[str, str]]
) -> None:
    # read always: the operator watches every kind it may own that the cluster serves, and kopf stops on a
    # forbidden watch
    granted = grants(render_chart(values), f"{RELEASE}-operator")
    for resource in read_only:
        assert granted[resource] == {"get", "list", "watch"}, resource


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"singleNamespace": True, "gateway": {"enabled": True}},
        {"gateway": {"enabled": True}, "keda": {"enabled": True}},
    ],
)
def test_no_wildcards_and_secrets_only_by_name_in_the_release_namespace(values: dict[str, Any]) -> None:
    chart = render_chart(values)
    for role in (*chart.of_kind("ClusterRole"), *chart.of_kind("Role")):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)
            if "secrets" in rule["resources"]:
                assert role["kind"] == "Role" and role["metadata"]["namespace"] == NAMESPACE
                assert rule.get("resourceNames") == [f"{RELEASE}-webhook-cert"] or rule["verbs"] == ["create"]


def test_single_namespace_uses_roles_in_the_release_namespace() -> None:
    chart = render_chart({"singleNamespace": True, "gateway": {"enabled": True}})
    for name in (f"{RELEASE}-operator", f"{RELEASE}-gateway-controller"):
        role = chart.named("Role", name)
        binding = chart.named("RoleBinding", name)
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
    # only the two webhook configurations, by name, stay cluster-wide (they are cluster-scoped objects)
    (cluster_role,) = chart.of_kind("ClusterRole")
    assert cluster_role["metadata"]["name"] == f"{RELEASE}-operator-webhooks"
    assert all(rule.get("resourceNames") for rule in cluster_role["rules"])


def test_the_operator_may_look_up_each_webhook_configuration_as_either_kind() -> None:
    # mesh.operator.certs.patch_ca_bundle GETs each --webhook-config name as a Validating, then a Mutating
    # configuration: without get on both names for both kinds, the first lookup is a 403, not a 404
    (rule,) = render_chart().named("ClusterRole", f"{RELEASE}-operator-webhooks")["rules"]
    assert set(rule["resources"]) == {"validatingwebhookconfigurations", "mutatingwebhookconfigurations"}
    assert set(rule["resourceNames"]) == {f"{RELEASE}-validating", f"{RELEASE}-mutating"}
    assert set(rule["verbs"]) == {"get", "patch"}


def test_bindings_name_the_service_accounts_the_pods_run_as() -> None:
    chart = render_chart({"gateway": {"enabled": True}})
    accounts = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["serviceAccountName"]
        for d in chart.of_kind("Deployment")
    }
    bound = {
        (s["name"], s["namespace"])
        for binding in (*chart.of_kind("ClusterRoleBinding"), *chart.of_kind("RoleBinding"))
        for s in binding["subjects"]
    }
    assert (accounts[f"{RELEASE}-operator"], NAMESPACE) in bound
    assert (accounts[f"{RELEASE}-gateway-controller"], NAMESPACE) in bound
    assert (accounts[f"{RELEASE}-gateway"], NAMESPACE) not in bound  # Envoy gets no API access at all
    controller = grants(chart, f"{RELEASE}-gateway-controller")
    assert controller == {
        ("machinelearning.seldon.io", "seldondeployments"): {"get", "list", "watch"},
        ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch"},
    }
