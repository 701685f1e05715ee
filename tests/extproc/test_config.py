"""The graph config contract: parsing, per-predictor settings and the watcher's atomic reloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extproc.config import ConfigError, ConfigWatcher, parse_config, write_config
from extproc.graph import GraphError, GraphExecutor
from extproc.metrics import PredictorLabels
from extproc.server import Frontend
from extproc.server.observe import predictor_labels
from tests.extproc.fakes import FakeNodes


def document(generation: str = "g1", ratio: float = 0.5) -> dict[str, Any]:
    graph = {
        "name": "ab",
        "type": "ROUTER",
        "implementation": "RANDOM_ABTEST",
        "parameters": {"ratioA": ratio},
        "children": [
            {"name": "a", "type": "MODEL", "protocol": "v2", "transport": "grpc", "grpc": "127.0.0.1:9500"},
            {"name": "b", "type": "MODEL", "http": "127.0.0.1:9000", "logger": {"mode": "all"}},
        ],
    }
    return {
        "schema": 1,
        "generation": generation,
        "deployments": [
            {
                "namespace": "ns",
                "name": "dep",
                "annotations": {"seldon.io/rest-timeout": "250", "seldon.io/grpc-max-message-size": "1000"},
                "predictors": [
                    {"name": "main", "annotations": {"seldon.io/routing-injection": "false"}, "graph": graph}
                ],
            }
        ],
    }


def test_parse_reads_nodes_protocols_and_annotations() -> None:
    config = parse_config(document())
    deployment = config.deployment("ns", "dep")
    assert deployment is not None
    main = deployment.predictor(None)
    assert main is not None and main is deployment.predictor("main")
    assert deployment.predictor("other") is None
    assert main.graph.builtin and [c.name for c in main.graph.children] == ["a", "b"]
    a, b = main.graph.children
    assert (a.protocol, a.transport, a.grpc) == ("v2", "grpc", "127.0.0.1:9500")
    assert (b.protocol, b.transport, b.logger_mode) == ("seldon", "rest", "all")
    assert main.timeouts.rest_s == 0.25 and main.timeouts.max_message_bytes == 1000
    assert not main.routing_injection


@pytest.mark.parametrize(
    "bad", [{}, {"schema": 2}, {"schema": 1, "deployments": [{"predictors": [{"graph": {}}]}]}]
)
def test_parse_rejects_what_is_not_schema_1(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        parse_config(bad)


def test_watcher_takes_new_files_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "graphs.json"
    watcher = ConfigWatcher(path)
    assert not watcher.poll() and watcher.current.generation == ""  # no file yet
    write_config(path, document("g1"))
    assert watcher.poll() and watcher.current.generation == "g1"
    assert not watcher.poll()  # unchanged
    path.write_text("{ not json")
    assert not watcher.poll() and watcher.current.generation == "g1"
    write_config(path, document("g2", ratio=0.9))
    assert watcher.poll() and watcher.current.generation == "g2"
    deployment = watcher.current.deployment("ns", "dep")
    assert deployment is not None and deployment.predictors[0].graph.parameters["ratioA"] == 0.9
    assert [p.name for p in tmp_path.iterdir()] == ["graphs.json"]  # no temp files left behind


def test_a_miss_rereads_the_config_before_answering_503(tmp_path: Path) -> None:
    path = tmp_path / "graphs.json"
    watcher = ConfigWatcher(path, interval_s=3600)  # the periodic reload will not run in this test
    frontend = Frontend(lambda: watcher.current, GraphExecutor(FakeNodes()), watcher.poll)
    with pytest.raises(GraphError) as raised:
        frontend.predictor("ns", "dep", "main")
    assert raised.value.status == 503
    write_config(path, document())
    assert frontend.predictor("ns", "dep", "main").name == "main"


def test_predictor_version_label_is_the_predictors_version_annotation() -> None:
    raw = document()
    deployment = raw["deployments"][0]
    deployment["annotations"]["version"] = "deployment-wide"  # not a predictor's version
    second = {**deployment["predictors"][0], "name": "canary", "annotations": {"version": "v2"}}
    deployment["predictors"].append(second)
    parsed = parse_config(raw).deployment("ns", "dep")
    assert parsed is not None
    main, canary = parsed.predictor("main"), parsed.predictor("canary")
    assert main is not None and canary is not None
    assert predictor_labels(main) == PredictorLabels("dep", "main", "")
    assert predictor_labels(canary) == PredictorLabels("dep", "canary", "v2")
