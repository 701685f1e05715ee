"""One request-size limit for every route (issue 19, part 3), through the real mesh: REST and gRPC,
single models and graphs. `seldon.io/grpc-max-message-size` sets it per deployment (here 1 MiB); a
request over it is answered 413 in the protocol's error shape (Seldon's or V2's) or RESOURCE_EXHAUSTED,
and so is an answer over it; without the annotation the limit is 2 GiB - 1 (Seldon's executor default).

A REST body with a Content-Length over the limit is refused by Envoy before any of it is read (shown by
sending only the headers: the answer comes while the body is still owed); a chunked body is cut off by
the runtime or extproc once the limit is passed. No process dies or restarts on the way."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import httpx
import pytest
import yaml

from generated.inference import dataplane_pb2
from generated.seldon import prediction_pb2
from tests.helpers.grpc_clients import seldon_client, v2_client
from tests.helpers.iris_mesh import iris_mesh
from tests.helpers.mesh import Mesh, pid_alive

LIMIT = 2**20
DEFAULT_LIMIT = 2**31 - 1
ANNOTATED = {"seldon.io/grpc-max-message-size": str(LIMIT)}


def _deployment(name: str, graph: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": "seldon"},
        "spec": {**spec, "predictors": [{"name": "default", "graph": graph}]},
    }


MODEL = {"name": "classifier", "implementation": "SKLEARN_SERVER", "modelUri": "./model"}
PAIR = {
    "name": "average",
    "implementation": "AVERAGE_COMBINER",
    "children": [{**MODEL, "name": "left"}, {**MODEL, "name": "right"}],
}
DEPLOYMENTS = [
    _deployment("small", MODEL, annotations=ANNOTATED),
    _deployment("small-v2", MODEL, annotations=ANNOTATED, protocol="v2"),
    _deployment("small-pair", PAIR, annotations=ANNOTATED),
    _deployment("plain", MODEL),
]
ROW = [5.1, 3.5, 1.4, 0.2]
EXTPROC_AT_START: list[int] = []  # extproc's pid once the mesh serves


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    names = [deployment["metadata"]["name"] for deployment in DEPLOYMENTS]
    folder = tmp_path_factory.mktemp("limits")
    with iris_mesh(folder, yaml.safe_dump_all(DEPLOYMENTS), names) as running:
        EXTPROC_AT_START.append(int((running.state_dir / "extproc.pid").read_text()))
        yield running


def _seldon_body(rows: int) -> bytes:
    return json.dumps({"data": {"ndarray": [ROW] * rows}}).encode()


def _v2_body(rows: int) -> bytes:
    inputs = [{"name": "predict", "shape": [rows, 4], "datatype": "FP64", "data": ROW * rows}]
    return json.dumps({"inputs": inputs}).encode()


def _path(name: str, v2: bool = False) -> str:
    tail = "v2/models/classifier/infer" if v2 else "api/v1.0/predictions"
    return f"/seldon/seldon/{name}/{tail}"


def _raw(port: int, head: str, chunks: Sequence[bytes] = ()) -> tuple[int, dict[str, Any]]:
    """Send `head`, then `chunks` until the answer starts arriving; return its status and JSON body.

    (A client that keeps writing after the server answered may see a reset instead of the answer.)"""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode())
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        received = b""
        while b"\r\n\r\n" not in received or len(received) < _expected(received):
            data = sock.recv(65536)
            if not data:
                break
            received += data
    head_part, _, body = received.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    return status, json.loads(body)


def _expected(received: bytes) -> int:
    head, _, _ = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return 0


_HEAD = "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def _headers_only(mesh: Mesh, path: str, length: int) -> tuple[int, dict[str, Any]]:
    """A POST announcing `length` bytes of body and sending none."""
    return _raw(mesh.port, f"{_HEAD.format(path=path)}Content-Length: {length}\r\n\r\n")


def _chunked(mesh: Mesh, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    head = f"{_HEAD.format(path=path)}Transfer-Encoding: chunked\r\n\r\n"
    pieces = [body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]
    return _raw(mesh.port, head, [*(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces), b"0\r\n\r\n"])


def _assert_seldon_413(status: int, body: dict[str, Any]) -> None:
    assert status == 413, body
    assert body["status"]["code"] == 413 and body["status"]["status"] == "FAILURE", body
    assert "limit" in body["status"]["info"], body


def test_rest_over_the_limit_is_refused_before_the_body_is_read(mesh: Mesh) -> None:
    for name in ("small", "small-pair"):
        status, body = _headers_only(mesh, _path(name), LIMIT + 1)
        _assert_seldon_413(status, body)
        assert str(LIMIT) in body["status"]["info"]
    status, body = _headers_only(mesh, _path("small-v2", v2=True), LIMIT + 1)
    assert status == 413 and str(LIMIT) in body["error"], body
    # no annotation: the default limit
    status, body = _headers_only(mesh, _path("plain"), DEFAULT_LIMIT + 1)
    _assert_seldon_413(status, body)
    assert str(DEFAULT_LIMIT) in body["status"]["info"]


def test_rest_bodies_over_the_limit_get_413(mesh: Mesh) -> None:
    big = _seldon_body(LIMIT // 20)  # ~1.1 MiB
    assert len(big) > LIMIT
    for name in ("small", "small-pair"):
        response = httpx.post(mesh.gateway + _path(name), content=big, timeout=60)
        _assert_seldon_413(response.status_code, response.json())
        # without a length: the runtime, or extproc for the graph, stops reading at the limit
        _assert_seldon_413(*_chunked(mesh, _path(name), big))
    big_v2 = _v2_body(LIMIT // 20)
    response = httpx.post(mesh.gateway + _path("small-v2", v2=True), content=big_v2, timeout=60)
    assert response.status_code == 413 and "limit" in response.json()["error"], response.text
    status, body = _chunked(mesh, _path("small-v2", v2=True), big_v2)
    assert status == 413, body


def test_answers_over_the_limit_get_413(mesh: Mesh) -> None:
    request = _seldon_body(LIMIT // 60)  # ~0.4 MiB in, ~1 MiB of probabilities out
    assert len(request) < LIMIT
    for name in ("small", "small-pair"):
        response = httpx.post(mesh.gateway + _path(name), content=request, timeout=60)
        _assert_seldon_413(response.status_code, response.json())
        assert "answer" in response.json()["status"]["info"]
        small = httpx.post(mesh.gateway + _path(name), content=_seldon_body(100), timeout=60)
        assert small.status_code == 200, small.text
        assert len(small.json()["data"]["ndarray"]) == 100


def _grpc(mesh: Mesh, name: str, call: Any, request: Any) -> grpc.RpcError | Any:
    with grpc.insecure_channel(f"127.0.0.1:{mesh.port}") as channel:
        try:
            return call(channel)(request, metadata=(("seldon", name), ("namespace", "seldon")), timeout=60)
        except grpc.RpcError as error:
            return error


def _tensor_message(rows: int) -> prediction_pb2.SeldonMessage:
    message = prediction_pb2.SeldonMessage()
    message.data.tensor.shape.extend([rows, 4])
    message.data.tensor.values.extend(ROW * rows)
    return message


def test_grpc_messages_over_the_limit_get_resource_exhausted(mesh: Mesh) -> None:
    big = _tensor_message(LIMIT // 32 + 1)  # 8 bytes a value, 4 values a row
    assert big.ByteSize() > LIMIT
    for name in ("small", "small-pair"):
        error = _grpc(mesh, name, lambda c: seldon_client(c).Predict, big)
        assert isinstance(error, grpc.RpcError), name
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (name, error.details())
        answer = _grpc(mesh, name, lambda c: seldon_client(c).Predict, _tensor_message(10))
        assert isinstance(answer, prediction_pb2.SeldonMessage), (name, answer)
        assert list(answer.data.tensor.shape) == [10, 3]
    rows = LIMIT // 32 + 1
    infer = dataplane_pb2.ModelInferRequest(model_name="classifier")
    tensor = infer.inputs.add(name="predict", datatype="FP64", shape=[rows, 4])
    tensor.contents.fp64_contents.extend(ROW * rows)
    error = _grpc(mesh, "small-v2", lambda c: v2_client(c).ModelInfer, infer)
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()


def test_no_process_died_on_the_way(mesh: Mesh) -> None:
    assert mesh.process is not None and mesh.process.poll() is None
    for deployment in DEPLOYMENTS:
        status = mesh.state(deployment["metadata"]["name"])
        assert status["state"] == "Available", status
        assert not any(c["restarts"] for c in status["components"]), status
    (extproc,) = EXTPROC_AT_START
    assert int((mesh.state_dir / "extproc.pid").read_text()) == extproc and pid_alive(extproc)
