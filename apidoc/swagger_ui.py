"""Swagger UI's page and its assets, served beside the page with relative links.

The assets come from the swagger-ui-bundle wheel (no CDN, so the page works offline). Every link is
relative, so the page works behind the gateway's `/seldon/<namespace>/<name>/` prefix and with it
rewritten away.
"""

from __future__ import annotations

import functools
from pathlib import Path

# Swagger UI's files that the page loads, by name, with their content-type.
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
}


@functools.cache
def asset(name: str) -> bytes:
    """One of `ASSETS`, read once from the installed swagger-ui-bundle."""
    from swagger_ui_bundle import swagger_ui_path

    if name not in ASSETS:
        raise KeyError(name)
    return (Path(swagger_ui_path) / name).read_bytes()


@functools.cache
def page(title: str, document_url: str) -> bytes:
    """A Swagger UI page titled `<title>: Seldon v1 API` for the OpenAPI document at `document_url`."""
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title}: Seldon v1 API</title>
<link rel="stylesheet" href="swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "{document_url}", dom_id: "#swagger-ui"}});</script>
</body>
</html>
""".encode()
