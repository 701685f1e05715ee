"""The REST edge over real sockets: HTTP/1.1 requests in, the graph's answer (or a Seldon error) out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from extproc.config import GRPC_MAX_MESSAGE_SIZE, DeploymentConfig, GraphConfig
from extproc.graph import GraphExecutor
from extproc.server import Frontend
from extproc.server.rest import create_rest_server
from tests.extproc.fakes import FakeNodes, node, predictor, scale

PREDICT = "/seldon/default/dep/api/v1.0/predictions"
HEADERS = {"x-seldon-predictor": "main", "x-request-id": "rid-1"}
LIMIT = 4 * 2**20  # the deployment's request limit (seldon.io/grpc-max-message-size)


def _frontend(nodes: FakeNodes | None = None) -> Frontend:
    graph = predictor(node("pre", "TRANSFORMER", node("model")), **{GRPC_MAX_MESSAGE_SIZE: str(LIMIT)})
    config = GraphConfig("g", {("default", "dep"): DeploymentConfig("default", "dep", (graph,))})
    nodes = nodes or FakeNodes(behaviours={"pre": scale(10), "model": scale(2)})
    return Frontend(lambda: config, GraphExecutor(nodes))


def _serving(test: Callable[[int], Awaitable[Any]], frontend: Frontend | None = None) -> Any:
    async def run() -> Any:
        server, port = await create_rest_server(frontend or _frontend(), "127.0.0.1", 0)
        try:
            return await test(port)
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(run())


async def _raw(port: int, data: bytes) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()


def test_predictions_on_one_keep_alive_connection() -> None:
    async def test(port: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            body = {"data": {"ndarray": [[1.0]]}}
            return [await client.post(PREDICT, json=body, headers=HEADERS) for _ in range(3)]

    responses = _serving(test)
    for response in responses:
        assert response.status_code == 200
        assert response.json()["data"]["ndarray"] == [[20.0]]
        assert response.headers["seldon-puid"] == response.json()["meta"]["puid"] == "rid-1"
        assert response.headers["seldon-predictor"] == "main"
        assert response.headers["content-type"] == "application/json"


def test_a_chunked_body_and_a_rewritten_path() -> None:
    async def test(port: int) -> httpx.Response:
        async def chunks() -> Any:
            yield b'{"data": {"nd'
            yield b'array": [[2.0]]}}'

        headers = {**HEADERS, "x-envoy-original-path": PREDICT}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            return await client.post("/api/v1.0/predictions", content=chunks(), headers=headers)

    response = _serving(test)
    assert response.status_code == 200 and response.json()["data"]["ndarray"] == [[40.0]]


def test_pipelined_requests_are_answered_in_order() -> None:
    def request(value: float, close: bool = False) -> bytes:
        body = json.dumps({"data": {"ndarray": [[value]]}}).encode()
        head = f"POST {PREDICT} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n"
        return (head + ("connection: close\r\n" if close else "") + "\r\n").encode() + body

    answer = _serving(lambda port: _raw(port, request(1.0) + request(2.0) + request(3.0, close=True)))
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.index(b"[[20.0]]") < answer.index(b"[[40.0]]") < answer.index(b"[[60.0]]")


def test_errors_in_the_clients_protocol() -> None:
    async def test(port: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            return [
                await client.post(PREDICT, content=b"{oops", headers=HEADERS),
                await client.post("/seldon/default/dep/v2/models/dep/infer", json={"inputs": []}),
                await client.post(PREDICT, json={}, headers={"x-seldon-predictor": "nope"}),
                await client.post("/elsewhere", json={}),
                # still serving on the same connection after each error
                await client.post(PREDICT, json={"data": {"ndarray": [[1.0]]}}, headers=HEADERS),
            ]

    bad_json, bad_v2, unknown, elsewhere, fine = _serving(test)
    assert bad_json.status_code == 400 and bad_json.json()["status"]["reason"] == "BAD_REQUEST"
    assert bad_v2.status_code == 400 and "inputs" in bad_v2.json()["error"]
    assert unknown.status_code == 503 and "predictor 'nope'" in unknown.json()["status"]["info"]
    assert elsewhere.status_code == 404 and elsewhere.json()["status"]["status"] == "FAILURE"
    assert fine.status_code == 200


def test_a_request_that_does_not_parse_gets_a_seldon_400_and_the_server_keeps_serving() -> None:
    async def test(port: int) -> tuple[bytes, int]:
        garbage = await _raw(port, b"NOT HTTP AT ALL\r\n\r\n")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            after = await client.post(PREDICT, json={"data": {"ndarray": [[1.0]]}}, headers=HEADERS)
        return garbage, after.status_code

    garbage, after = _serving(test)
    head, _, body = garbage.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"connection: close" in head
    assert json.loads(body)["status"]["reason"] == "BAD_REQUEST"
    assert after == 200


def test_a_body_over_the_limit_gets_413() -> None:
    async def test(port: int) -> httpx.Response:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            return await client.post(PREDICT, content=b" " * (LIMIT + 1), headers=HEADERS)

    response = _serving(test)
    assert response.status_code == 413 and response.json()["status"]["reason"] == "PAYLOAD_TOO_LARGE"


def test_an_executor_bug_is_a_seldon_500_not_a_dropped_connection() -> None:
    class Broken(FakeNodes):
        async def call(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug")

    async def test(port: int) -> httpx.Response:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            return await client.post(PREDICT, json={"data": {"ndarray": [[1.0]]}}, headers=HEADERS)

    response = _serving(test, _frontend(Broken()))
    assert response.status_code == 500 and response.json()["status"]["reason"] == "INTERNAL_ERROR"


def test_a_bare_path_is_for_the_sole_deployment() -> None:
    """A Kubernetes predictor's extproc serves one deployment; the ingress rewrote `/seldon/<ns>/<name>`
    away and may not say so in x-envoy-original-path."""

    async def test(port: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            body = {"data": {"ndarray": [[1.0]]}}
            return [
                await client.post("/api/v1.0/predictions", json=body, headers=HEADERS),
                await client.post("/api/v1.0/predictions?x=1", json=body),
            ]

    for response in _serving(test):
        assert response.status_code == 200, response.text
        assert response.json()["data"]["ndarray"] == [[20.0]]


def test_a_bare_path_with_several_deployments_is_not_found() -> None:
    graph = predictor(node("model"))
    config = GraphConfig(
        "g",
        {
            ("default", "a"): DeploymentConfig("default", "a", (graph,)),
            ("default", "b"): DeploymentConfig("default", "b", (graph,)),
        },
    )
    frontend = Frontend(lambda: config, GraphExecutor(FakeNodes(behaviours={"model": scale(2)})))

    async def test(port: int) -> httpx.Response:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            return await client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1.0]]}})

    response = _serving(test, frontend)
    assert response.status_code == 404
    assert response.json()["status"]["status"] == "FAILURE"
