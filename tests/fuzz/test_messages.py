"""Property-based fuzzing through the real gateway: hypothesis-generated Seldon v1 messages and feedback
and V2 inference requests, over REST and gRPC, to a single model, a V2 model and a graph. Whatever the
client sends, the answer is not a 5xx (gRPC: not INTERNAL, UNKNOWN, UNAVAILABLE, DEADLINE_EXCEEDED or
DATA_LOSS), and no process of the mesh dies or restarts.

Bounded for CI: a fixed number of examples per test, derandomized (the same examples on every run),
no example database and no deadline (the machine is shared and noisy; time is not the property)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from generated.inference import dataplane_pb2, dataplane_pb2_grpc
from generated.seldon import prediction_pb2, prediction_pb2_grpc
from tests.fuzz.strategies import FEEDBACK, SELDON_MESSAGE, V2_PROTO_REQUEST, V2_REQUEST
from tests.helpers.mesh import Mesh, pid_alive

EXAMPLES = 40
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
SERVER_FAULTS = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.DATA_LOSS,
}
SELDON_ROUTES = {"single": ("iris-model", "classifier"), "graph": ("pair", "pair")}
V2_ROUTES = {"single": ("iris-v2", "classifier"), "graph": ("pair", "pair")}


DEEP_ARRAY: Any = 1
for _ in range(120):
    DEEP_ARRAY = [DEEP_ARRAY]


def _parse_deep(message: Any, request: prediction_pb2.SeldonMessage) -> None:
    """json_format.ParseDict with room on the stack: it recurses twice per nesting level, so DEEP_ARRAY's 120
    levels under hypothesis's own frames hit the default limit of 1,000 on some runs and not on others (a
    fresh-clone CI run failed with hypothesis's 'Inconsistent results from replaying a test case')."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        json_format.ParseDict(message, request)
    finally:
        sys.setrecursionlimit(limit)


def _v2(datatype: str, shape: list[int] | None = None, name: str = "x", **contents: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape or [1], "contents": contents}


SERVING = (b"envoy", b"-m\x00extproc", b"-m\x00model_runtime")


def _serving(pid: int) -> set[int]:
    """The long-lived processes `seldon-mesh up` runs (Envoy, extproc, one per runtime), from /proc; short
    helpers it may start and reap meanwhile are not the mesh dying."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if parent == pid and any(name in command for name in SERVING):
            found.add(int(stat.parent.name))
    return found


@pytest.fixture(scope="module")
def survivors(mesh: Mesh) -> Iterator[None]:
    """After the module's fuzzing, every process that ran before it still runs, and nothing restarted."""
    assert mesh.process is not None  # the mesh fixture waited for every deployment to be Available
    before = _serving(mesh.process.pid)
    assert len(before) >= 6, before  # Envoy, extproc and the four runtimes
    yield
    dead = sorted(pid for pid in before if not pid_alive(pid))
    assert not dead, f"processes died while fuzzing: {dead}\n{mesh.log()[-3000:]}"
    components = [(d["metadata"]["name"], c) for d in mesh.get() for c in d["status"]["components"]]
    restarts = {(name, c["node"]): c["restarts"] for name, c in components}
    assert not any(restarts.values()), restarts


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # stdlib: integers of any size, as a client may write them


def _post(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    response = client.post(path, content=_dumps(body), headers={"content-type": "application/json"})
    assert response.status_code < 500, f"POST {path} {_dumps(body)[:2000]!r} -> {response.text[:2000]}"
    return response


def _rest(mesh: Mesh) -> httpx.Client:
    return httpx.Client(base_url=mesh.gateway, timeout=30)


@pytest.mark.parametrize("route", sorted(SELDON_ROUTES))
def test_seldon_rest_predictions(mesh: Mesh, survivors: None, route: str) -> None:
    name, _ = SELDON_ROUTES[route]
    with _rest(mesh) as client:

        @FUZZ
        @given(message=SELDON_MESSAGE)
        def run(message: Any) -> None:
            response = _post(client, f"/seldon/seldon/{name}/api/v1.0/predictions", message)
            if response.status_code >= 400:
                assert response.json()["status"]["status"] == "FAILURE", response.text

        run()


@pytest.mark.parametrize("route", sorted(SELDON_ROUTES))
def test_seldon_rest_feedback(mesh: Mesh, survivors: None, route: str) -> None:
    name, _ = SELDON_ROUTES[route]
    with _rest(mesh) as client:

        @FUZZ
        @given(feedback=FEEDBACK)
        def run(feedback: Any) -> None:
            _post(client, f"/seldon/seldon/{name}/api/v1.0/feedback", feedback)

        run()


@pytest.mark.parametrize("route", sorted(V2_ROUTES))
def test_v2_rest_infer(mesh: Mesh, survivors: None, route: str) -> None:
    name, model = V2_ROUTES[route]
    with _rest(mesh) as client:

        @FUZZ
        @given(request=V2_REQUEST)
        @example(
            request={"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 4], "data": [[0, 0, 0, -1]]}]}
        )
        def run(request: Any) -> None:
            response = _post(client, f"/seldon/seldon/{name}/v2/models/{model}/infer", request)
            if response.status_code >= 400:
                assert "error" in response.json(), response.text

        run()


def _grpc_call(mesh: Mesh, name: str, call: Callable[[grpc.Channel, Any], Any]) -> Callable[[Any], None]:
    def send(request: Any) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{mesh.port}") as channel:
            try:
                call(channel, request)(
                    request, metadata=(("seldon", name), ("namespace", "seldon")), timeout=30
                )
            except grpc.RpcError as error:
                code = error.code()
                assert code not in SERVER_FAULTS, f"{request} -> {code}: {error.details()}"

    return send


@pytest.mark.parametrize("route", sorted(SELDON_ROUTES))
def test_seldon_grpc_predict(mesh: Mesh, survivors: None, route: str) -> None:
    name, _ = SELDON_ROUTES[route]
    send = _grpc_call(mesh, name, lambda channel, _: prediction_pb2_grpc.SeldonStub(channel).Predict)

    @FUZZ
    @given(message=SELDON_MESSAGE)
    @example(message={"data": {"ndarray": DEEP_ARRAY}})  # deeper than protobuf parses (100 levels)
    def run(message: Any) -> None:
        request = prediction_pb2.SeldonMessage()
        try:
            _parse_deep(message, request)
        except (json_format.ParseError, TypeError, ValueError, AttributeError):
            assume(False)  # not expressible as a SeldonMessage: the gRPC client could not send it
        send(request)

    run()


@pytest.mark.parametrize("route", sorted(V2_ROUTES))
def test_v2_grpc_infer(mesh: Mesh, survivors: None, route: str) -> None:
    name, model = V2_ROUTES[route]
    send = _grpc_call(
        mesh, name, lambda channel, _: dataplane_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer
    )

    @FUZZ
    @given(request=V2_PROTO_REQUEST, model_name=st.sampled_from([model, "", "nope"]))
    @example(
        request={"id": "", "inputs": [_v2("INT64")], "raw_input_contents": [b"\x10\x01"]}, model_name=model
    )
    @example(request={"id": "", "inputs": [_v2("INT16", int_contents=[-101585])]}, model_name=model)
    @example(
        request={"id": "", "inputs": [_v2("FP32", [0]), {**_v2("FP32", [0]), "name": "y"}]}, model_name=model
    )
    def run(request: dict[str, Any], model_name: str) -> None:
        proto = dataplane_pb2.ModelInferRequest(model_name=model_name, id=request["id"])
        for tensor in request["inputs"]:
            proto.inputs.add(
                name=tensor["name"],
                datatype=tensor["datatype"],
                shape=tensor["shape"],
                contents=dataplane_pb2.InferTensorContents(**tensor["contents"]),
            )
        proto.raw_input_contents.extend(request.get("raw_input_contents", []))
        send(proto)

    run()
