"""extproc's answers to Envoy's ext_proc `http_service` POSTs (`--graph-edge ext_proc-http`) that need no
graph: bad payloads get an ImmediateResponse with a Seldon 400, and a pinned route's name names its
predictor. Graph flows through the real Envoy are in tests/graphs/test_extproc_http_mesh.py."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any, Protocol, cast

import orjson
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from google.protobuf import json_format

from extproc.server import extproc_http, processor
from extproc.server.frontend import Frontend, Reply


class _Rest(Protocol):
    """The one method of `Frontend` that `extproc_http.process` calls."""

    async def rest(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str], predictor_name: str | None
    ) -> Reply: ...


def _as_frontend(fake: _Rest) -> Frontend:
    return cast(Frontend, fake)


class _NoFrontend:
    async def rest(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str], predictor_name: str | None
    ) -> Reply:
        raise AssertionError("a bad payload must not reach the graph")


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[]", b'{"request_headers": {}}', b'{"request_body": {"body": "%%%"}}'],
)
def test_bad_payload_is_an_immediate_seldon_400(payload: bytes) -> None:
    answer = asyncio.run(extproc_http.process(_as_frontend(_NoFrontend()), payload))
    response = json_format.Parse(answer, ep.ProcessingResponse())
    assert response.immediate_response.status.code == 400
    assert orjson.loads(response.immediate_response.body)["status"]["reason"] == "BAD_REQUEST"


def test_a_pinned_route_names_the_predictor() -> None:
    path = "/seldon/ns/dep/api/v1.0/predictions"
    assert extproc_http._pinned(path, "ns.dep.pin.canary.v2.http") == "canary.v2"
    assert extproc_http._pinned(path, "ns.dep.http") is None
    assert extproc_http._pinned(path, "ns.dep.http.translate") is None
    assert extproc_http._pinned("/other", "ns.dep.pin.x.http") is None


def test_body_and_attributes_reach_the_frontend() -> None:
    seen: dict[str, Any] = {}

    class Recorder:
        async def rest(
            self, method: str, path: str, body: bytes, headers: Mapping[str, str], predictor_name: str | None
        ) -> Reply:
            seen.update(method=method, path=path, body=body, headers=dict(headers), predictor=predictor_name)
            return Reply(200, b'{"data": {}}')

    attributes = {
        "request.path": "/api/v1.0/predictions",
        "request.headers['x-envoy-original-path']": "/seldon/ns/dep/api/v1.0/predictions",
        "request.method": "POST",
        "request.id": "rid-1",
        "xds.route_name": "ns.dep.pin.p1.http",
    }
    payload = orjson.dumps(
        {
            "request_body": {"body": base64.b64encode(b'{"data": 1}').decode(), "end_of_stream": True},
            "attributes": {extproc_http.ATTRIBUTES_KEY: attributes},
        }
    )
    answer = asyncio.run(extproc_http.process(_as_frontend(Recorder()), payload))
    response = json_format.Parse(answer, ep.ProcessingResponse())
    assert seen == {
        "method": "POST",
        "path": "/seldon/ns/dep/api/v1.0/predictions",
        "body": b'{"data": 1}',
        "headers": {"x-request-id": "rid-1"},
        "predictor": "p1",
    }
    # the same ImmediateResponse the gRPC servicer builds
    assert response == processor.immediate(Reply(200, b'{"data": {}}'), "rid-1", "p1")
    immediate = response.immediate_response
    assert immediate.status.code == 200 and immediate.body == b'{"data": {}}'
    headers = {h.header.key: h.header.raw_value for h in immediate.headers.set_headers}
    assert headers["seldon-puid"] == b"rid-1" and headers["seldon-predictor"] == b"p1"
