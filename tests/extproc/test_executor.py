"""Graph semantics (reference 1.5) of the executor over a scripted node client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from extproc.codecs import Payload
from extproc.config import NodeConfig, PredictorConfig
from extproc.graph import GraphExecutor, MemoryState, NodeError
from tests.extproc.fakes import FakeNodes, node, predictor, scale

INPUT = {"data": {"ndarray": [[1.0, 2.0]]}}


def run(
    nodes: FakeNodes, graph: NodeConfig | PredictorConfig, message: dict[str, Any] = INPUT
) -> tuple[dict[str, Any], dict[str, Any]]:
    target = graph if isinstance(graph, PredictorConfig) else predictor(graph)
    result = asyncio.run(GraphExecutor(nodes).predict(target, Payload.seldon(message), "puid-1"))
    return result.payload.as_seldon(), result.meta


def test_transformer_then_model_calls_each_once_in_order() -> None:
    nodes = FakeNodes(behaviours={"pre": scale(10), "model": scale(2)})
    output, meta = run(nodes, node("pre", "TRANSFORMER", node("model")))
    assert output == {"data": {"ndarray": [[20.0, 40.0]]}}
    assert nodes.calls == [("pre", "transform_input"), ("model", "predict")]
    assert meta["tags"] == {"pre": "transform_input", "model": "predict"}
    assert meta["routing"] == {"pre": -1}
    assert meta["requestPath"] == {"pre": "img", "model": "img"}
    assert meta["puid"] == "puid-1"


def test_output_transformer_runs_after_its_children() -> None:
    nodes = FakeNodes(behaviours={"post": scale(10), "model": scale(2)})
    output, _ = run(nodes, node("post", "OUTPUT_TRANSFORMER", node("model")))
    assert nodes.calls == [("model", "predict"), ("post", "transform_output")]
    assert output["data"]["ndarray"] == [[20.0, 40.0]]


def test_combiner_aggregates_all_children_in_order() -> None:
    def total(method: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        assert method == "aggregate"
        return {"data": {"ndarray": [[sum(m["data"]["ndarray"][0][0] for m in messages)]]}}

    nodes = FakeNodes(behaviours={"a": scale(2), "b": scale(3), "sum": total})
    output, meta = run(nodes, node("sum", "COMBINER", node("a"), node("b")))
    assert output["data"]["ndarray"] == [[5.0]]
    assert meta["routing"] == {"sum": -1}


def test_children_run_in_parallel() -> None:
    # each child call waits until all five are in flight: one after the other would time out
    nodes = FakeNodes(together=5)
    output, _ = run(
        nodes, node("sum", "COMBINER", *(node(f"m{i}") for i in range(5)), implementation="AVERAGE_COMBINER")
    )
    assert output["data"]["ndarray"] == [[1.0, 2.0]]


@pytest.mark.parametrize(("route", "called"), [(0, ["a"]), (1, ["b"]), (-1, ["a", "b"]), (-2, [])])
def test_router_routes(route: int, called: list[str]) -> None:
    nodes = FakeNodes(routes={"r": route}, behaviours={"a": scale(2), "b": scale(3)})
    output, meta = run(nodes, node("r", "ROUTER", node("a"), node("b")))
    assert [n for n, m in nodes.calls if m == "predict"] == called
    assert meta["routing"] == {"r": route}
    if route == -2:
        assert output == INPUT  # the request itself
    elif route == 1:
        assert output["data"]["ndarray"] == [[3.0, 6.0]]


def test_route_out_of_range_names_the_router() -> None:
    nodes = FakeNodes(routes={"r": 5})
    with pytest.raises(NodeError) as raised:
        run(nodes, node("r", "ROUTER", node("a"), node("b")))
    assert raised.value.node == "r" and "child 5" in raised.value.info


def test_methods_on_unknown_type_pick_the_calls() -> None:
    nodes = FakeNodes(routes={"u": 0})
    unit = node("u", "UNKNOWN_TYPE", node("a"), methods=("TRANSFORM_INPUT", "ROUTE", "TRANSFORM_OUTPUT"))
    run(nodes, unit)
    assert nodes.calls == [
        ("u", "transform_input"),
        ("u", "route"),
        ("a", "predict"),
        ("u", "transform_output"),
    ]


def test_node_error_propagates_with_the_node_name() -> None:
    nodes = FakeNodes(failing={"model": NodeError("model", 500, "BOOM", "it broke")})
    with pytest.raises(NodeError) as raised:
        run(nodes, node("pre", "TRANSFORMER", node("model")))
    assert raised.value.seldon_json()["status"]["info"] == "node 'model': it broke"


def test_routing_injection_can_be_turned_off() -> None:
    graph = predictor(node("pre", "TRANSFORMER", node("model")), **{"seldon.io/routing-injection": "false"})
    _, meta = run(FakeNodes(), graph)
    assert "routing" not in meta


def test_client_tags_are_kept_and_merged() -> None:
    result = asyncio.run(
        GraphExecutor(FakeNodes()).predict(
            predictor(node("model")), Payload.seldon(INPUT), "p", {"client": 1}
        )
    )
    assert result.meta["tags"] == {"client": 1, "model": "predict"}


def test_builtins_need_no_calls_and_average_really_averages() -> None:
    nodes = FakeNodes(behaviours={"a": scale(2), "b": scale(4)})
    graph = node("avg", "COMBINER", node("a"), node("b"), implementation="AVERAGE_COMBINER")
    output, meta = run(nodes, graph)
    assert output["data"]["ndarray"] == [[3.0, 6.0]]
    assert ("avg", "aggregate") not in nodes.calls
    assert meta["requestPath"]["avg"] == "AVERAGE_COMBINER"
    stub = node("s", "MODEL", implementation="SIMPLE_MODEL")
    assert run(FakeNodes(), stub)[0]["data"]["ndarray"] == [[0.9, 0.1]]


def test_feedback_follows_the_recorded_route() -> None:
    nodes = FakeNodes()
    graph = predictor(node("r", "ROUTER", node("a"), node("b", "TRANSFORMER", node("c"))))
    feedback = {"response": {"meta": {"routing": {"r": 1, "b": -1}}}, "reward": 1}
    asyncio.run(GraphExecutor(nodes).feedback(graph, feedback, "p"))
    assert sorted(nodes.feedback_to) == ["c", "r"]  # routers and models on the path; not a, not b
    nodes.feedback_to.clear()
    asyncio.run(GraphExecutor(nodes).feedback(graph, {"reward": 0}, "p"))
    assert sorted(nodes.feedback_to) == ["a", "c", "r"]  # no routing: every child


def test_builtin_bandit_learns_from_feedback() -> None:
    state = MemoryState()
    graph = predictor(
        node(
            "eg",
            "ROUTER",
            node("l", implementation="SIMPLE_MODEL"),
            node("r", implementation="SIMPLE_MODEL"),
            implementation="EPSILON_GREEDY",
            parameters={"n_branches": 2, "epsilon": 0.0},
        )
    )
    executor = GraphExecutor(FakeNodes(), state)
    for branch, reward in ((0, 0.0), (1, 1.0)):
        asyncio.run(
            executor.feedback(
                graph, {"response": {"meta": {"routing": {"eg": branch}}}, "reward": reward}, "p"
            )
        )
    routes = {
        asyncio.run(executor.predict(graph, Payload.seldon(INPUT), "p")).meta["routing"]["eg"]
        for _ in range(20)
    }
    assert routes == {1}
    # a new executor (an extproc restart) over the same state routes the same way
    again = GraphExecutor(FakeNodes(), state)
    assert asyncio.run(again.predict(graph, Payload.seldon(INPUT), "p")).meta["routing"]["eg"] == 1


def test_metadata_names_every_node_and_the_graph_ends() -> None:
    graph = predictor(node("pre", "TRANSFORMER", node("model")))
    metadata = asyncio.run(GraphExecutor(FakeNodes()).metadata(graph))
    assert metadata["name"] == "main"
    assert set(metadata["models"]) == {"pre", "model"}
    assert metadata["graphinputs"] == [{"name": "pre-in"}]
    assert metadata["graphoutputs"] == [{"name": "model-out"}]


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.written: list[str] = []

    def open(self, predictor: PredictorConfig, puid: str) -> _RequestRecorder:
        return _RequestRecorder(self, puid)

    def request_bytes(
        self, predictor: PredictorConfig, node: NodeConfig, puid: str, body: bytes, protocol: str
    ) -> None:
        self.seen.append(("request", node.name, puid))

    def response_bytes(
        self, predictor: PredictorConfig, node: NodeConfig, puid: str, body: bytes, protocol: str
    ) -> None:
        self.seen.append(("response", node.name, puid))


class _RequestRecorder:
    def __init__(self, recorder: _Recorder, puid: str) -> None:
        self._recorder, self._puid = recorder, puid

    def request(self, node: NodeConfig, payload: Payload) -> None:
        self._recorder.seen.append(("request", node.name, self._puid))

    def response(self, node: NodeConfig, payload: Payload) -> None:
        self._recorder.seen.append(("response", node.name, self._puid))

    def feedback(self, node: NodeConfig, body: bytes) -> None:
        self._recorder.seen.append(("feedback", node.name, self._puid))

    async def written(self) -> None:
        self._recorder.written.append(self._puid)


def test_payload_events_for_logged_nodes_unless_the_request_opts_out() -> None:
    graph = predictor(node("pre", "TRANSFORMER", node("model", logger_mode="response"), logger_mode="all"))
    events = _Recorder()
    executor = GraphExecutor(FakeNodes(), events=events)
    asyncio.run(executor.predict(graph, Payload.seldon(INPUT), "p1"))
    # Seldon's semantics: a node is logged around its whole subtree (its input, then its final output)
    assert events.seen == [("request", "pre", "p1"), ("response", "model", "p1"), ("response", "pre", "p1")]
    assert events.written == ["p1"]  # the answer waited for its events
    asyncio.run(executor.predict(graph, Payload.seldon(INPUT), "p2", skip_logging=True))
    assert all(puid == "p1" for _, _, puid in events.seen)
