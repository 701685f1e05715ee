"""The OpenAPI document served at `/seldon.json` (and rendered by Swagger UI at `/api/v1.0/doc/`, its page
and assets from apidoc, shared with extproc's graph documentation)."""

from __future__ import annotations

from typing import Any

from apidoc import ASSETS, page
from apidoc import asset as swagger_asset

__all__ = ["SWAGGER_ASSETS", "openapi_document", "swagger_asset", "swagger_ui_html"]

_MESSAGE = {"$ref": "#/components/schemas/SeldonMessage"}
_ERROR = {"description": "Seldon error", "content": {"application/json": {"schema": _MESSAGE}}}

# Swagger UI's assets, served by the runtime itself beside the page at /api/v1.0/doc/: content-types as
# ASGI header bytes.
SWAGGER_ASSETS = {name: media.encode() for name, media in ASSETS.items()}


def swagger_ui_html(openapi_url: str, node: str) -> str:
    """A Swagger UI page for the document at `openapi_url`, its assets next to it (relative URLs, so the
    page also works behind the gateway's /seldon/<ns>/<name>/ prefix)."""
    return page(node, openapi_url).decode()


def _post(summary: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": _MESSAGE}}},
                "400": _ERROR,
                "413": _ERROR,
                "500": _ERROR,
                "503": _ERROR,
            },
        }
    }


def _get(summary: str, media: str = "application/json") -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": "OK", "content": {media: {}}}}}}


def openapi_document(node: str) -> dict[str, Any]:
    feedback = {"$ref": "#/components/schemas/Feedback"}
    message_list = {"$ref": "#/components/schemas/SeldonMessageList"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"seldon-mesh model runtime: {node}",
            "version": "1.0",
            "description": "Seldon v1 prediction protocol (internal microservice API and external paths).",
        },
        "paths": {
            "/api/v1.0/predictions": _post(
                "Predict (what a one-node graph of this service type does)", _MESSAGE
            ),
            "/predict": _post("Model predict", _MESSAGE),
            "/transform-input": _post("Transformer input", _MESSAGE),
            "/transform-output": _post("Output transformer", _MESSAGE),
            "/route": _post("Router: returns the chosen child as [[n]]", _MESSAGE),
            "/aggregate": _post("Combiner", message_list),
            "/send-feedback": _post("Feedback", feedback),
            "/api/v1.0/feedback": _post("Feedback", feedback),
            "/health/ping": _get("Liveness of the HTTP server", "text/plain"),
            "/health/status": _get("Component health"),
            "/metadata": _get("Model metadata"),
            "/api/v1.0/metadata": _get("Model metadata"),
            "/ready": _get("Readiness: 503 with the reason until the model is loaded"),
            "/live": _get("Liveness"),
        },
        "components": {"schemas": _SCHEMAS},
    }


_SCHEMAS: dict[str, Any] = {
    "SeldonMessage": {
        "type": "object",
        "properties": {
            "status": {"$ref": "#/components/schemas/Status"},
            "meta": {"$ref": "#/components/schemas/Meta"},
            "data": {"$ref": "#/components/schemas/DefaultData"},
            "binData": {"type": "string", "format": "byte"},
            "strData": {"type": "string"},
            "jsonData": {},
            "customData": {"type": "object"},
        },
    },
    "DefaultData": {
        "type": "object",
        "properties": {
            "names": {"type": "array", "items": {"type": "string"}},
            "ndarray": {"type": "array", "items": {}},
            "tensor": {
                "type": "object",
                "properties": {
                    "shape": {"type": "array", "items": {"type": "integer"}},
                    "values": {"type": "array", "items": {"type": "number"}},
                },
            },
            "tftensor": {"type": "object", "description": "tensorflow.TensorProto in proto3 JSON"},
        },
    },
    "Meta": {
        "type": "object",
        "properties": {
            "puid": {"type": "string"},
            "tags": {"type": "object"},
            "routing": {"type": "object", "additionalProperties": {"type": "integer"}},
            "requestPath": {"type": "object", "additionalProperties": {"type": "string"}},
            "metrics": {"type": "array", "items": {"$ref": "#/components/schemas/Metric"}},
        },
    },
    "Metric": {
        "type": "object",
        "properties": {
            "key": {"type": "string"},
            "type": {"type": "string", "enum": ["COUNTER", "GAUGE", "TIMER"]},
            "value": {"type": "number"},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Status": {
        "type": "object",
        "properties": {
            "code": {"type": "integer"},
            "info": {"type": "string"},
            "reason": {"type": "string"},
            "status": {"type": "string", "enum": ["SUCCESS", "FAILURE"]},
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
    "SeldonMessageList": {
        "type": "object",
        "properties": {"seldonMessages": {"type": "array", "items": _MESSAGE}},
    },
}
