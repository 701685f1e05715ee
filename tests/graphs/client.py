"""Small client helpers for the graph flows: REST calls through the gateway and the Seldon error check."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
from google.protobuf import json_format

from generated.seldon import prediction_pb2, prediction_pb2_grpc
from tests.helpers.mesh import Mesh


def predictions(name: str) -> str:
    return f"/seldon/default/{name}/api/v1.0/predictions"


def predict(mesh: Mesh, name: str, body: Any, timeout: float = 30) -> httpx.Response:
    return httpx.post(mesh.gateway + predictions(name), json=body, timeout=timeout)


def ndarray(rows: list[list[float]]) -> dict[str, Any]:
    return {"data": {"ndarray": rows}}


def assert_seldon_error(response: httpx.Response, status: int, node: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["status"]
    assert error["status"] == "FAILURE"
    assert error["code"] == status
    if node is not None:
        assert f"node {node!r}" in error["info"], error
    return dict(error)


def grpc_predict(mesh: Mesh, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    with grpc.insecure_channel(f"127.0.0.1:{mesh.port}") as channel:
        stub = prediction_pb2_grpc.SeldonStub(channel)
        request = json_format.ParseDict(body, prediction_pb2.SeldonMessage())
        reply, call = stub.Predict.with_call(
            request, metadata=(("seldon", name), ("namespace", "default")), timeout=30
        )
        return json_format.MessageToDict(reply), dict(call.initial_metadata())


def many(mesh: Mesh, name: str, body: Any, count: int, clients: int = 4) -> list[dict[str, Any]]:
    """`count` predictions from `clients` keep-alive clients in threads; every one must succeed."""

    def run(share: int) -> list[dict[str, Any]]:
        replies = []
        with httpx.Client(base_url=mesh.gateway, timeout=30) as client:
            for _ in range(share):
                response = client.post(predictions(name), json=body)
                assert response.status_code == 200, response.text
                replies.append(dict(response.json()))
        return replies

    shares = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        return [reply for replies in pool.map(run, shares) for reply in replies]
