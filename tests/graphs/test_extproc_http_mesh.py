"""`seldon-mesh up --graph-edge ext_proc-http`: the graph ext_proc filter over Envoy's `http_service`
transport. A REST graph POST is one JSON POST from Envoy to extproc's REST edge, answered with an
ImmediateResponse; GETs and canary splits go to the REST edge as with `--graph-edge http`. The same flows
as tests/graphs/test_ext_proc_edge_mesh.py, against a mesh started this way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.graphs import test_ext_proc_edge_mesh as edges
from tests.graphs.client import ndarray, predict
from tests.graphs.servers import JunkServer, MLServer
from tests.helpers.mesh import Mesh


@pytest.fixture(scope="module")
def http_service_mesh(
    tmp_path_factory: pytest.TempPathFactory, mlserver: MLServer, junk: JunkServer
) -> Iterator[Mesh]:
    yield from edges.start_edge_mesh(tmp_path_factory, mlserver, junk, "ext_proc-http")


FLOWS: list[Callable[[Mesh], Any]] = [
    *edges.SHARED,
    edges.test_canary_splits_a_graph_and_a_single_model_and_pins_each,
    edges.test_extproc_down_is_a_seldon_503_then_graphs_recover,
]


@pytest.mark.parametrize("flow", FLOWS, ids=[f.__name__.removeprefix("test_") for f in FLOWS])
def test_graph_flow_over_ext_proc_http(http_service_mesh: Mesh, flow: Callable[[Mesh], Any]) -> None:
    flow(http_service_mesh)


RESET_UPSTREAMS = "cluster.seldon-mesh.extproc-rest.upstream_cx_destroy_with_active_rq"


def _counters(mesh: Mesh) -> tuple[int, int]:
    """(requests the ext_proc filter answered, REST edge connections closed with a request on them)"""
    stats = edges.envoy_stats(mesh)
    answered = sum(v for k, v in stats.items() if k.endswith(".ext_proc.immediate_responses_sent"))
    return answered, stats.get(RESET_UPSTREAMS, 0)


def test_graph_posts_are_answered_by_the_ext_proc_filter(http_service_mesh: Mesh) -> None:
    answered, resets = _counters(http_service_mesh)
    for _ in range(3):
        response = predict(http_service_mesh, "chain", ndarray([[1, 2]]))
        assert response.status_code == 200, response.text
        assert response.headers["Seldon-Puid"] and response.headers["Seldon-Predictor"]
    # each answered by the filter, and the router never started (then reset) a request to the REST edge
    assert _counters(http_service_mesh) == (answered + 3, resets)
    # a GET has no body: it goes on to the REST edge and still gets the graph's metadata
    metadata = httpx.get(http_service_mesh.gateway + "/seldon/default/chain/api/v1.0/metadata", timeout=30)
    assert metadata.status_code == 200 and metadata.json()["name"], metadata.text
