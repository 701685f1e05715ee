"""Prometheus metrics of the ext_proc process: Seldon's executor request histograms (reference 5.2) and
(the payload logger's counters are `payload_log.metrics.PayloadLogMetrics`).

Hooks for the servicer: `ExecutorMetrics.observe_server(...)` once per request it answers, inside
`with predictor_scope(PredictorLabels(...)):` around the executor call; node calls are timed by wrapping
the executor's node client in `InstrumentedNodeClient`.

Every process builds its own `CollectorRegistry`; nothing registers on prometheus_client's global one.
Several ext_proc processes sharing a port with SO_REUSEPORT use prometheus_client's multiprocess mode: the
entrypoint sets `PROMETHEUS_MULTIPROC_DIR` (to a fresh directory, before any worker starts) and builds
`Exposition(multiprocess_dir=...)`; whichever worker answers a scrape merges every worker's files, so
the pod keeps one `metrics` port as Seldon's PodMonitor expects. One process needs nothing of this.

Summaries: prometheus_client summaries carry `_count` and `_sum` only (no quantiles), so the
`..._summary` series are there for Seldon's names and rates; take percentiles from the histograms.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    Summary,
)

from extproc.codecs import Payload
from extproc.config import NodeConfig, Timeouts
from extproc.graph.errors import GraphError
from extproc.graph.executor import Json, NodeClient

SELDON_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    2.5,
    5,
    7.5,
    10,
)
SERVER_REQUESTS = "seldon_api_executor_server_requests_seconds"
CLIENT_REQUESTS = "seldon_api_executor_client_requests_seconds"
SERVER_LABELS = ("deployment_name", "predictor_name", "predictor_version", "service", "method", "code")
CLIENT_LABELS = (*SERVER_LABELS, "model_name", "model_image", "model_version")


@dataclass(frozen=True, slots=True)
class PredictorLabels:
    deployment_name: str
    predictor_name: str
    predictor_version: str = ""


@dataclass(frozen=True, slots=True)
class NodeLabels:
    """A graph node's component; `model_version` is its image tag, as in Seldon."""

    model_name: str
    model_image: str = ""
    model_version: str = ""


class ExecutorMetrics:
    """Call `observe_server` once per request the gateway hands ext_proc (service is `predictions`,
    `feedback`, `status` or `metadata`; method the HTTP method or `grpc`; code the HTTP status or gRPC
    code name) and `observe_client` once per call to a node."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[Histogram, Summary]] = {}
        self.server = Histogram(
            SERVER_REQUESTS, "Requests to the graph executor", SERVER_LABELS,
            registry=registry, buckets=SELDON_BUCKETS,
        )  # fmt: skip
        self.server_summary = Summary(
            SERVER_REQUESTS + "_summary", "Requests to the graph executor", SERVER_LABELS, registry=registry
        )
        self.client = Histogram(
            CLIENT_REQUESTS, "Calls from the graph executor to components", CLIENT_LABELS,
            registry=registry, buckets=SELDON_BUCKETS,
        )  # fmt: skip
        self.client_summary = Summary(
            CLIENT_REQUESTS + "_summary", "Calls from the graph executor to components", CLIENT_LABELS,
            registry=registry,
        )  # fmt: skip

    def observe_server(
        self, predictor: PredictorLabels, service: str, method: str, code: str, seconds: float
    ) -> None:
        labels = (predictor.deployment_name, predictor.predictor_name, predictor.predictor_version,
                  service, method, code)  # fmt: skip
        for child in self._children("server", self.server, self.server_summary, labels):
            child.observe(seconds)

    def observe_client(
        self,
        predictor: PredictorLabels,
        node: NodeLabels,
        service: str,
        method: str,
        code: str,
        seconds: float,
    ) -> None:
        labels = (predictor.deployment_name, predictor.predictor_name, predictor.predictor_version,
                  service, method, code, node.model_name, node.model_image, node.model_version)  # fmt: skip
        for child in self._children("client", self.client, self.client_summary, labels):
            child.observe(seconds)

    def _children(
        self, kind: str, histogram: Histogram, summary: Summary, labels: tuple[str, ...]
    ) -> tuple[Histogram, Summary]:
        """The labelled series, looked up once per label set: `labels()` validates on every call and
        costs more than the observation itself."""
        key = (kind, labels)
        children = self._cache.get(key)
        if children is None:
            children = self._cache[key] = (histogram.labels(*labels), summary.labels(*labels))
        return children


UNKNOWN_PREDICTOR = PredictorLabels("", "")  # frozen, so a safe ContextVar default
CURRENT_PREDICTOR: ContextVar[PredictorLabels] = ContextVar(
    "seldon_mesh_current_predictor", default=UNKNOWN_PREDICTOR
)


@contextmanager
def predictor_scope(predictor: PredictorLabels) -> Iterator[None]:
    """Set by the servicer around one request, so node calls made for it carry its predictor's labels
    (asyncio tasks the executor starts inherit it)."""
    token = CURRENT_PREDICTOR.set(predictor)
    try:
        yield
    finally:
        CURRENT_PREDICTOR.reset(token)


def node_labels(node: NodeConfig) -> NodeLabels:
    """Seldon's model labels from a node: its name, its image and the image's tag as the version."""
    image, _, tag = (
        node.image.rpartition(":") if ":" in node.image.rsplit("/", 1)[-1] else (node.image, "", "")
    )
    return NodeLabels(node.name, image, tag)


class InstrumentedNodeClient:
    """The executor's `NodeClient` with every node call timed into
    `seldon_api_executor_client_requests_seconds`: wrap the real client once at startup,
    `GraphExecutor(InstrumentedNodeClient(NodeClients(...), executor_metrics), ...)`.

    `service` is predictions/feedback/metadata; `method` the call (predict, transform_input, route, ...);
    `code` the HTTP status for REST nodes and the gRPC code name for gRPC nodes, as the node answered.
    """

    def __init__(self, inner: NodeClient, metrics: ExecutorMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def call(
        self, node: NodeConfig, method: str, payloads: Sequence[Payload], meta: Json, limits: Timeouts
    ) -> tuple[Payload, Json]:
        # `_timed` inlined: this runs on every node call, and a generator-based context costs ~5 us
        grpc_node = node.transport == "grpc"
        code = "OK" if grpc_node else "200"
        started = time.perf_counter()
        try:
            return await self._inner.call(node, method, payloads, meta, limits)
        except GraphError as error:
            code = error.grpc_code.name if grpc_node else str(error.status)
            raise
        except BaseException:
            code = "INTERNAL" if grpc_node else "500"
            raise
        finally:
            seconds = time.perf_counter() - started
            self._metrics.observe_client(
                CURRENT_PREDICTOR.get(), node_labels(node), "predictions", method, code, seconds
            )

    async def feedback(self, node: NodeConfig, feedback: Json, limits: Timeouts) -> None:
        with self._timed(node, "feedback", "send_feedback"):
            await self._inner.feedback(node, feedback, limits)

    async def metadata(self, node: NodeConfig, limits: Timeouts) -> Json:
        with self._timed(node, "metadata", "metadata"):
            return await self._inner.metadata(node, limits)

    async def status(self, node: NodeConfig, limits: Timeouts) -> Json:
        with self._timed(node, "status", "status"):
            return await self._inner.status(node, limits)

    @contextmanager
    def _timed(self, node: NodeConfig, service: str, method: str) -> Iterator[None]:
        grpc_node = node.transport == "grpc"
        code = "OK" if grpc_node else "200"
        started = time.perf_counter()
        try:
            yield
        except GraphError as error:
            code = error.grpc_code.name if grpc_node else str(error.status)
            raise
        except BaseException:
            code = "INTERNAL" if grpc_node else "500"
            raise
        finally:
            seconds = time.perf_counter() - started
            self._metrics.observe_client(
                CURRENT_PREDICTOR.get(), node_labels(node), service, method, code, seconds
            )
