"""Payload logging of a single-model predictor through a real `seldon-mesh up`: Envoy serves it straight
from the gateway to the runtime, which logs the exchange itself (or, for a deployment annotated
`seldon.io/payload-log-stream: "true"`, Envoy copies each exchange to extproc in ext_proc observability
mode); the node's `logger` delivers Seldon's request and response CloudEvents to an HTTP sink, and the
client gets the same answer as from an unlogged twin."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import json_format

from generated.seldon import prediction_pb2, prediction_pb2_grpc
from tests.helpers.mesh import Mesh, free_port, wait_for
from tests.observability.sink import Received, RecordingSink

GRAPHS = Path(__file__).resolve().parents[2] / "tests/data/graphs"
MANIFEST = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: {name}
  annotations: {annotations}
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: model, image: example/affine:0.1, workingDir: {graphs},
                 env: [{{name: MODEL_NAME, value: Affine}}]}}
      graph:
        name: model
        type: MODEL
        parameters: [{{name: scale, value: "2", type: FLOAT}}]
        {logger}
"""
BODY = {"data": {"ndarray": [[1.0, 2.0]]}}
REQUEST = "io.seldon.serving.inference.request"
RESPONSE = "io.seldon.serving.inference.response"


def _path(name: str) -> str:
    return f"/seldon/default/{name}/api/v1.0/predictions"


@dataclass
class Logged:
    mesh: Mesh
    sink: RecordingSink

    def events(self, puid: str) -> list[Received]:
        return [r for r in self.sink.snapshot() if r.headers.get("Ce-Requestid") == puid]

    def wait_events(self, puid: str, count: int) -> dict[str, Received]:
        found = wait_for(lambda: len(e := self.events(puid)) >= count and e, 30, f"{count} events of {puid}")
        return {e.headers["Ce-Type"]: e for e in found}


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    folder = tmp_path_factory.mktemp("single-logged")
    sink = RecordingSink()
    sink.start()
    spec = folder / "models.yaml"
    logger = f'logger: {{mode: all, url: "{sink.url}"}}'
    stream = '{"seldon.io/payload-log-stream": "true"}'
    spec.write_text(
        MANIFEST.format(name="logged-model", graphs=GRAPHS, logger=logger, annotations="{}")
        + "---"
        + MANIFEST.format(name="stream-model", graphs=GRAPHS, logger=logger, annotations=stream)
        + "---"
        + MANIFEST.format(name="plain-model", graphs=GRAPHS, logger="", annotations="{}")
    )
    previous = os.environ.get("SELDON_MESH_SPOOL_DIR")
    os.environ["SELDON_MESH_SPOOL_DIR"] = str(folder / "runtime-spools")  # for the runtimes `up` starts
    try:
        mesh = Mesh(folder / "state", free_port()).start(spec)
    finally:
        if previous is None:
            del os.environ["SELDON_MESH_SPOOL_DIR"]
        else:
            os.environ["SELDON_MESH_SPOOL_DIR"] = previous
    try:
        for name in ("logged-model", "stream-model", "plain-model"):
            mesh.wait_state(name, "Available", timeout=120)
            mesh.wait_serving(_path(name), BODY)
        yield Logged(mesh, sink)
    finally:
        mesh.stop()
        sink.stop()


@pytest.mark.parametrize("name", ["logged-model", "stream-model"])
def test_a_single_models_logger_delivers_seldons_request_and_response_events(
    logged: Logged, name: str
) -> None:
    puid = "single-" + secrets.token_hex(4)
    response = httpx.post(logged.mesh.gateway + _path(name), json=BODY, headers={"Seldon-Puid": puid})
    assert response.status_code == 200, response.text
    assert response.headers["seldon-puid"] == puid
    events = logged.wait_events(puid, 2)
    assert set(events) == {REQUEST, RESPONSE}
    assert json.loads(events[REQUEST].body) == BODY  # the bytes the client sent
    assert events[RESPONSE].body == response.content  # the bytes the client got
    for event in events.values():
        headers = event.headers
        assert headers["Ce-Specversion"] == "1.0"
        assert headers["Ce-Modelid"] == "model"
        assert headers["Ce-Inferenceservicename"] == name
        assert headers["Ce-Namespace"] == "default"
        assert headers["Ce-Endpoint"] == "main"
        assert headers["Ce-Protocol"] == "seldon"
        assert headers["Content-Type"] == "application/json"
        assert headers["Ce-Id"] and headers["Ce-Time"] and headers["Ce-Source"]


def test_without_a_puid_the_events_carry_the_seldon_puid_the_client_got(logged: Logged) -> None:
    response = httpx.post(logged.mesh.gateway + _path("logged-model"), json=BODY)
    assert response.status_code == 200
    puid = response.headers["seldon-puid"]
    assert set(logged.wait_events(puid, 2)) == {REQUEST, RESPONSE}


def test_the_client_gets_the_same_answer_as_from_an_unlogged_twin(logged: Logged) -> None:
    gateway = logged.mesh.gateway
    headers = {"Seldon-Puid": "twin-" + secrets.token_hex(4)}  # the answer's meta.puid is the request's
    with_logger = httpx.post(gateway + _path("logged-model"), json=BODY, headers=headers)
    without = httpx.post(gateway + _path("plain-model"), json=BODY, headers=headers)
    assert with_logger.status_code == without.status_code == 200
    assert with_logger.json() == without.json()
    assert with_logger.headers["content-type"] == without.headers["content-type"]


@pytest.mark.parametrize("name", ["logged-model", "stream-model"])
def test_grpc_predictions_are_logged_in_json_form(logged: Logged, name: str) -> None:
    puid = "grpc-" + secrets.token_hex(4)
    with grpc.insecure_channel(f"127.0.0.1:{logged.mesh.port}") as channel:
        stub = prediction_pb2_grpc.SeldonStub(channel)
        request = json_format.ParseDict(BODY, prediction_pb2.SeldonMessage())
        metadata = (("seldon", name), ("namespace", "default"), ("seldon-puid", puid))
        reply = stub.Predict(request, metadata=metadata, timeout=30)
    events = logged.wait_events(puid, 2)
    assert json.loads(events[REQUEST].body) == BODY
    assert json.loads(events[RESPONSE].body)["data"] == json_format.MessageToDict(reply)["data"]


def test_seldon_skip_logging_and_unlogged_predictors_send_nothing(logged: Logged) -> None:
    skipped = "skip-" + secrets.token_hex(4)
    headers = {"Seldon-Puid": skipped, "Seldon-Skip-Logging": "true"}
    assert (
        httpx.post(logged.mesh.gateway + _path("logged-model"), json=BODY, headers=headers).status_code == 200
    )
    unlogged = "plain-" + secrets.token_hex(4)
    response = httpx.post(
        logged.mesh.gateway + _path("plain-model"), json=BODY, headers={"Seldon-Puid": unlogged}
    )
    assert response.status_code == 200
    after = "after-" + secrets.token_hex(4)
    httpx.post(logged.mesh.gateway + _path("logged-model"), json=BODY, headers={"Seldon-Puid": after})
    logged.wait_events(after, 2)  # a later request's events are in, so the earlier ones would be too
    assert logged.events(skipped) == [] and logged.events(unlogged) == []
