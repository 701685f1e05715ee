"""The API objects the operator reads and writes, as lightkube generic resources over plain dicts.

Rendered manifests are dicts of many kinds (workloads, Istio, Gateway API, KEDA); one generic resource per
(apiVersion, kind) lets the operator apply, list and delete them all the same way, and an object of a kind
the cluster does not serve (a CRD not installed) is told apart from every other API error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from mesh.spec import KIND

GROUP = "machinelearning.seldon.io"
PLURAL = "seldondeployments"

# Every kind mesh.render may produce, with its plural (the path segment the API serves it under).
PLURALS: dict[tuple[str, str], str] = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("v1", "ConfigMap"): "configmaps",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobjects",
    ("networking.istio.io/v1", "VirtualService"): "virtualservices",
    ("networking.istio.io/v1", "DestinationRule"): "destinationrules",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproutes",
    ("gateway.networking.k8s.io/v1", "GRPCRoute"): "grpcroutes",
}
INGRESS_KINDS = frozenset({"VirtualService", "DestinationRule", "HTTPRoute", "GRPCRoute"})

_resources: dict[tuple[str, str], Any] = {}  # generic resource classes, made at runtime


def resource(api_version: str, kind: str) -> Any:
    """The (cached) generic resource of one namespaced kind; an unlisted kind gets the usual plural."""
    key = (api_version, kind)
    if key not in _resources:
        group, _, version = api_version.rpartition("/")
        plural = PLURALS.get(key, kind.lower() + "s")
        _resources[key] = create_namespaced_resource(group, version, kind, plural)
    return _resources[key]


def cluster_resource(api_version: str, kind: str) -> Any:
    """The (cached) generic resource of one cluster-scoped kind (webhook configurations)."""
    key = (api_version, kind)
    if key not in _resources:
        group, _, version = api_version.rpartition("/")
        _resources[key] = create_global_resource(group, version, kind, kind.lower() + "s")
    return _resources[key]


def seldon_deployment() -> Any:
    return resource(f"{GROUP}/v1", KIND)


def secret() -> Any:
    return resource("v1", "Secret")


def event() -> Any:
    return resource("v1", "Event")


def manifest_resource(manifest: Mapping[str, Any]) -> Any:
    return resource(str(manifest["apiVersion"]), str(manifest["kind"]))


def status_code(error: ApiError) -> int:
    code = getattr(error.status, "code", None)
    return int(code) if code else error.response.status_code if error.response is not None else 0


def is_not_found(error: ApiError) -> bool:
    return status_code(error) == 404


def as_dict(obj: Any) -> dict[str, Any]:
    """A generic resource (or a dict) as a plain JSON-able dict."""
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "to_dict"):
        return dict(obj.to_dict())
    return dict(obj)
