"""The explainer's HTTP server (standard library: the env holds alibi, not a web framework).

Paths, as the gateway forwards them (its prefix `/seldon/<ns>/<name>-explainer/<predictor>/` removed):
- `POST /api/v1.0/explain`: a Seldon message in, the explanation's JSON out;
- `POST /v2/models/<name>-<predictor>-explainer/infer` (Seldon's V2 explainer model name; `<name>-explainer`
  too): a V2 request in, the explanation as a BYTES output;
- `GET /ready` (the supervisor's probe; 503 with Seldon's error while loading or when the build failed),
  `/live`, `/health/ping`, `/v2/health/ready`, `/v2/health/live`, `/v2/models/<that name>[/ready]`;
- on the metrics port, `GET /prometheus`: request counts and seconds by protocol and code.
Every error is answered in its protocol's shape; nothing a client sends stops the server.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from explainer_server.errors import BadRequest, ExplainerError, ExplainerNotReady, NotFound, root_cause
from explainer_server.explainers import Explanations
from explainer_server.payloads import (
    decode_seldon,
    decode_v2,
    explanation_v2,
    parse_json,
    seldon_error,
    v2_error,
)

log = logging.getLogger("explainer_server")
MAX_BODY_BYTES = 64 * 2**20


class State:
    """What the handlers share: the explainer, whether it may serve, and the counters."""

    def __init__(self, explanations: Explanations, model_name: str, aliases: tuple[str, ...] = ()) -> None:
        self.explanations = explanations
        # the explainer's V2 model name, Seldon's `<deployment>-<predictor>-explainer`, and aliases
        self.model_name = model_name
        self.names = (model_name, *aliases)
        self.ready = False
        self.failure: str | None = None
        self.counts: dict[tuple[str, int], int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def record(self, protocol: str, code: int, seconds: float) -> None:
        with self._lock:
            self.counts[(protocol, code)] += 1
            self.seconds[protocol] += seconds

    def metrics(self) -> str:
        with self._lock:
            lines = ["# TYPE seldon_explainer_requests_total counter"]
            lines += [
                f'seldon_explainer_requests_total{{protocol="{p}",code="{c}"}} {n}'
                for (p, c), n in sorted(self.counts.items())
            ]
            lines.append("# TYPE seldon_explainer_request_seconds_total counter")
            lines += [
                f'seldon_explainer_request_seconds_total{{protocol="{p}"}} {s:.6f}'
                for p, s in sorted(self.seconds.items())
            ]
        return "\n".join(lines) + "\n"


def _handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

        def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
            payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _not_ready(self) -> ExplainerNotReady:
            if state.failure is not None:
                error = ExplainerNotReady(state.failure)
                error.reason = "LOAD_FAILED"
                return error
            return ExplainerNotReady("the explainer is loading")

        def _model_path(self, path: str) -> str | None:
            """What follows `/v2/models/<name>` when `name` is this explainer's ("" for the model itself)."""
            if not path.startswith("/v2/models/"):
                return None
            name, slash, rest = path[len("/v2/models/") :].partition("/")
            return slash + rest if name in state.names else None

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            model = self._model_path(path)
            if path in ("/ready", "/health/status", "/v2/health/ready", "/prometheus") or model == "/ready":
                if path == "/prometheus":
                    self._send(200, state.metrics(), "text/plain; version=0.0.4")
                elif state.ready:
                    self._send(200, {"status": "ready"} if not path.startswith("/v2") else {"ready": True})
                else:
                    error = self._not_ready()
                    self._send(503, seldon_error(error) if not path.startswith("/v2") else v2_error(error))
            elif path in ("/live", "/health/ping", "/v2/health/live"):
                self._send(200, {"status": "alive"} if not path.startswith("/v2") else {"live": True})
            elif model == "":
                self._send(200, {"name": state.model_name, "platform": "alibi", "versions": []})
            else:
                self._send(404, seldon_error(NotFound(f"no such path: {path}")))

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            protocol = "v2" if path.startswith("/v2/") else "seldon"
            try:  # read first, whatever the answer: what is left unread would be taken for a request
                body = self._body()
            except BadRequest as error:
                self._send(400, v2_error(error) if protocol == "v2" else seldon_error(error))
                return
            if path == "/api/v1.0/explain":
                self._explain("seldon", body)
            elif self._model_path(path) == "/infer":
                self._explain("v2", body)
            elif protocol == "v2":
                self._send(
                    404, v2_error(NotFound(f"no model at {path}: this explainer is {state.model_name}"))
                )
            else:
                self._send(404, seldon_error(NotFound(f"no such path: {path}")))

        def _body(self) -> bytes:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError as error:
                self.close_connection = True
                raise BadRequest("a bad Content-Length") from error
            if length < 0 or length > MAX_BODY_BYTES:
                self.close_connection = True  # the body is not read: the connection cannot be reused
                raise BadRequest(f"the body must be at most {MAX_BODY_BYTES} bytes")
            return self.rfile.read(length)

        def _explain(self, protocol: str, body_bytes: bytes) -> None:
            started = time.perf_counter()
            code = 200
            try:
                if not state.ready:
                    raise self._not_ready()
                request = parse_json(body_bytes)
                instances = decode_v2(request) if protocol == "v2" else decode_seldon(request)
                explanation = state.explanations.explain(instances)
                body: Any = (
                    explanation if protocol == "seldon" else explanation_v2(state.model_name, explanation)
                )
                self._send(200, body)
            except Exception as raised:  # every failure is answered; none ends the server
                error = root_cause(raised)
                if error is None:
                    log.exception("explanation failed")
                    error = ExplainerError(f"the explanation failed: {type(raised).__name__}: {raised}")
                code = error.status
                self._send(code, seldon_error(error) if protocol == "seldon" else v2_error(error))
            finally:
                state.record(protocol, code, time.perf_counter() - started)

    return Handler


def serve(state: State, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"http {port}", daemon=True).start()
    return server
