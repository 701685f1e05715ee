"""The local graph executor: one supervised `python -m extproc` process, and the graph config it serves.

`seldon-mesh up` starts it once on a fixed port (so Envoy's extproc cluster never changes), restarts it
with backoff if it dies, and writes the graph config file it watches every time the reconciler
publishes (deployments plus the endpoints of their serving components). The file is the versioned,
atomic contract of `extproc/config.py` (schema 1); this module writes JSON only and imports nothing of
extproc. Which protocol a node speaks: the deployment's `protocol`, overridden per node by the
annotation `protocol.seldon-mesh.io/<node>: v2|seldon` (an external MLServer in a Seldon graph); its
transport: the node's `endpoint.type`, else the deployment's `transport`, else REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mesh.spec import Container, PredictiveUnit, PredictorSpec, SeldonDeployment, canonical_protocol
from xds_controller.translate import ComponentEndpoints, ComponentKey, Upstream

log = logging.getLogger(__name__)

SCHEMA = 1
NODE_PROTOCOL_ANNOTATION = "protocol.seldon-mesh.io/"


def _address(upstreams: Sequence[Upstream]) -> str | None:
    return f"{upstreams[0].host}:{upstreams[0].port}" if upstreams else None


def _image(node: PredictiveUnit, container: Container | None) -> str:
    """What `meta.requestPath` shows for a node: its image, else its server, else its external address."""
    if container is not None and container.image:
        return container.image
    if node.is_prepackaged or node.is_builtin:
        return node.implementation
    endpoint = node.endpoint
    if endpoint is not None and endpoint.service_host:
        return f"{endpoint.service_host}:{endpoint.http_port or endpoint.service_port or endpoint.grpc_port}"
    return ""


def _node(
    node: PredictiveUnit,
    key: ComponentKey,
    predictor: PredictorSpec,
    deployment: SeldonDeployment,
    endpoints: Mapping[ComponentKey, ComponentEndpoints],
) -> dict[str, Any]:
    annotations = {**deployment.annotations, **predictor.annotations}
    protocol = canonical_protocol(
        annotations.get(NODE_PROTOCOL_ANNOTATION + node.name, deployment.spec.protocol)
    )
    endpoint_type = node.endpoint.type if node.endpoint is not None else None
    transport = (endpoint_type or deployment.spec.transport or "rest").lower()
    found = endpoints.get(key._replace(node=node.name), ComponentEndpoints())
    container = predictor.container_for(node.name)
    return {
        "name": node.name,
        "type": str(node.type or "UNKNOWN_TYPE"),
        "implementation": node.implementation,
        "methods": list(node.methods),
        "parameters": node.typed_parameters(),
        "protocol": "v2" if protocol == "v2" else "seldon",
        "transport": transport,
        "http": _address(found.http),
        "grpc": _address(found.grpc),
        "image": _image(node, container),
        "logger": node.logger.model_dump(exclude_none=True) if node.logger is not None else None,
        "children": [_node(c, key, predictor, deployment, endpoints) for c in node.children],
    }


def graph_config(
    deployments: Sequence[SeldonDeployment], endpoints: Mapping[ComponentKey, ComponentEndpoints]
) -> dict[str, Any]:
    """The document extproc serves; `generation` is a hash of the rest, so equal inputs give equal files."""
    body = []
    for deployment in sorted(deployments, key=lambda d: d.key):
        namespace, name = deployment.key
        predictors = []
        for predictor in deployment.spec.predictors:
            key = ComponentKey(namespace, name, predictor.name, predictor.graph.name)
            graph = _node(predictor.graph, key, predictor, deployment, endpoints)
            predictors.append({"name": predictor.name, "annotations": predictor.annotations, "graph": graph})
        body.append(
            {
                "namespace": namespace,
                "name": name,
                "annotations": deployment.annotations,
                "predictors": predictors,
            }
        )
    text = json.dumps(body, sort_keys=True)
    return {
        "schema": SCHEMA,
        "generation": hashlib.sha256(text.encode()).hexdigest()[:16],
        "deployments": body,
    }


class GraphExecutorProcess:
    """Keeps `python -m extproc` running on `port`; `publish` hands it a new graph config."""

    def __init__(
        self,
        host: str,
        port: int,
        state_dir: Path,
        log_dir: Path,
        backoff_initial_s: float,
        backoff_max_s: float,
        metrics_port: int | None = None,
        rest_port: int | None = None,
    ) -> None:
        self.upstream = Upstream(host, port)
        # extproc's REST edge (`up --graph-edge http`), fixed like the gRPC port; None: not started.
        self.rest_upstream = Upstream(host, rest_port) if rest_port is not None else None
        # Fixed for the life of `up`, like the gRPC port, so a restarted extproc keeps its scrape address.
        self.metrics_port = metrics_port
        self.config_path = state_dir / "graphs.json"
        self._state_dir = state_dir
        self._log_path = log_dir / "extproc.log"
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._generation = ""

    @property
    def metrics_url(self) -> str | None:
        if self.metrics_port is None:
            return None
        return f"http://{self.upstream.host}:{self.metrics_port}/prometheus"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    def publish(
        self, deployments: Sequence[SeldonDeployment], endpoints: Mapping[ComponentKey, ComponentEndpoints]
    ) -> None:
        document = graph_config(deployments, endpoints)
        if document["generation"] == self._generation:
            return
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.config_path.with_name(f".{self.config_path.name}.tmp")
        temp.write_text(json.dumps(document))
        os.replace(temp, self.config_path)  # atomic: extproc reads the old file or the new one
        self._generation = str(document["generation"])

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_alive(), name="extproc")

    async def stop(self, grace_s: float) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def _keep_alive(self) -> None:
        backoff = self._backoff[0]
        loop = asyncio.get_running_loop()
        while True:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            args = [
                sys.executable, "-m", "extproc",
                "--host", self.upstream.host,
                "--port", str(self.upstream.port),
                "--config", str(self.config_path),
                "--state-dir", str(self._state_dir),
            ]  # fmt: skip
            if self.metrics_port is not None:
                args += ["--metrics-port", str(self.metrics_port)]
            if self.rest_upstream is not None:
                args += ["--http-port", str(self.rest_upstream.port)]
            with self._log_path.open("ab") as log_file:
                self._process = await asyncio.create_subprocess_exec(
                    *args,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    # inherits OTEL_EXPORTER_OTLP_ENDPOINT, SELDON_MESH_TRACE_SAMPLING_RATIO and
                    # REQUEST_LOGGER_DEFAULT_ENDPOINT from `up`'s environment
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    start_new_session=True,
                )
            (self._state_dir / "extproc.pid").write_text(str(self._process.pid))
            started = loop.time()
            code = await self._process.wait()
            if loop.time() - started > 10:  # it served for a while: restart at once, as the first time
                backoff = self._backoff[0]
            log.warning("extproc exited with code %s; restarting in %.1fs", code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._backoff[1])
