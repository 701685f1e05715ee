"""Pure renderings of a validated SeldonDeployment to Kubernetes and Istio (or Gateway API) objects.

`render(deployment, settings)` returns plain JSON-able manifests, in the order `kubectl apply` should
create them; no I/O, no clock, no client. `mesh.operator` applies them with server-side apply,
`seldon-mesh render` prints them. One module per kind of object (workloads, services, autoscaling,
extproc, istio, gateway_api), composed in `compose`. Imports only `mesh.spec`.
"""

from mesh.render.compose import render
from mesh.render.labels import DEPLOYMENT_LABEL, MANAGED_BY, Manifest
from mesh.render.settings import Ingress, RenderSettings, ServerImages

__all__ = [
    "DEPLOYMENT_LABEL",
    "MANAGED_BY",
    "Ingress",
    "Manifest",
    "RenderSettings",
    "ServerImages",
    "render",
]
