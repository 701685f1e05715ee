"""The ext_proc servicer over a real gRPC stream: phases in, ImmediateResponse out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

from extproc.config import GRPC_MAX_MESSAGE_SIZE, DeploymentConfig, GraphConfig
from extproc.graph import GraphExecutor
from extproc.server import ExtprocSettings, Frontend, create_server
from tests.extproc.fakes import FakeNodes, node, predictor, scale


def _headers(path: str, method: str = "POST", end: bool = False) -> ep.ProcessingRequest:
    pairs = {":path": path, ":method": method, "x-request-id": "rid-1", "content-type": "application/json"}
    headers = [base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
    return ep.ProcessingRequest(
        request_headers=ep.HttpHeaders(headers=base_pb2.HeaderMap(headers=headers), end_of_stream=end)
    )


def _body(data: Any) -> ep.ProcessingRequest:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return ep.ProcessingRequest(request_body=ep.HttpBody(body=raw, end_of_stream=True))


async def _exchange(
    requests: list[ep.ProcessingRequest], predictor_name: str = "main"
) -> list[ep.ProcessingResponse]:
    # a 4 MiB request limit (seldon.io/grpc-max-message-size)
    graph = predictor(node("pre", "TRANSFORMER", node("model")), **{GRPC_MAX_MESSAGE_SIZE: str(4 << 20)})
    config = GraphConfig("g", {("default", "dep"): DeploymentConfig("default", "dep", (graph,))})
    nodes = FakeNodes(behaviours={"pre": scale(10), "model": scale(2)})
    frontend = Frontend(lambda: config, GraphExecutor(nodes))
    server, port = await create_server(ExtprocSettings(), frontend)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = ep_grpc.ExternalProcessorStub(channel)

            async def feed() -> AsyncIterator[ep.ProcessingRequest]:
                for request in requests:
                    yield request

            call = stub.Process(feed(), metadata=(("x-seldon-predictor", predictor_name),))
            return [response async for response in call]
    finally:
        await server.stop(0)


def _reply(response: ep.ProcessingResponse) -> tuple[int, dict[str, str], Any]:
    immediate = response.immediate_response
    headers = {h.header.key: h.header.raw_value.decode() for h in immediate.headers.set_headers}
    return immediate.status.code, headers, json.loads(immediate.body) if immediate.body else None


def test_body_phase_runs_the_graph_and_answers_immediately() -> None:
    path = "/seldon/default/dep/api/v1.0/predictions"
    responses = asyncio.run(_exchange([_headers(path), _body({"data": {"ndarray": [[1.0]]}})]))
    assert responses[0].WhichOneof("response") == "request_headers"  # CONTINUE: send the body
    status, headers, body = _reply(responses[1])
    assert status == 200
    assert body["data"]["ndarray"] == [[20.0]]
    assert headers["seldon-puid"] == body["meta"]["puid"] == "rid-1"
    assert headers["seldon-predictor"] == "main"
    # marks its own reply so the gateway's local-reply mappers leave the body alone
    assert responses[1].dynamic_metadata["seldon_mesh.graph"]["reply"] is True


def test_bodiless_requests_are_answered_at_the_headers_phase() -> None:
    responses = asyncio.run(_exchange([_headers("/seldon/default/dep/api/v1.0/metadata", "GET", end=True)]))
    status, _, body = _reply(responses[0])
    assert status == 200 and set(body["models"]) == {"pre", "model"}


def test_errors_come_back_in_the_clients_protocol() -> None:
    seldon = asyncio.run(_exchange([_headers("/seldon/default/dep/api/v1.0/predictions"), _body(b"{oops")]))
    status, _, body = _reply(seldon[1])
    assert status == 400 and body["status"]["reason"] == "BAD_REQUEST"
    v2 = asyncio.run(_exchange([_headers("/seldon/default/dep/v2/models/dep/infer"), _body({"inputs": []})]))
    status, _, body = _reply(v2[1])
    assert status == 400 and "inputs" in body["error"]
    unknown = asyncio.run(
        _exchange([_headers("/seldon/default/dep/api/v1.0/predictions"), _body({})], predictor_name="nope")
    )
    status, _, body = _reply(unknown[1])
    assert status == 503 and "predictor 'nope'" in body["status"]["info"]


def test_v2_request_to_a_seldon_graph_comes_back_as_v2() -> None:
    request = {"id": "q1", "inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}
    responses = asyncio.run(_exchange([_headers("/seldon/default/dep/v2/models/dep/infer"), _body(request)]))
    status, _, body = _reply(responses[1])
    assert status == 200
    assert body == {
        "model_name": "dep",
        "id": "q1",
        "outputs": [{"name": "output-0", "shape": [1, 1], "datatype": "FP32", "data": [20.0]}],
    }


def _duplex(request: ep.ProcessingRequest) -> ep.ProcessingRequest:
    """The first message of a stream whose body Envoy sends FULL_DUPLEX_STREAMED (the gateway's mode)."""
    request.protocol_config.request_body_mode = processing_mode_pb2.ProcessingMode.FULL_DUPLEX_STREAMED
    return request


def test_full_duplex_streams_get_one_answer_for_headers_and_a_chunked_body() -> None:
    path = "/seldon/default/dep/api/v1.0/predictions"
    raw = json.dumps({"data": {"ndarray": [[1.0]]}}).encode()
    first = ep.ProcessingRequest(request_body=ep.HttpBody(body=raw[:7]))
    responses = asyncio.run(_exchange([_duplex(_headers(path)), first, _body(raw[7:])]))
    assert len(responses) == 1  # Envoy waits for no answer to the headers or the first chunk
    status, _, body = _reply(responses[0])
    assert status == 200 and body["data"]["ndarray"] == [[20.0]]


def test_full_duplex_body_over_the_limit_gets_413() -> None:
    path = "/seldon/default/dep/api/v1.0/predictions"
    chunk = ep.ProcessingRequest(request_body=ep.HttpBody(body=b" " * (3 << 20)))
    responses = asyncio.run(_exchange([_duplex(_headers(path)), chunk, chunk]))
    status, _, body = _reply(responses[0])
    assert status == 413 and body["status"]["reason"] == "PAYLOAD_TOO_LARGE"
