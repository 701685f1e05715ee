"""`render`: every object of one SeldonDeployment, workloads first, then its ingress."""

from __future__ import annotations

from mesh.render import explainers, gateway_api, istio, workloads
from mesh.render.labels import Manifest
from mesh.render.settings import Ingress, RenderSettings
from mesh.spec import SeldonDeployment


def render(deployment: SeldonDeployment, settings: RenderSettings | None = None) -> list[Manifest]:
    settings = settings or RenderSettings()
    manifests = workloads.render_workloads(deployment, settings)
    manifests += explainers.render_explainers(deployment, settings)
    if settings.ingress is Ingress.ISTIO:
        manifests += istio.render_istio(deployment, settings)
        manifests += explainers.istio_virtual_service(deployment, settings)
    elif settings.ingress is Ingress.GATEWAY_API:
        manifests += gateway_api.render_gateway_api(deployment, settings)
        manifests += explainers.gateway_api_route(deployment, settings, gateway_api.parent_ref(settings))
    return manifests
