"""A predictor's Services: its own (`<sdep>-<predictor>`, ports 8000 REST and 5001 gRPC, what the
ingress routes to) and one per graph node (`<sdep>-<predictor>-<node>`, what extproc calls).

The predictor Service selects its entry pods: extproc's for a predictor that needs it, else the lone
node's, whose ports it maps to 8000 and 5001. A lone external node (`endpoint.service_host`) is an
ExternalName Service. `seldon.io/headless-svc` makes the predictor Service headless (clients balance
gRPC themselves), as in Seldon.
"""

from __future__ import annotations

from typing import Any

from mesh.render import names
from mesh.render.components import Component, entry_component
from mesh.render.labels import PREDICTOR_LABEL, Manifest, label_value, object_meta, selector_labels
from mesh.render.settings import RenderSettings
from mesh.spec import PredictorSpec, SeldonDeployment, annotation_is_set
from mesh.spec import annotations as annotation_names
from mesh.spec.extproc_config import needs_extproc

HTTP_PORT = 8000
GRPC_PORT = 5001
EXTPROC_METRICS_PORT = 6000


def render_services(
    deployment: SeldonDeployment, predictor: PredictorSpec, parts: list[Component], settings: RenderSettings
) -> list[Manifest]:
    out = [predictor_service(deployment, predictor, settings)]
    seen: set[str] = set()
    for component in parts:
        for node in component.nodes:
            name = names.component_service(deployment, predictor, node.name)
            if name in seen:
                continue
            seen.add(name)
            selector = selector_labels(deployment, component.name)
            out.append(
                _service(deployment, predictor, settings, name, selector, node.ports.http, node.ports.grpc)
            )
    return out


def predictor_service(
    deployment: SeldonDeployment, predictor: PredictorSpec, settings: RenderSettings
) -> Manifest:
    name = names.predictor_service(deployment, predictor)
    if needs_extproc(predictor):
        selector = selector_labels(deployment, names.extproc_name(deployment, predictor))
        service = _service(deployment, predictor, settings, name, selector, HTTP_PORT, GRPC_PORT)
    else:
        entry = entry_component(deployment, predictor)
        if entry is None:
            return _external(deployment, predictor, settings, name)
        node = next(n for n in entry.nodes if n.name == predictor.graph.name)
        selector = selector_labels(deployment, entry.name)
        service = _service(deployment, predictor, settings, name, selector, node.ports.http, node.ports.grpc)
    annotations = {**deployment.annotations, **predictor.annotations}
    if annotation_is_set(annotations, annotation_names.HEADLESS_SVC):
        service["spec"]["clusterIP"] = "None"
    return service


def _service(
    deployment: SeldonDeployment,
    predictor: PredictorSpec,
    settings: RenderSettings,
    name: str,
    selector: dict[str, str],
    http_target: int,
    grpc_target: int,
) -> Manifest:
    predictor_facing = name == names.predictor_service(deployment, predictor)
    http, grpc = (HTTP_PORT, GRPC_PORT) if predictor_facing else (http_target, grpc_target)
    ports: list[dict[str, Any]] = [
        {"name": "http", "port": http, "targetPort": http_target, "protocol": "TCP", "appProtocol": "http"},
        {"name": "grpc", "port": grpc, "targetPort": grpc_target, "protocol": "TCP", "appProtocol": "grpc"},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(
            deployment, settings, name, labels={PREDICTOR_LABEL: label_value(predictor.name)}
        ),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    }


def _external(
    deployment: SeldonDeployment, predictor: PredictorSpec, settings: RenderSettings, name: str
) -> Manifest:
    """A lone node served outside the cluster's pods: DNS points the predictor's name at it."""
    endpoint = predictor.graph.endpoint
    host = endpoint.service_host if endpoint is not None and endpoint.service_host else ""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(
            deployment, settings, name, labels={PREDICTOR_LABEL: label_value(predictor.name)}
        ),
        "spec": {"type": "ExternalName", "externalName": host},
    }
