"""The gateway serves inference, not administration: the V2 repository extension (load, unload, index)
answers 404 over REST and UNIMPLEMENTED over gRPC, and the model keeps serving; HTTP/1.0 clients are
served. Through the real mesh (Envoy, the iris runtime)."""

from __future__ import annotations

import socket

import grpc
import httpx
import pytest

from generated.inference import dataplane_pb2, dataplane_pb2_grpc
from tests.helpers.mesh import Mesh

BASE = "/seldon/seldon/iris-model"
PREDICT = f"{BASE}/api/v1.0/predictions"
GOOD = {"data": {"ndarray": [[1, 2, 3, 4]]}}
HEADERS = (("seldon", "iris-model"), ("namespace", "seldon"))


@pytest.mark.parametrize(
    "path",
    [
        "/v2/repository/index",
        "/v2/repository/models/classifier/unload",
        "/v2/repository/models/classifier/load",
    ],
)
def test_the_repository_extension_is_not_served_over_rest(mesh: Mesh, path: str) -> None:
    mesh.wait_serving(PREDICT, GOOD)
    response = httpx.post(mesh.gateway + BASE + path, json={})
    assert response.status_code == 404
    assert response.json()["status"]["status"] == "FAILURE"
    assert httpx.post(mesh.gateway + PREDICT, json=GOOD).status_code == 200
    ready = httpx.get(mesh.gateway + f"{BASE}/v2/models/classifier/ready")
    assert ready.status_code == 200


def test_the_repository_extension_is_not_served_over_grpc(mesh: Mesh) -> None:
    mesh.wait_serving(PREDICT, GOOD)
    with grpc.insecure_channel(f"127.0.0.1:{mesh.port}") as channel:
        stub = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel)
        for call, request in (
            (stub.RepositoryModelUnload, dataplane_pb2.RepositoryModelUnloadRequest(model_name="classifier")),
            (stub.RepositoryIndex, dataplane_pb2.RepositoryIndexRequest()),
        ):
            with pytest.raises(grpc.RpcError) as error:
                call(request, metadata=HEADERS, timeout=10)
            assert error.value.code() is grpc.StatusCode.UNIMPLEMENTED
        live = stub.ServerLive(dataplane_pb2.ServerLiveRequest(), metadata=HEADERS, timeout=10)
        assert live.live
    assert httpx.post(mesh.gateway + PREDICT, json=GOOD).status_code == 200


def test_http_1_0_is_served(mesh: Mesh) -> None:
    mesh.wait_serving(PREDICT, GOOD)
    body = b'{"data": {"ndarray": [[1, 2, 3, 4]]}}'
    request = (
        f"POST {PREDICT} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", mesh.port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 200 " in status_line, answer[:300]
    assert b'"ndarray"' in answer
