"""Nodes that fail, hang or answer garbage give a Seldon error naming the node with a fitting status,
and the next request succeeds; graphs that cannot run are rejected at apply time."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.graphs.client import assert_seldon_error, ndarray, predict
from tests.helpers.mesh import Mesh, wait_for


def test_node_error_names_the_node_and_the_next_request_succeeds(mesh: Mesh) -> None:
    error = assert_seldon_error(predict(mesh, "faulty", ndarray([[-1.0]])), 500, node="failing")
    assert "negative" in error["info"]
    assert predict(mesh, "faulty", ndarray([[0.0]])).json()["data"]["ndarray"] == [[0.0]]


def test_node_timeout_is_504_naming_the_node(mesh: Mesh) -> None:
    # sleepy sleeps 3 s; the deployment's seldon.io/rest-timeout is 1000 ms per node call.
    error = assert_seldon_error(predict(mesh, "faulty", ndarray([[3.0]])), 504, node="sleepy")
    assert "1000 ms" in error["info"]
    wait_for(lambda: predict(mesh, "faulty", ndarray([[0.0]])).status_code == 200, 30, "faulty to answer")


def test_garbage_answer_is_502_naming_the_node(mesh: Mesh) -> None:
    error = assert_seldon_error(predict(mesh, "junky", ndarray([[1.0]])), 502, node="junk")
    assert "invalid JSON" in error["info"]
    assert predict(mesh, "chain", ndarray([[1, 2]])).status_code == 200


def test_bad_requests_get_the_client_protocols_error(mesh: Mesh) -> None:
    response = httpx.post(
        mesh.gateway + "/seldon/default/chain/api/v1.0/predictions",
        content=b'{"data": {"ndarray": [[1, 2',
        headers={"content-type": "application/json"},
    )
    assert_seldon_error(response, 400)
    v2 = httpx.post(mesh.gateway + "/seldon/default/chain/v2/models/chain/infer", json={"inputs": []})
    assert v2.status_code == 400 and "inputs" in v2.json()["error"]
    ragged = predict(mesh, "chain", ndarray([[1, 2], [3]]))
    assert ragged.status_code in (400, 500) and "node 'pre'" in ragged.json()["status"]["info"]


INVALID = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: broken-graph}
spec:
  predictors:
    - name: main
      graph:
        name: root
        type: ROUTER
        implementation: RANDOM_ABTEST
        children:
          - name: twice
            implementation: NO_SUCH_SERVER
          - name: twice
            implementation: SIMPLE_MODEL
            children:
              - {name: lonely, type: COMBINER, implementation: AVERAGE_COMBINER}
              - {name: stray, implementation: SIMPLE_ROUTER}
"""


def test_invalid_graph_is_rejected_at_apply_naming_every_problem(mesh: Mesh, tmp_path: Path) -> None:
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(INVALID)
    result = mesh.cli("apply", "-f", str(manifest))
    assert result.returncode != 0
    problems = result.stderr + result.stdout
    assert "unknown implementation 'NO_SUCH_SERVER'" in problems
    assert "duplicate graph node name 'twice'" in problems  # the only way a tree spec can loop
    assert "a combiner needs children" in problems
    assert "a router needs children" in problems
    assert all(d["metadata"]["name"] != "broken-graph" for d in mesh.get())
