"""The control API of a running `seldon-mesh up`: the CLI talks to it as kubectl talks to an API server.

Bound to loopback on a free port; the address is written to `<state-dir>/control.json`. Applying is all or
nothing: every document is validated first, and an invalid one leaves everything that runs untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from mesh.spec import SeldonDeployment, SpecError, parse_documents


class MeshControl(Protocol):
    """What the API needs from the running mesh."""

    async def apply(self, deployments: list[SeldonDeployment], base_dir: Path) -> list[dict[str, str]]: ...

    async def delete(self, namespace: str, name: str) -> bool: ...

    def describe(self, namespace: str | None = None, name: str | None = None) -> list[dict[str, Any]]: ...

    def info(self) -> dict[str, Any]: ...

    def scrape_endpoints(self) -> list[dict[str, Any]]: ...

    def render_metrics(self) -> tuple[bytes, str]: ...


class ApplyRequest(BaseModel):
    documents: str
    source: str = "<stdin>"
    base_dir: str


def create_control_app(mesh: MeshControl) -> FastAPI:
    app = FastAPI(title="seldon-mesh control API", docs_url=None, redoc_url=None)

    @app.post("/v1/apply")
    async def apply(request: ApplyRequest) -> JSONResponse:
        try:
            deployments = parse_documents(request.documents, source=request.source)
        except SpecError as error:
            body = {
                "errors": [{"path": _located(e.path, e.source), "message": e.message} for e in error.errors]
            }
            return JSONResponse(body, status_code=422)
        results = await mesh.apply(deployments, Path(request.base_dir))
        return JSONResponse({"results": results})

    @app.get("/v1/deployments")
    async def list_deployments(namespace: str | None = None) -> list[dict[str, Any]]:
        return mesh.describe(namespace)

    @app.get("/v1/deployments/{namespace}/{name}")
    async def get_deployment(namespace: str, name: str) -> dict[str, Any]:
        found = mesh.describe(namespace, name)
        if not found:
            raise HTTPException(404, f"seldondeployment {namespace}/{name} not found")
        return found[0]

    @app.delete("/v1/deployments/{namespace}/{name}")
    async def delete_deployment(namespace: str, name: str) -> dict[str, str]:
        if not await mesh.delete(namespace, name):
            raise HTTPException(404, f"seldondeployment {namespace}/{name} not found")
        return {"deleted": f"{namespace}/{name}"}

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        return mesh.info()

    @app.get("/v1/metrics")
    async def scrape_endpoints() -> list[dict[str, Any]]:
        """Every Prometheus scrape endpoint of the local mesh (`seldon-mesh metrics`)."""
        return mesh.scrape_endpoints()

    @app.get("/metrics")
    @app.get("/prometheus")
    async def metrics() -> Response:
        """The control plane's own metrics (xDS pushes, ACKs, NACKs)."""
        body, content_type = mesh.render_metrics()
        return Response(body, media_type=content_type)

    return app


def _located(path: str, source: str | None) -> str:
    return f"{source}: {path}" if source else path
