"""The control API of a running `seldon-mesh up`: the CLI talks to it as kubectl talks to an API server.

Bound to loopback on a free port; the address and a token are written to `<state-dir>/control.json`,
which only the owner can read (mode 0600, in a 0700 state dir), and every /v1 call must carry the token.
Applying is all or nothing: every document is validated first, and an invalid one leaves everything
that runs untouched.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from mesh.spec import SecretDocument, SeldonDeployment, SpecError, read_documents


class MeshControl(Protocol):
    """What the API needs from the running mesh."""

    async def apply(
        self,
        deployments: list[SeldonDeployment],
        base_dir: Path,
        secret_documents: Sequence[SecretDocument] = (),
    ) -> list[dict[str, str]]:
        """`secret_documents`: the Secrets applied in the same documents, kept for `envSecretRefName`
        and never returned."""
        ...

    async def delete(self, namespace: str, name: str) -> bool: ...

    def describe(self, namespace: str | None = None, name: str | None = None) -> list[dict[str, Any]]: ...

    def info(self) -> dict[str, Any]: ...

    def scrape_endpoints(self) -> list[dict[str, Any]]: ...

    def render_metrics(self) -> tuple[bytes, str]: ...


class ApplyRequest(BaseModel):
    documents: str
    source: str = "<stdin>"
    base_dir: str


TOKEN_HEADER = "authorization"


def create_control_app(mesh: MeshControl, token: str | None = None) -> FastAPI:
    """With `token`, every /v1 call must say `Authorization: Bearer <token>` (the token is in the owner's
    0600 control file): another local user can neither apply (run code as the owner) nor read specs
    (env values, secrets). The Prometheus scrape (/metrics, /prometheus) stays open, read-only."""
    app = FastAPI(title="seldon-mesh control API", docs_url=None, redoc_url=None)
    expected = f"Bearer {token}".encode() if token else None

    @app.middleware("http")
    async def owner_only(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if expected is not None and request.url.path.startswith("/v1/"):
            given = request.headers.get(TOKEN_HEADER, "").encode()
            if not hmac.compare_digest(given, expected):
                return JSONResponse(
                    {"detail": "the control API is its owner's: no valid token"}, status_code=401
                )
        return await call_next(request)

    @app.post("/v1/apply")
    async def apply(request: ApplyRequest) -> JSONResponse:
        try:
            loaded = read_documents(request.documents, source=request.source)
        except SpecError as error:
            body = {
                "errors": [{"path": _located(e.path, e.source), "message": e.message} for e in error.errors]
            }
            return JSONResponse(body, status_code=422)
        results = await mesh.apply(loaded.deployments, Path(request.base_dir), loaded.secrets)
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
