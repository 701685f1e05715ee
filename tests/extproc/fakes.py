"""A scripted `NodeClient` and graph builders for executor and frontend tests (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from extproc.codecs import Payload
from extproc.config import NodeConfig, PredictorConfig, Timeouts
from extproc.graph import NodeError

Json = dict[str, Any]
Behaviour = Callable[[str, list[Json]], Json]


def node(name: str, type_: str = "MODEL", *children: NodeConfig, **fields: Any) -> NodeConfig:
    return NodeConfig(name=name, type=type_, children=tuple(children), http=f"{name}:9000", **fields)


def predictor(graph: NodeConfig, **annotations: str) -> PredictorConfig:
    return PredictorConfig("default", "dep", "main", graph, annotations)


def scale(factor: float) -> Behaviour:
    def run(method: str, messages: list[Json]) -> Json:
        rows = messages[0]["data"]["ndarray"]
        return {"data": {"ndarray": [[v * factor for v in row] for row in rows]}}

    return run


@dataclass
class FakeNodes:
    """Each node answers with its behaviour (default: echo) and tags `{name: method}`."""

    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)
    failing: dict[str, NodeError] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    feedback_to: list[str] = field(default_factory=list)
    # When set, predict calls wait until this many are in flight at once (proof they run in parallel).
    together: int = 0
    _arrived: int = 0
    _all_in: asyncio.Event | None = None

    async def call(
        self, node: NodeConfig, method: str, payloads: Sequence[Payload], meta: Json, limits: Timeouts
    ) -> tuple[Payload, Json]:
        self.calls.append((node.name, method))
        if self.together and method == "predict":
            self._all_in = self._all_in or asyncio.Event()
            self._arrived += 1
            if self._arrived == self.together:
                self._all_in.set()
            await asyncio.wait_for(self._all_in.wait(), 10)
        if node.name in self.failing:
            raise self.failing[node.name]
        if method == "route":
            return Payload.seldon({"data": {"ndarray": [[self.routes[node.name]]]}}), {}
        messages = [p.as_seldon() for p in payloads]
        behaviour = self.behaviours.get(node.name, lambda m, msgs: msgs[0])
        answer = behaviour(method, messages)
        return Payload.seldon(answer), {"tags": {node.name: method}, "requestPath": {node.name: "img"}}

    async def feedback(self, node: NodeConfig, feedback: Json, limits: Timeouts) -> None:
        self.feedback_to.append(node.name)

    async def status(self, node: NodeConfig, limits: Timeouts) -> Json:
        if node.name in self.failing:
            raise self.failing[node.name]
        return {"status": {"code": 200, "info": f"{node.name} ready", "status": "SUCCESS"}}

    async def metadata(self, node: NodeConfig, limits: Timeouts) -> Json:
        return {
            "name": node.name,
            "inputs": [{"name": f"{node.name}-in"}],
            "outputs": [{"name": f"{node.name}-out"}],
        }
