"""The transport-neutral front of extproc: which predictor a request is for, and its protocol's shapes.

Both edges call it: the ext_proc servicer for REST (`rest`), the gRPC upstream servicers for Seldon and
V2 gRPC (`predict_seldon`, `predict_v2`, ...). It decodes the client's protocol into a `Payload`, runs
the executor, and encodes the result back in the client's protocol, whatever the nodes spoke.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from extproc.codecs import CodecError, Payload, v2_datatype_hint
from extproc.codecs.binary import HEADER as BINARY_HEADER
from extproc.codecs.binary import decode_binary_request, encode_binary_response, wants_binary
from extproc.config import DEFAULT_REST_BODY_BYTES, GraphConfig, PredictorConfig
from extproc.graph import GraphError, GraphExecutor, bad_request
from extproc.server import docs
from extproc.server.observe import RequestObserver, rest_service
from extproc.server.puid import check_feedback_puids, checked_puid

Json = dict[str, Any]
_PATH = re.compile(r"^/seldon/(?P<namespace>[^/]+)/(?P<name>[^/]+)(?P<rest>/[^?]*)?")
_V2_MODEL = re.compile(r"^/v2/models/(?P<model>[^/]+)(?:/versions/[^/]+)?(?P<verb>/infer|/ready)?/?$")
_STATUS = re.compile(r"^/api/v(?:1\.0|0\.1)/status/(?P<model>[^/]+)/?$")
JSON_HEADERS = (("content-type", "application/json"),)
OCTET_HEADERS = (("content-type", "application/octet-stream"),)
TEXT_HEADERS = (("content-type", "text/plain; charset=utf-8"),)
# Seldon's request header asking not to payload-log this request (any value).
SKIP_LOGGING_HEADER = "seldon-skip-logging"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = field(default=JSON_HEADERS)


def _json_reply(status: int, body: Any) -> Reply:
    return Reply(status, orjson.dumps(body))


def _object(body: bytes) -> Json:
    try:
        parsed = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as error:
        raise bad_request(f"invalid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise bad_request(f"expected a JSON object, got {type(parsed).__name__}")
    return parsed


class Frontend:
    def __init__(
        self,
        config: Callable[[], GraphConfig],
        executor: GraphExecutor,
        refresh: Callable[[], bool] | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        self._config = config
        self.executor = executor
        # Server histogram, server span and the predictor labels of node calls, at both edges.
        self.observer = observer or RequestObserver()
        # Re-reads the config at once; called on a miss, since Envoy may route a new graph here a moment
        # before the periodic reload has seen the file that describes it.
        self._refresh = refresh

    def _lookup(self, namespace: str, name: str, predictor: str | None) -> PredictorConfig | None:
        config = self._config()
        deployment = config.deployment(namespace, name)
        if deployment is None and not name and len(config.deployments) == 1:
            # No `seldon` header: an extproc that serves one deployment (a Kubernetes predictor's own) is
            # the one being asked, as Seldon's per-deployment executor is.
            deployment = next(iter(config.deployments.values()))
        return deployment.predictor(predictor) if deployment is not None else None

    def _split(self, path: str) -> tuple[str, str, str] | None:
        """(namespace, name, rest of the path) of a REST request; a path outside `/seldon/<ns>/<name>/`
        (the ingress rewrote the prefix away) is the whole rest, for the sole deployment if there is one."""
        match = _PATH.match(path)
        if match is not None:
            return match["namespace"], match["name"], match["rest"] or "/"
        if len(self._config().deployments) == 1:
            return "", "", path.split("?", 1)[0] or "/"
        return None

    def predictor(self, namespace: str, name: str, predictor: str | None) -> PredictorConfig:
        found = self._lookup(namespace, name, predictor)
        if found is None and self._refresh is not None and self._refresh():
            found = self._lookup(namespace, name, predictor)
        if found is None:
            which = f" predictor {predictor!r} of" if predictor else ""
            raise GraphError(
                503, "UNAVAILABLE", f"no graph for{which} SeldonDeployment {namespace}/{name} in extproc yet"
            )
        return found

    def rest_body_bytes(self, path: str, predictor_name: str | None) -> int:
        """The largest REST body the predictor behind `path` takes (the default for an unknown one)."""
        split = self._split(path)
        found = self._lookup(split[0], split[1], predictor_name) if split else None
        return found.rest_body_bytes if found is not None else DEFAULT_REST_BODY_BYTES

    # -- REST (from the ext_proc servicer and the REST edge) -----------------------------------------
    async def rest(
        self,
        method: str,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        predictor_name: str | None,
        trace_carriers: Sequence[Mapping[str, str]] = (),
    ) -> Reply:
        """`trace_carriers`: where the caller's trace context may be before the headers (Envoy's gRPC
        metadata on the ext_proc stream)."""
        split = self._split(path)
        if split is None:
            return _json_reply(
                404, GraphError(404, "NOT_FOUND", f"no SeldonDeployment serves {path}").seldon_json()
            )
        namespace, name, rest = split
        v2 = rest.startswith("/v2/")
        try:
            predictor = self.predictor(namespace, name, predictor_name)
        except GraphError as error:
            return _error_reply(error, v2)
        if rest.startswith(("/api/v1.0/doc", "/seldon.json")) and method == "GET":
            return _doc(rest, predictor)  # static pages: no request metrics, no answer limit
        carriers = (*trace_carriers, headers)
        with self.observer.request(predictor, rest_service(rest), method, carriers, path) as outcome:
            try:
                puid = headers.get("seldon-puid") or headers.get("x-request-id") or ""
                skip = SKIP_LOGGING_HEADER in headers
                reply = await self._dispatch(predictor, method, rest, body, puid, skip, headers)
                limit = predictor.rest_body_bytes
                if reply.status < 300 and len(reply.body) > limit:  # answers are bounded like requests
                    info = f"answer of {len(reply.body)} bytes over the {limit} byte limit"
                    raise GraphError(413, "PAYLOAD_TOO_LARGE", info)
            except GraphError as error:
                reply = _error_reply(error, v2)
            outcome.code = str(reply.status)
            return reply

    async def _dispatch(
        self,
        predictor: PredictorConfig,
        method: str,
        rest: str,
        body: bytes,
        puid: str,
        skip: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        if rest in ("/api/v1.0/predictions", "/api/v0.1/predictions") and method == "POST":
            return _json_reply(200, await self.predict_seldon(predictor, _object(body), puid, skip))
        if rest in ("/api/v1.0/feedback", "/api/v0.1/feedback") and method == "POST":
            return _json_reply(200, await self.feedback(predictor, _object(body), puid, skip))
        if rest.rstrip("/") == "/api/v1.0/metadata" and method == "GET":
            return _json_reply(200, await self.executor.metadata(predictor))
        if rest.startswith("/api/v1.0/metadata/") and method == "GET":
            metadata = await self.executor.metadata(predictor)
            model = metadata["models"].get(rest.rsplit("/", 1)[1])
            if model is None:
                raise GraphError(404, "NOT_FOUND", f"no graph node named {rest.rsplit('/', 1)[1]!r}")
            return _json_reply(200, model)
        if rest in ("/live", "/v2/health/live"):
            return Reply(200, b"", ())
        if rest == "/health/ping":
            return Reply(200, b"pong", TEXT_HEADERS)
        if rest in ("/ready", "/v2/health/ready"):  # every node's health check, as Seldon's executor
            await self.executor.ready(predictor)
            return Reply(200, b"", ())
        if rest in ("/api/v1.0/health/status", "/health/status") and method == "GET":
            return _json_reply(200, await self.executor.ready(predictor))
        status = _STATUS.match(rest)
        if status is not None and method == "GET":
            return _json_reply(200, await self.executor.node_status(predictor, status["model"]))
        if rest == "/v2/models/infer" and method == "POST":
            return await self._infer_v2(predictor, body, headers or {}, predictor.name, puid, skip)
        v2 = _V2_MODEL.match(rest)
        if v2 is not None:
            if v2["verb"] == "/infer" and method == "POST":
                return await self._infer_v2(predictor, body, headers or {}, v2["model"], puid, skip)
            if v2["verb"] == "/ready":  # a node's readiness, or the graph's under its own name
                if any(n.name == v2["model"] for n in predictor.graph.walk()):
                    await self.executor.node_status(predictor, v2["model"])
                else:
                    await self.executor.ready(predictor)
                return Reply(200, b"", ())
            if v2["verb"] is None and method == "GET":
                return _json_reply(200, await self.v2_metadata(predictor, v2["model"]))
        raise GraphError(404, "NOT_FOUND", f"{method} {rest} is not served by graph predictors")

    async def _infer_v2(
        self,
        predictor: PredictorConfig,
        body: bytes,
        headers: Mapping[str, str],
        model: str,
        puid: str,
        skip: bool,
    ) -> Reply:
        """V2 REST inference, with the binary tensor data extension (`codecs.binary`) both ways."""
        length = headers.get(BINARY_HEADER)
        try:
            request = _object(body) if length is None else decode_binary_request(body, _length(length))
            answer = await self.predict_v2(predictor, request, model, puid, skip)
            if not wants_binary(request):
                return _json_reply(200, answer)
            payload, header_length = encode_binary_response(answer, request)
        except CodecError as error:
            raise bad_request(str(error)) from None
        if header_length is None:
            return Reply(200, payload)
        return Reply(200, payload, (*OCTET_HEADERS, (BINARY_HEADER, str(header_length))))

    # -- the operations, in any transport ------------------------------------------------------------
    async def predict_seldon(
        self, predictor: PredictorConfig, message: Json, puid: str, skip_logging: bool = False
    ) -> Json:
        meta = message["meta"] if isinstance(message.get("meta"), dict) else {}
        puid = (checked_puid(meta["puid"], "meta.puid") if meta.get("puid") else "") or puid
        tags = meta["tags"] if isinstance(meta.get("tags"), dict) else None
        result = await self.executor.predict(predictor, Payload.seldon(message), puid, tags, skip_logging)
        try:
            output = result.payload.as_seldon(like=message)
        except CodecError as error:
            raise GraphError(
                500, "BAD_GRAPH_OUTPUT", f"the graph output has no Seldon form: {error}"
            ) from None
        return {**output, "meta": result.meta}

    async def predict_v2(
        self, predictor: PredictorConfig, request: Json, model: str, puid: str, skip_logging: bool = False
    ) -> Json:
        inputs = request.get("inputs")
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict) for t in inputs):
            raise bad_request("a V2 inference request needs a non-empty inputs list")
        puid = (checked_puid(request["id"], "id") if request.get("id") else "") or puid
        payload = Payload.v2(inputs, v2_datatype_hint(request))
        result = await self.executor.predict(predictor, payload, puid, skip_logging=skip_logging)
        try:
            outputs = result.payload.as_v2()
        except CodecError as error:
            raise GraphError(500, "BAD_GRAPH_OUTPUT", f"the graph output has no V2 form: {error}") from None
        if result.payload.protocol == "seldon" and len(outputs) == 1:
            outputs[0]["name"] = "output-0"
        return {"model_name": model, "id": puid, "outputs": _requested(outputs, request.get("outputs"))}

    async def feedback(
        self, predictor: PredictorConfig, feedback: Json, puid: str, skip_logging: bool = False
    ) -> Json:
        check_feedback_puids(feedback)
        return await self.executor.feedback(predictor, feedback, puid, skip_logging)

    async def v2_metadata(self, predictor: PredictorConfig, model: str) -> Json:
        metadata = await self.executor.metadata(predictor)
        return {
            "name": model,
            "platform": "seldon-mesh-graph",
            "inputs": _v2_tensors(metadata.get("graphinputs")),
            "outputs": _v2_tensors(metadata.get("graphoutputs")),
        }


def _doc(rest: str, predictor: PredictorConfig) -> Reply:
    """Swagger UI at `/api/v1.0/doc/` (`docs.py`), its assets and the graph's OpenAPI document beside it."""
    if rest == "/api/v1.0/doc":
        return Reply(307, b"", (("location", "doc/"),))
    name = "seldon.json" if rest == "/seldon.json" else rest.removeprefix(docs.DOC)
    if name == "":
        return Reply(200, docs.page(predictor.deployment), (("content-type", "text/html; charset=utf-8"),))
    if name == docs.DOCUMENT:
        return Reply(200, docs.document(predictor.deployment))
    if name in docs.ASSETS:
        cache = ("cache-control", "public, max-age=86400")
        return Reply(200, docs.asset(name), (("content-type", docs.ASSETS[name]), cache))
    error = GraphError(404, "NOT_FOUND", f"no such documentation page: {rest}")
    return _json_reply(404, error.seldon_json())


def _requested(outputs: list[Json], asked: Any) -> list[Json]:
    """The outputs a V2 request names (`outputs[].name`), in its order; all of them when it names none."""
    if not isinstance(asked, list) or not asked:
        return outputs
    names = [o.get("name") if isinstance(o, dict) else None for o in asked]
    by_name = {o.get("name"): o for o in outputs}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise bad_request(f"unknown output(s) {missing}; the graph answers {sorted(map(str, by_name))}")
    return [by_name[n] for n in names]


def _length(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CodecError(f"Inference-Header-Content-Length {value!r} is not a number") from None


def _error_reply(error: GraphError, v2: bool) -> Reply:
    if v2:
        return _json_reply(error.status, {"error": error.info})
    return _json_reply(error.status, error.seldon_json())


def _v2_tensors(items: Any) -> list[Json]:
    if not isinstance(items, list):
        return []
    return [
        {
            "name": str(i.get("name", "")),
            "datatype": str(i.get("datatype", "")),
            "shape": list(i.get("shape", [])),
        }
        for i in items
        if isinstance(i, dict)
    ]
