"""One gRPC server for the whole extproc process: ext_proc, the gRPC graph edges and health.

`create_server(settings, frontend) -> (server, port)` like every gRPC server in seldon-mesh; `serve`
runs it with the config watcher until SIGTERM/SIGINT, then stops gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from grpc_health.v1 import _async as health_aio  # what `health.aio` names, visible to mypy
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from extproc.config import DEFAULT_MAX_MESSAGE_BYTES, ConfigWatcher
from extproc.graph import GraphExecutor, MemoryState, SqliteState, StateStore
from extproc.graph.executor import NodeClient
from extproc.metrics import ExecutorMetrics, InstrumentedNodeClient
from extproc.nodes import NodeClients
from extproc.server.frontend import Frontend
from extproc.server.observe import RequestObserver
from extproc.server.processor import ExternalProcessor
from extproc.server.rest import create_rest_server
from extproc.server.upstream import InferenceEdge, SeldonEdge
from extproc.tracing import TracedNodeClient, Tracing, TracingSettings
from generated.inference import dataplane_pb2 as v2_pb
from generated.inference import dataplane_pb2_grpc as v2_grpc
from generated.seldon import prediction_pb2 as v1_pb
from generated.seldon import prediction_pb2_grpc as v1_grpc
from payload_log import PayloadLogger, PayloadLoggerSettings, SpoolingNodeEvents
from payload_log.metrics import PayloadLogMetrics
from telemetry.exposition import Exposition
from telemetry.undecodable import UndecodableRequestInterceptor

log = logging.getLogger(__name__)

Adder = Callable[[Any, Any], None]
_add_seldon: Adder = v1_grpc.add_SeldonServicer_to_server
_add_inference: Adder = v2_grpc.add_GRPCInferenceServiceServicer_to_server
GRAPH_SERVICES = (
    v1_pb.DESCRIPTOR.services_by_name["Seldon"].full_name,
    v2_pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)


@dataclass(frozen=True)
class ExtprocSettings:
    """Read from the command line only, in `__main__`."""

    host: str = "127.0.0.1"  # loopback: only the local Envoy talks to extproc
    port: int = 0  # 0 picks a free port (printed on stdout)
    # REST edge (`rest.py`): graph REST requests routed here as a plain HTTP/1.1 upstream, about 1 ms
    # cheaper than an ext_proc stream; None: off (REST graphs come over ext_proc only); 0: a free port.
    http_port: int | None = None
    config_path: Path | None = None  # the graph config file written by the supervisor
    state_dir: Path | None = None  # where bandit state persists; None keeps it in memory
    grace_s: float = 2.0  # SIGTERM: seconds in-flight graphs get to finish
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES  # gRPC limit on what clients may send us
    metrics_port: int | None = None  # Prometheus scrape port (any path: /prometheus, /metrics); None: off
    # Payload logger (None: spool under state_dir/spool, or a temporary dir, with no default endpoint).
    logger: PayloadLoggerSettings | None = None
    # Tracing is off without an OTLP endpoint.
    tracing: TracingSettings = field(default_factory=lambda: TracingSettings.model_validate({}))
    drain_s: float = 2.0  # SIGTERM: seconds the payload logger gets to deliver what is spooled (kept after)


async def create_server(settings: ExtprocSettings, frontend: Frontend) -> tuple[grpc.aio.Server, int]:
    options = [
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options, interceptors=[UndecodableRequestInterceptor()])
    ep_grpc.add_ExternalProcessorServicer_to_server(ExternalProcessor(frontend), server)
    _add_seldon(SeldonEdge(frontend), server)
    _add_inference(InferenceEdge(frontend), server)
    health_servicer = health_aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    # grpcurl with `-H seldon:<graph>` asks the graph's upstream (us) for reflection too.
    reflection.enable_server_reflection(
        (*GRAPH_SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"extproc cannot listen on {settings.host}:{settings.port}")
    return server, port


async def serve(settings: ExtprocSettings) -> None:
    watcher = ConfigWatcher(settings.config_path)
    watcher.poll()
    state: StateStore = (
        SqliteState(settings.state_dir / "routers.sqlite")
        if settings.state_dir is not None
        else MemoryState()
    )
    registry = CollectorRegistry()
    metrics = ExecutorMetrics(registry)
    logger = PayloadLogger(_logger_settings(settings), observer=PayloadLogMetrics(registry))
    logger.start(asyncio.get_running_loop())  # writes and delivers on this loop: no thread hand-offs
    tracing = Tracing(settings.tracing) if settings.tracing.otlp_endpoint else None
    clients = NodeClients()
    nodes: NodeClient = InstrumentedNodeClient(clients, metrics)
    if tracing is not None:
        nodes = TracedNodeClient(nodes, tracing)
    events = SpoolingNodeEvents(logger, f"http://{settings.host}:{settings.port}/")
    frontend = Frontend(
        lambda: watcher.current,
        GraphExecutor(nodes, state, events),
        watcher.poll,
        RequestObserver(metrics, tracing),
    )
    server, port = await create_server(settings, frontend)
    await server.start()
    print(f"extproc listening on {settings.host}:{port}", flush=True)
    rest_server: asyncio.Server | None = None
    if settings.http_port is not None:
        rest_server, http_port = await create_rest_server(frontend, settings.host, settings.http_port)
        print(f"extproc REST edge on {settings.host}:{http_port}", flush=True)
    if settings.metrics_port is not None:
        _serve_metrics(Exposition(registry), settings.host, settings.metrics_port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    watch = asyncio.create_task(watcher.run())
    try:
        await stopping.wait()
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        if rest_server is not None:
            rest_server.close()  # stop accepting; requests in flight finish within the gRPC grace below
        await server.stop(settings.grace_s)
        await clients.close()
        # Whatever is not delivered within the drain stays spooled and goes out on the next start.
        await asyncio.to_thread(logger.stop, settings.drain_s)
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown)
        if isinstance(state, SqliteState):
            state.close()


def _serve_metrics(exposition: Exposition, host: str, port: int) -> None:
    """Start the scrape endpoint; a port someone else holds costs the metrics, never the graphs.

    `seldon-mesh up` keeps extproc's ports fixed for its lifetime, so a restart after another process took
    the metrics port would otherwise fail the same way each time and leave every graph route answering 503.
    """
    try:
        bound = exposition.serve(port, host)
    except OSError as error:
        log.error("extproc metrics not served: %s:%d: %s", host, port, error)
        return
    print(f"extproc metrics on http://{host}:{bound}/prometheus", flush=True)


def _logger_settings(settings: ExtprocSettings) -> PayloadLoggerSettings:
    if settings.logger is not None:
        return settings.logger
    if settings.state_dir is not None:
        return PayloadLoggerSettings.model_validate({"spool_dir": settings.state_dir / "spool"})
    log.warning("no --state-dir: payload logs spool in a temporary directory, lost if extproc restarts")
    return PayloadLoggerSettings.model_validate({"spool_dir": tempfile.mkdtemp(prefix="extproc-spool-")})
