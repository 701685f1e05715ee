"""`seldon-mesh up --graph-edge ext_proc`: REST graph requests reach extproc over an ext_proc stream that
their route enables, instead of as an HTTP/1.1 upstream (its REST edge, the default edge that the rest of
tests/graphs runs against). A representative subset of the graph flows, run against a mesh started that
way: a chain, a combiner, a V2 client, feedback, translation for a V2 single model, a canary split of a
graph and a single model (and pinning each), node errors and timeouts naming the node, bodies over the
limit, extproc down and back. `start_edge_mesh` and the flows serve tests/graphs/test_extproc_http_mesh.py
too."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.graphs import test_bad_input as bad_input
from tests.graphs import test_example_graphs as examples
from tests.graphs.client import assert_seldon_error, grpc_predict, ndarray, predict
from tests.graphs.conftest import EXTRA, GRAPHS, IRIS_V2
from tests.graphs.servers import JunkServer, MLServer
from tests.graphs.test_extproc_outage import _kill_extproc
from tests.helpers.mesh import Mesh, free_port, wait_for

CANARY = f"""
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: canary
spec:
  predictors:
    - name: graph
      traffic: 50
      graph: {{name: stub, implementation: SIMPLE_MODEL}}
    - name: direct
      traffic: 50
      componentSpecs:
        - spec:
            containers:
              - {{name: model, workingDir: {GRAPHS}, env: [{{name: MODEL_NAME, value: Affine}}]}}
      graph:
        name: model
        type: MODEL
        parameters: [{{name: scale, value: "2", type: FLOAT}}]
"""
KEPT = {"chain", "grpc-chain", "combiner", "single", "faulty", "iris-v2", "canary"}


@pytest.fixture(scope="module")
def edge_mesh(
    tmp_path_factory: pytest.TempPathFactory, mlserver: MLServer, junk: JunkServer
) -> Iterator[Mesh]:
    yield from start_edge_mesh(tmp_path_factory, mlserver, junk, "ext_proc")


def start_edge_mesh(
    tmp_path_factory: pytest.TempPathFactory, mlserver: MLServer, junk: JunkServer, edge: str
) -> Iterator[Mesh]:
    """A mesh started with `--graph-edge <edge>` serving the `KEPT` deployments."""
    folder = tmp_path_factory.mktemp(f"{edge}-edge")
    extra = EXTRA.format(
        graphs=GRAPHS, mlserver_http=mlserver.http_port, mlserver_grpc=mlserver.grpc_port, junk=junk.port
    )
    documents = [
        *yaml.safe_load_all((GRAPHS / "graphs.yaml").read_text()),
        *yaml.safe_load_all(extra),
        *yaml.safe_load_all(IRIS_V2.format(http=mlserver.http_port, grpc=mlserver.grpc_port)),
        yaml.safe_load(CANARY),
    ]
    manifest = folder / "deployments.yaml"
    kept = [d for d in documents if d and d["metadata"]["name"] in KEPT]
    for document in kept:  # the user classes live next to graphs.yaml, not next to this manifest
        for predictor in document["spec"]["predictors"]:
            for component in predictor.get("componentSpecs", []):
                for container in component["spec"]["containers"]:
                    container.setdefault("workingDir", str(GRAPHS))
    manifest.write_text(yaml.safe_dump_all(kept))
    running = Mesh(folder / "state", free_port()).start(manifest, extra=["--graph-edge", edge])
    try:
        mlserver.wait_ready()
        for name in sorted(KEPT):
            running.wait_state(name, "Available", timeout=120)
        yield running
    finally:
        running.stop()


SHARED: list[Callable[[Mesh], Any]] = [
    examples.test_input_transformer_then_model,
    examples.test_client_puid_and_tags_are_kept,
    examples.test_output_transformer_transformer_model_over_grpc,
    examples.test_combiner_over_two_models,
    examples.test_v2_client_to_seldon_graph_keeps_its_datatype,
    examples.test_feedback_reaches_the_models_on_the_path,
    examples.test_seldon_clients_reach_a_single_v2_server_through_translation,
    examples.test_large_messages_up_to_the_max_message_size_annotation,
    bad_input.test_node_error_names_the_node_and_the_next_request_succeeds,
    bad_input.test_node_timeout_is_504_naming_the_node,
    bad_input.test_bad_requests_get_the_client_protocols_error,
]


@pytest.mark.parametrize("flow", SHARED, ids=[f.__name__.removeprefix("test_") for f in SHARED])
def test_graph_flow_over_ext_proc_streams(edge_mesh: Mesh, flow: Callable[[Mesh], Any]) -> None:
    flow(edge_mesh)


def _graph_streams(mesh: Mesh) -> int:
    """ext_proc streams the graph filter has opened (the observe filter's stats are apart)."""
    stats = envoy_stats(mesh)
    return sum(v for k, v in stats.items() if k.endswith(".ext_proc.streams_started"))


def test_graph_routes_open_ext_proc_streams(edge_mesh: Mesh) -> None:
    before = _graph_streams(edge_mesh)
    assert predict(edge_mesh, "chain", ndarray([[1, 2]])).status_code == 200
    assert _graph_streams(edge_mesh) == before + 1
    assert not any(k.startswith("cluster.seldon-mesh.extproc-rest.") for k in envoy_stats(edge_mesh))


def test_by_default_graph_routes_open_no_ext_proc_streams(mesh: Mesh) -> None:
    assert predict(mesh, "chain", ndarray([[1, 2]])).status_code == 200
    stats = envoy_stats(mesh)
    assert stats["cluster.seldon-mesh.extproc-rest.upstream_rq_completed"] > 0
    graph_streams = [v for k, v in stats.items() if k.endswith(".ext_proc.streams_started")]
    assert graph_streams and not any(graph_streams)  # the graph filter never opened a stream


def test_canary_splits_a_graph_and_a_single_model_and_pins_each(edge_mesh: Mesh) -> None:
    seen: dict[str, Any] = {}
    for _ in range(60):
        response = predict(edge_mesh, "canary", ndarray([[1.0]]))
        assert response.status_code == 200, response.text
        seen[response.headers["Seldon-Predictor"]] = response.json()["data"]
        if len(seen) == 2:
            break
    assert seen.keys() == {"graph", "direct"}
    assert seen["graph"]["ndarray"] == [[0.9, 0.1]] and seen["direct"]["ndarray"] == [[2.0]]
    for pinned, expected in (("graph", [[0.9, 0.1]]), ("direct", [[2.0]])):
        response = httpx.post(
            edge_mesh.gateway + "/seldon/default/canary/api/v1.0/predictions",
            json=ndarray([[1.0]]),
            headers={"Seldon-Predictor": pinned},
            timeout=30,
        )
        assert response.status_code == 200 and response.headers["Seldon-Predictor"] == pinned
        assert response.json()["data"]["ndarray"] == expected


def test_extproc_down_is_a_seldon_503_then_graphs_recover(edge_mesh: Mesh) -> None:
    assert predict(edge_mesh, "chain", ndarray([[1, 2]])).status_code == 200
    _kill_extproc(edge_mesh)
    try:
        error = assert_seldon_error(predict(edge_mesh, "chain", ndarray([[1, 2]]), timeout=5), 503)
        assert error["reason"] == "UNAVAILABLE" and error["info"]
        single = predict(edge_mesh, "single", ndarray([[1.0]]))
        assert single.status_code == 200 and single.json()["data"]["ndarray"] == [[2.0]]
    finally:
        wait_for(
            lambda: predict(edge_mesh, "chain", ndarray([[1, 2]])).status_code == 200, 30, "graphs to recover"
        )
    assert predict(edge_mesh, "combiner", ndarray([[1.0, 2.0]])).json()["data"]["ndarray"] == [[5.0, 10.0]]
    reply, _ = grpc_predict(edge_mesh, "grpc-chain", ndarray([[1.0]]))
    assert reply["data"]["ndarray"] == [[40.0]]


def envoy_stats(mesh: Mesh) -> dict[str, int]:
    """Envoy's counters, from the admin URL `seldon-mesh metrics` lists."""
    listed = mesh.cli("metrics", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    [url] = [e["url"] for e in json.loads(listed.stdout) if e["component"] == "envoy"]
    text = httpx.get(url.removesuffix("/prometheus"), timeout=10).text
    stats = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            stats[name] = int(value)
    return stats
