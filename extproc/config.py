"""The graph config extproc serves: deployments, their predictors' graphs and where each node listens.

It is a versioned JSON document (schema `SCHEMA`) written atomically (temp file + rename) by whoever runs
the nodes: the local supervisor (`mesh/local`) or, on Kubernetes, the operator through a ConfigMap.
extproc never imports the spec package; this file is the contract. Shape:

    {"schema": 1, "generation": "<opaque>", "deployments": [
      {"namespace": "default", "name": "iris", "annotations": {...},
       "predictors": [{"name": "main", "annotations": {...}, "graph": NODE}]}]}
    NODE = {"name", "type", "implementation", "methods": [...], "parameters": {name: typed value},
            "protocol": "seldon"|"v2", "transport": "rest"|"grpc",
            "http": "host:port"|null, "grpc": "host:port"|null, "image": "...",
            "logger": {"mode", "url"?}|null, "children": [NODE...]}

`ConfigWatcher` polls the file's identity (inode, size, mtime) and swaps in a fully parsed `GraphConfig`;
a file that does not parse is logged and the previous config keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

log = logging.getLogger(__name__)

SCHEMA = 1
ROUTING_INJECTION = "seldon.io/routing-injection"
REST_TIMEOUT = "seldon.io/rest-timeout"
GRPC_TIMEOUT = "seldon.io/grpc-timeout"
GRPC_MAX_MESSAGE_SIZE = "seldon.io/grpc-max-message-size"
# A predictor's `annotations["version"]` is Seldon's `predictor_version` metrics label (executor/api/metric).
PREDICTOR_VERSION_ANNOTATION = "version"
# Seldon's executor waits without a limit by default; a graph node that has not answered in a minute is
# treated as hung so the client gets a 504 naming it rather than a stuck connection.
DEFAULT_TIMEOUT_S = 60.0
# Seldon's executor default is MaxInt32; gRPC's own default of 4 MiB would refuse real images.
DEFAULT_MAX_MESSAGE_BYTES = 2**31 - 1
# A graph request (REST body or gRPC message), and its answer, are refused (413 / RESOURCE_EXHAUSTED)
# past the size annotation, else past this: the gateway's limit (mesh.spec.traffic), Seldon's MaxInt32.
DEFAULT_REST_BODY_BYTES = 2**31 - 1


BUILTINS = frozenset(
    {
        "SIMPLE_MODEL",
        "SIMPLE_ROUTER",
        "RANDOM_ABTEST",
        "AVERAGE_COMBINER",
        "EPSILON_GREEDY",
        "THOMPSON_SAMPLING",
    }
)


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class NodeConfig:
    name: str
    type: str = "MODEL"
    implementation: str = "UNKNOWN_IMPLEMENTATION"
    methods: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    protocol: str = "seldon"
    transport: str = "rest"
    http: str | None = None
    grpc: str | None = None
    image: str = ""
    children: tuple[NodeConfig, ...] = ()
    # The node's `logger` (mode all|request|response, optional url): what the payload logger records.
    logger_mode: str | None = None
    logger_url: str | None = None

    @property
    def builtin(self) -> bool:
        """Run inside the executor (a router, combiner or stub model), not called over the network."""
        return self.implementation in BUILTINS

    def walk(self) -> list[NodeConfig]:
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes


@dataclass(frozen=True)
class Timeouts:
    rest_s: float = DEFAULT_TIMEOUT_S
    grpc_s: float = DEFAULT_TIMEOUT_S
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class PredictorConfig:
    namespace: str
    deployment: str
    name: str
    graph: NodeConfig
    annotations: Mapping[str, str] = field(default_factory=dict)
    # The predictor's own `annotations["version"]` (not the deployment's): Seldon's `predictor_version`.
    version: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.deployment}/{self.name}"

    # Cached: read on every request and node call; a config change builds new PredictorConfigs.
    @cached_property
    def routing_injection(self) -> bool:
        return self.annotations.get(ROUTING_INJECTION, "true").strip().lower() not in ("false", "0", "no")

    @cached_property
    def rest_body_bytes(self) -> int:
        """The predictor's request (and answer) limit in bytes, REST and gRPC alike."""
        return min(
            _int(self.annotations.get(GRPC_MAX_MESSAGE_SIZE)) or DEFAULT_REST_BODY_BYTES,
            DEFAULT_REST_BODY_BYTES,
        )

    @cached_property
    def logged(self) -> bool:
        """Some node of the graph has a payload `logger`."""
        return any(node.logger_mode is not None for node in self.graph.walk())

    @cached_property
    def timeouts(self) -> Timeouts:
        return Timeouts(
            rest_s=_millis(self.annotations.get(REST_TIMEOUT)) or DEFAULT_TIMEOUT_S,
            grpc_s=_millis(self.annotations.get(GRPC_TIMEOUT)) or DEFAULT_TIMEOUT_S,
            max_message_bytes=_int(self.annotations.get(GRPC_MAX_MESSAGE_SIZE)) or DEFAULT_MAX_MESSAGE_BYTES,
        )


@dataclass(frozen=True)
class DeploymentConfig:
    namespace: str
    name: str
    predictors: tuple[PredictorConfig, ...]

    def predictor(self, name: str | None) -> PredictorConfig | None:
        if name:
            return next((p for p in self.predictors if p.name == name), None)
        return self.predictors[0] if self.predictors else None


@dataclass(frozen=True)
class GraphConfig:
    generation: str = ""
    deployments: Mapping[tuple[str, str], DeploymentConfig] = field(default_factory=dict)

    def deployment(self, namespace: str, name: str) -> DeploymentConfig | None:
        return self.deployments.get((namespace, name))


def _millis(raw: str | None) -> float | None:
    value = _int(raw)
    return value / 1000.0 if value else None


def _int(raw: str | None) -> int | None:
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw.strip())


def _node(raw: Any, path: str) -> NodeConfig:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"{path}: a node needs a name")
    children = tuple(_node(c, f"{path}.children[{i}]") for i, c in enumerate(raw.get("children") or []))
    return NodeConfig(
        name=raw["name"],
        type=str(raw.get("type") or "UNKNOWN_TYPE"),
        implementation=str(raw.get("implementation") or "UNKNOWN_IMPLEMENTATION"),
        methods=tuple(str(m) for m in raw.get("methods") or ()),
        parameters=MappingProxyType(dict(raw.get("parameters") or {})),
        protocol="v2" if raw.get("protocol") in ("v2", "kfserving") else "seldon",
        transport="grpc" if raw.get("transport") == "grpc" else "rest",
        http=raw.get("http") or None,
        grpc=raw.get("grpc") or None,
        image=str(raw.get("image") or ""),
        children=children,
        logger_mode=(raw.get("logger") or {}).get("mode"),
        logger_url=(raw.get("logger") or {}).get("url"),
    )


def parse_config(document: Any) -> GraphConfig:
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ConfigError(f"not a graph config of schema {SCHEMA}")
    deployments: dict[tuple[str, str], DeploymentConfig] = {}
    for d_index, raw in enumerate(document.get("deployments") or []):
        namespace, name = str(raw.get("namespace", "default")), str(raw.get("name", ""))
        base = dict(raw.get("annotations") or {})
        predictors = tuple(
            PredictorConfig(
                namespace=namespace,
                deployment=name,
                name=str(p.get("name", "")),
                graph=_node(p.get("graph"), f"deployments[{d_index}].predictors[{p_index}].graph"),
                annotations=MappingProxyType({**base, **(p.get("annotations") or {})}),
                version=str((p.get("annotations") or {}).get(PREDICTOR_VERSION_ANNOTATION, "")),
            )
            for p_index, p in enumerate(raw.get("predictors") or [])
        )
        deployments[(namespace, name)] = DeploymentConfig(namespace, name, predictors)
    return GraphConfig(str(document.get("generation", "")), MappingProxyType(deployments))


def load_config(path: Path) -> GraphConfig:
    try:
        return parse_config(orjson.loads(path.read_bytes()))
    except orjson.JSONDecodeError as error:
        raise ConfigError(f"{path}: {error}") from None


def write_config(path: Path, document: Mapping[str, Any]) -> None:
    """Atomically replace `path` (readers see the old or the new document, never half of one)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(orjson.dumps(document))
    os.replace(temp, path)


class ConfigWatcher:
    """Holds the current `GraphConfig`, reloaded when the file changes (checked every `interval_s`)."""

    def __init__(self, path: Path | None, interval_s: float = 0.2) -> None:
        self.path = path
        self.interval_s = interval_s
        self.current = GraphConfig()
        self._identity: tuple[int, int, int] | None = None

    def poll(self) -> bool:
        """Reload if the file changed; returns whether a new config was taken."""
        if self.path is None:
            return False
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False
        identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if identity == self._identity:
            return False
        self._identity = identity
        try:
            self.current = load_config(self.path)
        except (OSError, ConfigError) as error:
            log.error("graph config %s not taken (the previous one keeps serving): %s", self.path, error)
            return False
        log.info("graph config %s: %d deployments", self.current.generation, len(self.current.deployments))
        return True

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(self.interval_s)
