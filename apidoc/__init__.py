"""The Swagger UI page of a Seldon v1 API, shared by extproc (a graph's, extproc/server/docs.py) and the
runtimes (a node's, model_runtime/rest/openapi.py), which may not import each other. Imports nothing of
ours."""

from apidoc.swagger_ui import ASSETS, asset, page

__all__ = ["ASSETS", "asset", "page"]
