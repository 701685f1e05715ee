"""The Swagger UI of a graph deployment, as Seldon's executor serves it at `/api/v1.0/doc/`.

The page and Swagger UI's assets (apidoc, shared with the runtimes) and the OpenAPI document of the
graph's external Seldon API (`seldon.json`) are all served beside each other under `/api/v1.0/doc/` with
relative links, so the page works behind the gateway's `/seldon/<namespace>/<name>/` prefix and with it
rewritten away. A single model's runtime serves its own (model_runtime/rest/openapi.py, which extproc may
not import).
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from apidoc import ASSETS, asset
from apidoc import page as swagger_page

__all__ = ["ASSETS", "DOC", "DOCUMENT", "asset", "document", "page"]

DOC = "/api/v1.0/doc/"
DOCUMENT = "seldon.json"
_MESSAGE = {"$ref": "#/components/schemas/SeldonMessage"}


def page(deployment: str) -> bytes:
    return swagger_page(deployment, DOCUMENT)


def _answer(description: str, media: str = "application/json", schema: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {media: {"schema": schema} if schema else {}}
    return {"description": description, "content": content}


def _errors() -> dict[str, Any]:
    error = _answer("Seldon error", schema=_MESSAGE)
    return {str(code): error for code in (400, 404, 413, 500, 503, 504)}


def _post(summary: str, body: dict[str, Any]) -> dict[str, Any]:
    request = {"required": True, "content": {"application/json": {"schema": body}}}
    responses = {"200": _answer("OK", schema=_MESSAGE), **_errors()}
    return {"post": {"summary": summary, "requestBody": request, "responses": responses}}


def _get(summary: str, media: str = "application/json", model: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {"200": _answer("OK", media), **_errors()}}
    if model:
        operation["parameters"] = [
            {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
        ]
    return {"get": operation}


@functools.cache
def document(deployment: str) -> bytes:
    """The OpenAPI 3 document of a graph's external Seldon API."""
    feedback = {"$ref": "#/components/schemas/Feedback"}
    spec = {
        "openapi": "3.0.3",
        "info": {
            "title": f"seldon-mesh graph: {deployment}",
            "version": "1.0",
            "description": "Seldon v1 prediction API of an inference graph (Seldon's executor API).",
        },
        "servers": [{"url": "../../.."}],  # the deployment's root, relative to this document
        "paths": {
            "/api/v1.0/predictions": _post("Run the graph on a SeldonMessage", _MESSAGE),
            "/api/v1.0/feedback": _post("Send feedback (reward, truth) to the graph's nodes", feedback),
            "/api/v1.0/metadata": _get("Graph metadata: name, models, graphinputs, graphoutputs"),
            "/api/v1.0/metadata/{model}": _get("One node's metadata", model=True),
            "/api/v1.0/status/{model}": _get("One node's health status", model=True),
            "/api/v1.0/health/status": _get("The graph's health status (every node asked)"),
            "/ready": _get("Ready when every node is", "text/plain"),
            "/live": _get("Alive", "text/plain"),
        },
        "components": {
            "schemas": {
                "SeldonMessage": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "object"},
                        "meta": {"type": "object"},
                        "data": {
                            "type": "object",
                            "properties": {
                                "names": {"type": "array", "items": {"type": "string"}},
                                "ndarray": {"type": "array", "items": {}},
                                "tensor": {"type": "object"},
                                "tftensor": {"type": "object"},
                            },
                        },
                        "binData": {"type": "string", "format": "byte"},
                        "strData": {"type": "string"},
                        "jsonData": {},
                    },
                },
                "Feedback": {
                    "type": "object",
                    "properties": {
                        "request": _MESSAGE,
                        "response": _MESSAGE,
                        "reward": {"type": "number"},
                        "truth": _MESSAGE,
                    },
                },
            }
        },
    }
    return orjson.dumps(spec)
