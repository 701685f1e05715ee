"""Seldon's payload-logging semantics through a real mesh: a node with a `logger` is logged around its
whole piece of the graph (its input before its input transform, its output after children, aggregation
and output transform), built-in nodes included, so a root logger gives exactly one request event (the
client's input) and one response event (the client's final output) per prediction; a single model is
logged the same way by its runtime; feedback gives one feedback event."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import pytest

from tests.observability.sink import Received
from tests.payload_log.conftest import BODY, FEEDBACK, REQUEST, RESPONSE, LoggedMesh


def _by_type(events: list[Received]) -> dict[str, list[Received]]:
    found: dict[str, list[Received]] = {}
    for event in events:
        found.setdefault(event.headers["Ce-Type"], []).append(event)
    return found


def _data(event: Received) -> Any:
    return json.loads(event.body)["data"]


def _one_prediction(logged: LoggedMesh, name: str) -> tuple[httpx.Response, dict[str, list[Received]]]:
    puid = f"{name}-{secrets.token_hex(4)}"
    response = logged.post(name, puid)
    assert response.status_code == 200, response.text
    logged.wait_events(puid, 2)
    # its events were spooled before its answer, the later request's after it: once those are delivered,
    # delivery (which sends what is spooled promptly, whatever the lane) has had every event of this one
    after = f"{name}-after-{secrets.token_hex(4)}"
    assert logged.post(name, after).status_code == 200
    logged.wait_events(after, 2)
    return response, _by_type(logged.events(puid))


@pytest.mark.parametrize("name", ["mean", "ab", "chain", "single"])
def test_a_root_logger_gives_one_request_and_one_response_event_per_prediction(
    logged_mesh: LoggedMesh, name: str
) -> None:
    response, events = _one_prediction(logged_mesh, name)
    assert sorted(events) == [REQUEST, RESPONSE]
    (request,), (answer,) = events[REQUEST], events[RESPONSE]
    assert json.loads(request.body)["data"] == BODY["data"]  # the client's input, before any transform
    assert _data(answer) == response.json()["data"]  # the client's final output
    root = {"mean": "average", "ab": "split", "chain": "pre", "single": "model"}[name]
    for event in (request, answer):
        headers = event.headers
        assert headers["Ce-Modelid"] == root
        assert headers["Ce-Inferenceservicename"] == name
        assert headers["Ce-Namespace"] == "default"
        assert headers["Ce-Endpoint"] == "main"
        assert headers["Ce-Protocol"] == "seldon"
        assert headers["Ce-Specversion"] == "1.0"
        assert headers["Content-Type"] == "application/json"
        assert headers["Ce-Id"] and headers["Ce-Time"] and headers["Ce-Source"]
    assert request.headers["Ce-Id"] != answer.headers["Ce-Id"]


def test_the_average_is_logged_as_the_combiners_output(logged_mesh: LoggedMesh) -> None:
    _, events = _one_prediction(logged_mesh, "mean")
    assert _data(events[RESPONSE][0])["ndarray"] == [[3.0, 6.0]]  # mean of x*2 and x*4


def test_an_inner_logger_logs_its_nodes_input_and_subtree_output(logged_mesh: LoggedMesh) -> None:
    puid = "inner-" + secrets.token_hex(4)
    response = logged_mesh.post("chain", puid)
    assert response.status_code == 200
    inner = _by_type(logged_mesh.wait_events(puid, 2, logged_mesh.inner))
    assert sorted(inner) == [REQUEST, RESPONSE]
    assert all(e.headers["Ce-Modelid"] == "model" for group in inner.values() for e in group)
    assert _data(inner[REQUEST][0])["ndarray"] == [[2.0, 3.0]]  # what `pre` made of the input (x + 1)
    assert _data(inner[RESPONSE][0])["ndarray"] == [[20.0, 30.0]] == response.json()["data"]["ndarray"]


def test_the_single_models_response_event_is_the_bytes_the_client_got(logged_mesh: LoggedMesh) -> None:
    response, events = _one_prediction(logged_mesh, "single")
    assert events[RESPONSE][0].body == response.content


@pytest.mark.parametrize("name", ["ab", "single"])
def test_feedback_gives_one_feedback_event(logged_mesh: LoggedMesh, name: str) -> None:
    prediction = logged_mesh.post(name, "for-feedback-" + secrets.token_hex(4))
    assert prediction.status_code == 200
    puid = f"feedback-{name}-{secrets.token_hex(4)}"
    feedback = {"request": BODY, "response": prediction.json(), "reward": 1.0}
    answer = httpx.post(
        f"{logged_mesh.mesh.gateway}/seldon/default/{name}/api/v1.0/feedback",
        json=feedback,
        headers={"Seldon-Puid": puid},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    (event,) = logged_mesh.wait_events(puid, 1)
    assert event.headers["Ce-Type"] == FEEDBACK
    assert json.loads(event.body)["reward"] == 1.0
    after = f"feedback-after-{secrets.token_hex(4)}"
    assert logged_mesh.post(name, after).status_code == 200
    logged_mesh.wait_events(after, 2)
    assert len(logged_mesh.events(puid)) == 1


@pytest.mark.parametrize("name", ["chain", "single"])
def test_seldon_skip_logging_sends_nothing(logged_mesh: LoggedMesh, name: str) -> None:
    skipped = "skip-" + secrets.token_hex(4)
    response = httpx.post(
        logged_mesh.mesh.gateway + f"/seldon/default/{name}/api/v1.0/predictions",
        json=BODY,
        headers={"Seldon-Puid": skipped, "Seldon-Skip-Logging": "true"},
        timeout=30,
    )
    assert response.status_code == 200
    _one_prediction(logged_mesh, name)
    assert logged_mesh.events(skipped) == [] and logged_mesh.events(skipped, logged_mesh.inner) == []
