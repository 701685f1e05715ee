"""The client-made 5xx of issue 19, each through the real gateway of a real mesh: every one is now the
client's error (400 in the protocol's shape) or, for a negative reward, accepted and counted."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers.mesh import Mesh

GOOD = {"data": {"ndarray": [[1, 2, 3, 4]]}}
ROUTES = {"single": "/seldon/seldon/iris-model/api/v1.0/", "graph": "/seldon/seldon/pair/api/v1.0/"}


def _seldon_400(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    status = response.json()["status"]
    assert status["status"] == "FAILURE" and status["code"] == 400 and status["info"], status
    return dict(status)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_negative_reward_is_accepted_and_counted(mesh: Mesh, route: str) -> None:
    path = ROUTES[route]
    mesh.wait_serving(path + "predictions", GOOD)
    feedback = {"request": GOOD, "reward": -2.5}
    response = httpx.post(mesh.gateway + path + "feedback", json=feedback, timeout=30)
    assert response.status_code == 200, response.text
    deployment, node = ("iris-model", "classifier") if route == "single" else ("pair", "left")
    (metrics_url,) = [
        c["metrics"] for c in mesh.get(deployment)[0]["status"]["components"] if c["node"] == node
    ]
    text = httpx.get(metrics_url, timeout=10).text
    negative = [line for line in text.splitlines() if line.startswith("seldon_mesh_model_feedback_negative")]
    assert any(line.split()[-1] != "0.0" for line in negative), negative


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_newline_in_puid_is_400(mesh: Mesh, route: str) -> None:
    path = ROUTES[route]
    mesh.wait_serving(path + "predictions", GOOD)
    body = {"meta": {"puid": "abc\ndef"}, **GOOD}
    response = httpx.post(mesh.gateway + path + "predictions", json=body, timeout=30)
    if route == "single":  # the runtime takes the gateway's puid header over the body's: no header from it
        assert response.status_code == 200 and "\n" not in response.headers["seldon-puid"], response.text
    else:
        assert "puid" in _seldon_400(response)["info"]
    v2 = httpx.post(
        mesh.gateway + "/seldon/seldon/pair/v2/models/pair/infer",
        json={"id": "a\r\nb", "inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]},
        timeout=30,
    )
    assert v2.status_code == 400 and "id" in v2.json()["error"], v2.text
    assert httpx.post(mesh.gateway + path + "predictions", json=GOOD, timeout=30).status_code == 200


@pytest.mark.parametrize("depth", [254, 600, 1023])
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_deeply_nested_arrays_are_400(mesh: Mesh, route: str, depth: int) -> None:
    path = ROUTES[route]
    mesh.wait_serving(path + "predictions", GOOD)
    body = '{"data": {"ndarray": ' + "[" * depth + "1" + "]" * depth + "}}"
    response = httpx.post(
        mesh.gateway + path + "predictions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    _seldon_400(response)
    assert httpx.post(mesh.gateway + path + "predictions", json=GOOD, timeout=30).status_code == 200


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_routing_beyond_32_bits_is_400(mesh: Mesh, route: str) -> None:
    path = ROUTES[route]
    mesh.wait_serving(path + "predictions", GOOD)
    for number in ("123456789012345678901234567890", "18446744073709551615", "4294967296"):
        body = '{"meta": {"routing": {"x": ' + number + '}}, "data": {"ndarray": [[1, 2, 3, 4]]}}'
        response = httpx.post(
            mesh.gateway + path + "predictions",
            content=body,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        if route == "single" or response.status_code != 200:  # a graph may write meta.routing itself
            assert "routing" in _seldon_400(response)["info"]
