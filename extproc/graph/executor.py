"""The graph executor: Seldon's graph semantics (reference 1.5) over an injected `NodeClient`.

Pure orchestration: no sockets, files or clocks of its own. Per node: the input call (`predict` for a
MODEL, `transform_input` for a TRANSFORMER or TRANSFORM_INPUT), then routing (a ROUTER's route, a
built-in router's pick, else -1), children (one, all in parallel for -1, none for -2), aggregation
(COMBINER/AGGREGATE, AVERAGE_COMBINER built in, else the first child's output), then the output call
(OUTPUT_TRANSFORMER/TRANSFORM_OUTPUT). Tags, requestPath and metrics from every node are merged into
the response meta, with `routing` unless the predictor turned routing injection off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from extproc.codecs import CodecError, Payload
from extproc.config import NodeConfig, PredictorConfig, Timeouts
from extproc.events import NO_REQUEST_EVENTS, NodeEvents, NoEvents, RequestEvents
from extproc.graph.builtins import SIMPLE_MODEL_OUTPUT, BuiltinRouter, average, make_router
from extproc.graph.errors import GraphError, NodeError
from extproc.graph.state import MemoryState, StateStore

Json = dict[str, Any]
_LOGS_REQUEST = frozenset({"all", "request"})
_LOGS_RESPONSE = frozenset({"all", "response"})
ROUTE_ALL = -1
ROUTE_NONE = -2
BUILTIN_READY: Json = {"status": {"code": 200, "info": "ready", "status": "SUCCESS"}}


class NodeClient(Protocol):
    """Calls one node in its own protocol and transport; raises `NodeError` naming it on any failure."""

    async def call(
        self, node: NodeConfig, method: str, payloads: Sequence[Payload], meta: Json, limits: Timeouts
    ) -> tuple[Payload, Json]:
        """`method` is predict, transform_input, transform_output, route or aggregate (several payloads).
        Returns the output and the meta the node answered with (empty for V2 nodes)."""
        ...

    async def feedback(self, node: NodeConfig, feedback: Json, limits: Timeouts) -> None: ...

    async def metadata(self, node: NodeConfig, limits: Timeouts) -> Json: ...

    async def status(self, node: NodeConfig, limits: Timeouts) -> Json:
        """The node's health status as a SeldonMessage; raises `NodeError` when it is not ready."""
        ...


@dataclass
class _Call:
    predictor: PredictorConfig
    puid: str
    tags: Json = field(default_factory=dict)
    routing: dict[str, int] = field(default_factory=dict)
    request_path: dict[str, str] = field(default_factory=dict)
    metrics: list[Any] = field(default_factory=list)
    events: RequestEvents = NO_REQUEST_EVENTS

    def node_meta(self) -> Json:
        meta: Json = {"puid": self.puid}
        if self.tags:
            meta["tags"] = dict(self.tags)
        return meta

    def merge(self, node: NodeConfig, meta: Json) -> None:
        if isinstance(meta.get("tags"), dict):
            self.tags.update(meta["tags"])
        if isinstance(meta.get("requestPath"), dict):
            self.request_path.update(meta["requestPath"])
        if isinstance(meta.get("metrics"), list):
            self.metrics.extend(meta["metrics"])
        fallback = "" if node.implementation == "UNKNOWN_IMPLEMENTATION" else node.implementation
        self.request_path.setdefault(node.name, node.image or fallback)


@dataclass(frozen=True)
class Result:
    payload: Payload
    meta: Json


class GraphExecutor:
    def __init__(
        self, client: NodeClient, state: StateStore | None = None, events: NodeEvents | None = None
    ) -> None:
        self._client = client
        self._state = state or MemoryState()
        self._events = events or NoEvents()
        self._routers: dict[tuple[Any, ...], BuiltinRouter] = {}

    @property
    def events(self) -> NodeEvents:
        """The payload-logging hook, shared with extproc's single-model (observability-mode) logging."""
        return self._events

    # -- predictions ---------------------------------------------------------------------------------
    async def predict(
        self,
        predictor: PredictorConfig,
        payload: Payload,
        puid: str,
        tags: Json | None = None,
        skip_logging: bool = False,
    ) -> Result:
        """`skip_logging`: the request asked not to be payload-logged (`Seldon-Skip-Logging`). Returns
        once the events of the nodes with a `logger` are in the payload log's spool."""
        events = self._events.open(predictor, puid) if predictor.logged and not skip_logging else None
        call = _Call(predictor, puid, dict(tags or {}), events=events or NO_REQUEST_EVENTS)
        try:
            output = await self._run(call, predictor.graph, payload)
        finally:
            if events is not None:  # a failed graph still has its request events spooled before the error
                await events.written()
        meta: Json = {"puid": puid, "tags": call.tags, "requestPath": call.request_path}
        if predictor.routing_injection:
            meta["routing"] = call.routing
        if call.metrics:
            meta["metrics"] = call.metrics
        return Result(output, meta)

    async def _run(self, call: _Call, node: NodeConfig, payload: Payload) -> Payload:
        """The node's whole piece of the graph; a node with a `logger` is logged around it, as Seldon's
        executor does: its input before its input transform, its output after its children, aggregation
        and output transform (built-in nodes included)."""
        mode = node.logger_mode
        if mode is not None and mode.lower() in _LOGS_REQUEST:
            call.events.request(node, payload)
        output = await self._subtree(call, node, payload)
        if mode is not None and mode.lower() in _LOGS_RESPONSE:
            call.events.response(node, output)
        return output

    async def _subtree(self, call: _Call, node: NodeConfig, payload: Payload) -> Payload:
        methods = node.methods
        if node.type == "MODEL":
            payload = await self._call(call, node, "predict", [payload])
        elif node.type == "TRANSFORMER" or "TRANSFORM_INPUT" in methods:
            payload = await self._call(call, node, "transform_input", [payload])
        output = payload
        if node.children:
            branch = await self._route(call, node, payload)
            call.routing[node.name] = branch
            if branch != ROUTE_NONE:
                targets = node.children if branch == ROUTE_ALL else (node.children[branch],)
                if len(targets) == 1:  # no task to create for a chain, the common case
                    outputs = [await self._run(call, targets[0], payload)]
                else:
                    outputs = await asyncio.gather(*(self._run(call, c, payload) for c in targets))
                if node.type == "COMBINER" or "AGGREGATE" in methods:
                    if node.implementation == "AVERAGE_COMBINER":
                        output = average(outputs)
                        call.request_path.setdefault(node.name, node.implementation)
                    else:
                        output = await self._call(call, node, "aggregate", outputs)
                else:
                    output = outputs[0]
        if node.type == "OUTPUT_TRANSFORMER" or "TRANSFORM_OUTPUT" in methods:
            output = await self._call(call, node, "transform_output", [output])
        return output

    async def _call(self, call: _Call, node: NodeConfig, method: str, payloads: Sequence[Payload]) -> Payload:
        if node.implementation == "SIMPLE_MODEL":
            call.request_path.setdefault(node.name, node.implementation)
            return Payload.seldon(SIMPLE_MODEL_OUTPUT, payloads[0].hint)
        output, meta = await self._client.call(
            node, method, payloads, call.node_meta(), call.predictor.timeouts
        )
        call.merge(node, meta)
        return output.with_hint(payloads[0].hint) if output.hint is None else output

    async def _route(self, call: _Call, node: NodeConfig, payload: Payload) -> int:
        if node.builtin and node.type == "ROUTER":
            branch = self._router(call.predictor, node).route()
            call.request_path.setdefault(node.name, node.implementation)
        elif node.type == "ROUTER" or "ROUTE" in node.methods:
            answer = await self._call(call, node, "route", [payload])
            branch = _route_number(node.name, answer)
        else:
            return ROUTE_ALL
        if branch not in (ROUTE_ALL, ROUTE_NONE) and not 0 <= branch < len(node.children):
            raise NodeError(
                node.name, 500, "ROUTER_ERROR", f"routed to child {branch}, but it has {len(node.children)}"
            )
        return branch

    def _router(self, predictor: PredictorConfig, node: NodeConfig) -> BuiltinRouter:
        params = tuple(sorted((k, str(v)) for k, v in node.parameters.items()))
        key = (predictor.key, node.name, node.implementation, params, len(node.children))
        router = self._routers.get(key)
        if router is None:
            state_key = f"{predictor.key}/{node.name}"
            router = make_router(
                state_key, node.implementation, node.parameters, len(node.children), self._state
            )
            self._routers[key] = router
        return router

    # -- feedback ------------------------------------------------------------------------------------
    async def feedback(
        self, predictor: PredictorConfig, feedback: Json, puid: str, skip_logging: bool = False
    ) -> Json:
        """Send feedback down the path in `response.meta.routing` (all children where it is absent)."""
        response = _object(feedback.get("response"))
        routing = _object(_object(response.get("meta")).get("routing"))
        try:
            reward = float(feedback.get("reward", 0.0))
        except (TypeError, ValueError):
            raise GraphError(400, "BAD_REQUEST", "feedback reward must be a number") from None
        events = self._events.open(predictor, puid) if predictor.logged and not skip_logging else None
        try:
            await self._feedback(
                predictor, predictor.graph, feedback, routing, reward, events or NO_REQUEST_EVENTS
            )
        finally:
            if events is not None:
                await events.written()
        return {"meta": {"puid": puid, "routing": routing}, "data": {"names": [], "ndarray": []}}

    async def _feedback(
        self,
        predictor: PredictorConfig,
        node: NodeConfig,
        feedback: Json,
        routing: Json,
        reward: float,
        events: RequestEvents,
    ) -> None:
        """Feedback down the path; every node on it whose logger mode is all or response logs a
        feedback event (Seldon's `io.seldon.serving.feedback`) with the feedback message."""
        mode = node.logger_mode
        if mode is not None and mode.lower() in _LOGS_RESPONSE:
            events.feedback(node, orjson.dumps(feedback, option=orjson.OPT_SERIALIZE_NUMPY))
        work = []
        branch = routing.get(node.name)
        if node.builtin:
            if node.type == "ROUTER" and isinstance(branch, int):
                self._router(predictor, node).learn(branch, reward)
        elif node.type in ("MODEL", "ROUTER") or "SEND_FEEDBACK" in node.methods:
            work.append(self._client.feedback(node, feedback, predictor.timeouts))
        if isinstance(branch, int) and 0 <= branch < len(node.children):
            children: Sequence[NodeConfig] = (node.children[branch],)
        elif branch == ROUTE_NONE:
            children = ()
        else:
            children = node.children
        work.extend(self._feedback(predictor, child, feedback, routing, reward, events) for child in children)
        await asyncio.gather(*work)

    # -- health --------------------------------------------------------------------------------------
    async def ready(self, predictor: PredictorConfig) -> Json:
        """Seldon's executor `/ready`: every node with a runtime answers its health check. Returns the
        root's answer (Seldon's health-status message); raises a 503 naming the first node not ready."""
        nodes = [n for n in predictor.graph.walk() if not n.builtin]
        found = await asyncio.gather(
            *(self._client.status(n, predictor.timeouts) for n in nodes), return_exceptions=True
        )
        for node, answer in zip(nodes, found, strict=True):
            if isinstance(answer, BaseException):
                raise _not_ready(node, answer)
        return next(
            (a for n, a in zip(nodes, found, strict=True) if n is predictor.graph and isinstance(a, dict)),
            BUILTIN_READY,
        )

    async def node_status(self, predictor: PredictorConfig, name: str) -> Json:
        """Seldon's `/api/v1.0/status/<name>`: that node's health status (a built-in node is ready)."""
        node = next((n for n in predictor.graph.walk() if n.name == name), None)
        if node is None:
            raise GraphError(404, "NOT_FOUND", f"no graph node named {name!r}")
        if node.builtin:
            return BUILTIN_READY
        try:
            return await self._client.status(node, predictor.timeouts)
        except Exception as error:
            raise _not_ready(node, error) from None

    # -- metadata ------------------------------------------------------------------------------------
    async def metadata(self, predictor: PredictorConfig) -> Json:
        """Seldon's graph metadata: every node's own metadata, and the graph's inputs and outputs."""
        nodes = [n for n in predictor.graph.walk() if not n.builtin]
        found = await asyncio.gather(
            *(self._client.metadata(n, predictor.timeouts) for n in nodes), return_exceptions=True
        )
        models = {n.name: m for n, m in zip(nodes, found, strict=True) if isinstance(m, dict)}
        inputs: Any = next(
            (models[n.name]["inputs"] for n in nodes if "inputs" in models.get(n.name, {})), []
        )
        outputs: Any = []
        node: NodeConfig | None = predictor.graph
        while node is not None:
            outputs = models.get(node.name, {}).get("outputs", outputs)
            node = node.children[0] if node.children and node.type != "OUTPUT_TRANSFORMER" else None
        root_outputs = models.get(predictor.graph.name, {}).get("outputs")
        if predictor.graph.type == "OUTPUT_TRANSFORMER" and root_outputs is not None:
            outputs = root_outputs
        return {"name": predictor.name, "models": models, "graphinputs": inputs, "graphoutputs": outputs}


def _not_ready(node: NodeConfig, error: BaseException) -> GraphError:
    if isinstance(error, GraphError):
        info = error.info if isinstance(error, NodeError) else f"node {node.name!r}: {error.info}"
        return GraphError(503, "NOT_READY", info)
    if isinstance(error, Exception):
        return GraphError(503, "NOT_READY", f"node {node.name!r}: {type(error).__name__}: {error}")
    raise error  # CancelledError and the like are not a node's health


def _object(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _route_number(node: str, answer: Payload) -> int:
    """The route in a router's answer: the first number of its ndarray, tensor, tftensor or bare list."""
    try:
        message = answer.as_seldon()
    except CodecError as error:
        raise NodeError(node, 502, "BAD_ROUTE", f"router answer has no route: {error}") from None
    data = message.get("data", {})
    value: Any = None
    if isinstance(data, dict):
        if "ndarray" in data:
            value = data["ndarray"]
        elif "tensor" in data:
            value = data["tensor"].get("values")
        elif "tftensor" in data:
            value = data["tftensor"].get("intVal") or data["tftensor"].get("int64Val")
    elif isinstance(message.get("jsonData"), list):
        value = message["jsonData"]
    while isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise NodeError(node, 502, "BAD_ROUTE", f"router answer has no route number: {message!r:.200}")
    try:
        return int(float(value))
    except ValueError:
        raise NodeError(node, 502, "BAD_ROUTE", f"router answered {value!r}, not a route number") from None
