"""TF Serving's REST API (`protocol: tensorflow`), mounted in `rest.app.RestApp` under `/v1/models/`.

Paths, as TF Serving and Seldon's executor serve them (the gateway strips `/seldon/<ns>/<name>`):
- `GET /v1/models/<m>[/versions/<v>|/labels/<l>]`: the model's version status;
- `GET /v1/models/<m>[/versions/<v>]/metadata`: its SignatureDefs;
- `POST /v1/models/<m>[/versions/<v>|/labels/<l>]:predict|:classify|:regress` (also `<m>/:predict`,
  and Seldon's `/v1/models/:predict` naming no model).
Errors are TF Serving's `{"error": "..."}` with the status `rest.errors` maps the runtime error to.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import json_format
from starlette.types import Receive, Scope

from generated.tensorflow.serving import apis_pb2
from model_runtime.codecs import dumps, loads
from model_runtime.codecs.tf_json import (
    decode_examples_body,
    decode_predict_body,
    decode_predict_inputs,
    encode_classify_result,
    encode_predict_outputs,
    encode_regress_result,
)
from model_runtime.errors import BadRequest, NotFound, RuntimeFailure
from model_runtime.rest.errors import http_status
from model_runtime.tfserving import Target, TFServingCore

log = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]
Result = tuple[int, bytes, Headers]
Handler = Callable[[Scope, Receive], Awaitable[Result]]
BodyReader = Callable[[Scope, Receive], Awaitable[bytes]]
Blocking = Callable[..., Awaitable[Any]]

PREFIX = "/v1/models"
_JSON = (b"content-type", b"application/json")
_VERBS = ("predict", "classify", "regress")


class TFServingRoutes:
    def __init__(self, core: TFServingCore, read_body: BodyReader, blocking: Blocking) -> None:
        self.core = core
        self._read_body = read_body
        self._blocking = blocking

    def resolve(self, path: str) -> Handler:
        """The handler for a `/v1/models...` path (a TF Serving 404 for any other)."""
        rest = path[len(PREFIX) :]
        verb = ""
        head, colon, tail = rest.rpartition(":")
        if colon and tail in _VERBS:
            rest, verb = head, tail
        parts = [p for p in rest.split("/") if p]
        metadata = not verb and parts[-1:] == ["metadata"]
        if metadata:
            parts = parts[:-1]
        target = _target(parts)
        if target is None or (not verb and not target.model):
            return self._guard(_not_found)
        if verb == "predict":
            return self._guard(self._bound(self._predict, target))
        if verb:
            return self._guard(self._bound(self._examples(verb), target))
        return self._guard(self._bound(self._metadata if metadata else self._status, target))

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

    def _bound(
        self, handler: Callable[[Scope, Receive, Target], Awaitable[Result]], target: Target
    ) -> Handler:
        async def bound(scope: Scope, receive: Receive) -> Result:
            return await handler(scope, receive, target)

        return bound

    async def _json_body(self, scope: Scope, receive: Receive) -> Any:
        if scope["method"] != "POST":
            raise BadRequest(f"{scope['path']} takes POST, not {scope['method']}")
        body = await self._read_body(scope, receive)
        if not body.strip():
            raise BadRequest("empty request body; send a JSON object")
        return loads(body)

    async def _predict(self, scope: Scope, receive: Receive, target: Target) -> Result:
        body = decode_predict_body(await self._json_body(scope, receive))
        target = Target(target.model, target.version, target.label, body.signature_name)
        _, resolved = self.core.resolve(target)
        inputs = decode_predict_inputs(body, resolved.definition)
        _, outputs = await self._blocking(self.core.predict, target, inputs)
        return 200, dumps(encode_predict_outputs(outputs, body.row)), [_JSON]

    def _examples(self, verb: str) -> Callable[[Scope, Receive, Target], Awaitable[Result]]:
        async def handle(scope: Scope, receive: Receive, target: Target) -> Result:
            signature, examples = decode_examples_body(await self._json_body(scope, receive))
            target = Target(target.model, target.version, target.label, signature)
            if verb == "classify":
                classified = await self._blocking(self.core.classify, target, examples)
                return 200, dumps(encode_classify_result(classified.classes)), [_JSON]
            regressed = await self._blocking(self.core.regress, target, examples)
            return 200, dumps(encode_regress_result(regressed.values)), [_JSON]

        return handle

    async def _status(self, scope: Scope, receive: Receive, target: Target) -> Result:
        _, version = self.core.status(target)
        status = {
            "model_version_status": [
                {
                    "version": str(version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
        return 200, dumps(status), [_JSON]

    async def _metadata(self, scope: Scope, receive: Receive, target: Target) -> Result:
        name, version, signatures = self.core.metadata(target)
        signature_map = apis_pb2.SignatureDefMap()
        for key, definition in signatures.items():
            signature_map.signature_def[key].CopyFrom(definition)
        body = {
            "model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {
                "signature_def": json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
            },
        }
        return 200, dumps(body), [_JSON]


def _target(parts: list[str]) -> Target | None:
    """`[model]`, `[model, "versions", v]` or `[model, "labels", l]` (`[]`: the one model); else None."""
    if not parts:
        return Target("")
    if len(parts) == 1:
        return Target(parts[0])
    if len(parts) == 3 and parts[1] == "versions" and parts[2].isdigit():
        return Target(parts[0], version=int(parts[2]))
    if len(parts) == 3 and parts[1] == "labels":
        return Target(parts[0], label=parts[2])
    return None


async def _not_found(scope: Scope, receive: Receive) -> Result:
    raise NotFound(f"Malformed request: {scope['method']} {scope['path']}")
