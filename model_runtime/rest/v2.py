"""The V2 (Open Inference Protocol) REST routes, mounted in `rest.app.RestApp` beside the Seldon paths.

The paths of the model this runtime serves are exact dict entries (one lookup per request); any other
`/v2/...` path is parsed once so unknown models and versions get a V2 404. Errors are V2's
`{"error": "..."}` with the status `rest.errors` maps the runtime error to.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Receive, Scope

from model_runtime.codecs import dumps, loads
from model_runtime.codecs.v2_json import decode_v2_json_request, encode_v2_json_response
from model_runtime.errors import BadRequest, NotFound, RuntimeFailure
from model_runtime.inference import InferenceCore
from model_runtime.rest.errors import http_status
from model_runtime.tensors import InferRequest, InferResponse

log = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]
Result = tuple[int, bytes, Headers]
Handler = Callable[[Scope, Receive], Awaitable[Result]]
BodyReader = Callable[[Scope, Receive], Awaitable[bytes]]
ModelHandler = Callable[[Scope, Receive, str, str], Awaitable[Result]]
Infer = Callable[[InferRequest], Awaitable[InferResponse]]
Blocking = Callable[..., Awaitable[Any]]

_JSON = (b"content-type", b"application/json")
_OCTETS = (b"content-type", b"application/octet-stream")
_HEADER_LENGTH = b"inference-header-content-length"


class V2Routes:
    def __init__(self, core: InferenceCore, read_body: BodyReader, infer: Infer, blocking: Blocking) -> None:
        self.core = core
        self._read_body = read_body
        self._infer = infer
        self._blocking = blocking
        name = core.name
        self.routes: dict[str, Handler] = {
            "/v2": self._guard(self._server_metadata),
            "/v2/": self._guard(self._server_metadata),
            "/v2/health/live": self._guard(self._live),
            "/v2/health/ready": self._guard(self._ready),
            "/v2/repository/index": self._guard(self._index),
        }
        self.routes.update(self._model_routes(name, ""))
        if core.version:
            self.routes.update(self._model_routes(name, core.version))
        for action, method in (("load", self._load), ("unload", self._unload)):
            self.routes[f"/v2/repository/models/{name}/{action}"] = self._guard(_bind(method, name, ""))

    def _model_routes(self, name: str, version: str) -> dict[str, Handler]:
        base = f"/v2/models/{name}" + (f"/versions/{version}" if version else "")
        return {
            base: self._guard(_bind(self._model_metadata, name, version)),
            f"{base}/ready": self._guard(_bind(self._model_ready, name, version)),
            f"{base}/infer": self._guard(_bind(self.infer, name, version)),
        }

    def resolve(self, path: str) -> Handler:
        """A handler for a `/v2/...` path not in `routes`: another model, another version, or nothing."""
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[1] in ("models", "repository"):
            if parts[1] == "repository" and len(parts) == 5 and parts[4] in ("load", "unload"):
                action = self._load if parts[4] == "load" else self._unload
                return self._guard(_bind(action, parts[3], ""))
            if parts[1] == "models":
                name, rest = parts[2], parts[3:]
                version = ""
                if len(rest) >= 2 and rest[0] == "versions":
                    version, rest = rest[1], rest[2:]
                actions: dict[tuple[str, ...], ModelHandler] = {
                    (): self._model_metadata,
                    ("ready",): self._model_ready,
                    ("infer",): self.infer,
                }
                found = actions.get(tuple(rest))
                if found is not None:
                    return self._guard(_bind(found, name, version))
        return self._guard(_not_found)

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(scope: Scope, receive: Receive) -> Result:
            try:
                return await handler(scope, receive)
            except RuntimeFailure as exc:
                return http_status(exc), dumps({"error": exc.info}), [_JSON]
            except Exception as exc:
                log.exception("unexpected error serving %s", scope["path"])
                return 500, dumps({"error": f"{type(exc).__name__}: {exc}"}), [_JSON]

        return guarded

    # --- handlers --------------------------------------------------------------------------------------

    async def infer(self, scope: Scope, receive: Receive, name: str, version: str) -> Result:
        self.core.check_model(name, version)
        body = await self._read_body(scope, receive)
        header_length = _header_length(scope)
        request = decode_v2_json_request(body, header_length, name, version)
        response = await self._infer(request)
        payload, json_length = encode_v2_json_response(response, request)
        if json_length is None:
            return 200, payload, [_JSON]
        return 200, payload, [_OCTETS, (_HEADER_LENGTH, str(json_length).encode())]

    async def _server_metadata(self, scope: Scope, receive: Receive) -> Result:
        return 200, dumps(self.core.server_metadata()), [_JSON]

    async def _live(self, scope: Scope, receive: Receive) -> Result:
        return 200, b"", [_JSON]

    async def _ready(self, scope: Scope, receive: Receive) -> Result:
        self.core.plane.check_ready()  # raises with the reason: loading (503) or load failed (503)
        return 200, b"", [_JSON]

    async def _model_ready(self, scope: Scope, receive: Receive, name: str, version: str) -> Result:
        self.core.check_model(name, version)
        self.core.plane.check_ready()
        return 200, b"", [_JSON]

    async def _model_metadata(self, scope: Scope, receive: Receive, name: str, version: str) -> Result:
        return 200, dumps(self.core.model_metadata(name, version)), [_JSON]

    async def _index(self, scope: Scope, receive: Receive) -> Result:
        body = await self._read_body(scope, receive) if scope["method"] == "POST" else b""
        models = self.core.repository_index()
        if body.strip():
            request = loads(body)
            if not isinstance(request, dict):
                raise BadRequest("the index request must be a JSON object")
            if request.get("ready"):
                models = [m for m in models if m["state"] == "READY"]
        return 200, dumps(models), [_JSON]

    async def _load(self, scope: Scope, receive: Receive, name: str, version: str) -> Result:
        await self._blocking(self.core.load, name)
        return 200, b"", [_JSON]

    async def _unload(self, scope: Scope, receive: Receive, name: str, version: str) -> Result:
        self.core.unload(name)
        return 200, b"", [_JSON]


def _bind(handler: ModelHandler, name: str, version: str) -> Handler:
    async def bound(scope: Scope, receive: Receive) -> Result:
        return await handler(scope, receive, name, version)

    return bound


async def _not_found(scope: Scope, receive: Receive) -> Result:
    raise NotFound(f"no such V2 path: {scope['path']}")


def _header_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == _HEADER_LENGTH:
            try:
                return int(value)
            except ValueError:
                raise BadRequest(f"Inference-Header-Content-Length {value!r} is not a number") from None
    return None
