"""Seldon's executor readiness over the graph (every node's health check) and one node's status."""

from __future__ import annotations

import asyncio

import pytest

from extproc.graph import GraphError, GraphExecutor, NodeError
from tests.extproc.fakes import FakeNodes, node, predictor


def test_ready_asks_every_node_and_answers_the_roots_status() -> None:
    graph = predictor(node("pre", "TRANSFORMER", node("a"), node("b")))
    answer = asyncio.run(GraphExecutor(FakeNodes()).ready(graph))
    assert answer["status"]["info"] == "pre ready"


def test_a_node_not_ready_makes_the_graph_503_naming_it() -> None:
    failing = {"b": NodeError("b", 500, "UNHEALTHY", "answered 500: the disk is full")}
    graph = predictor(node("pre", "TRANSFORMER", node("a"), node("b")))
    with pytest.raises(GraphError) as raised:
        asyncio.run(GraphExecutor(FakeNodes(failing=failing)).ready(graph))
    assert (raised.value.status, raised.value.reason) == (503, "NOT_READY")
    assert "'b'" in raised.value.info and "the disk is full" in raised.value.info


def test_node_status_by_name_and_unknown_names() -> None:
    graph = predictor(node("avg", "MODEL", node("a"), implementation="AVERAGE_COMBINER"))
    executor = GraphExecutor(FakeNodes())
    assert asyncio.run(executor.node_status(graph, "a"))["status"]["info"] == "a ready"
    assert asyncio.run(executor.node_status(graph, "avg"))["status"]["status"] == "SUCCESS"  # built in
    with pytest.raises(GraphError) as raised:
        asyncio.run(executor.node_status(graph, "nobody"))
    assert raised.value.status == 404
