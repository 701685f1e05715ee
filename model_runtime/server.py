"""One runtime process: REST (uvicorn) and gRPC (grpc.aio) on one uvloop event loop, the component loaded
in the background, and a graceful stop on SIGTERM/SIGINT.

`workers` starts several of these; `cli` and `microservice` build the settings and call `run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import uvicorn
import uvloop
from grpc_health.v1._async import HealthServicer
from prometheus_client import CollectorRegistry

from model_runtime.batching import Infer, blocking_runner, make_infer
from model_runtime.dataplane import DataPlane
from model_runtime.inference import InferenceCore
from model_runtime.loader import load_component
from model_runtime.metrics import RuntimeMetrics
from model_runtime.observe import RequestObserver
from model_runtime.payloads import PayloadLog
from model_runtime.rest import RestApp
from model_runtime.rpc import create_server, mark_serving
from model_runtime.settings import RuntimeSettings, ServerSettings, TelemetrySettings
from model_runtime.tracing import Tracing
from payload_log.metrics import PayloadLogMetrics
from payload_log.slots import claim
from telemetry.exposition import Exposition

log = logging.getLogger(__name__)
_BACKLOG = 2048  # pending REST connections


class StartupError(Exception):
    """The process cannot serve at all (a port is taken, ...); the CLI exits non-zero with this text."""


# An idle keep-alive connection is closed after this long. uvicorn's 5 s default is shorter than what
# clients keep connections for (Envoy's upstream pools, requests/httpx sessions, load balancers' 60 s), so a
# request sent on a pooled connection just as the runtime closed it was lost ("Remote end closed connection
# without response", seen in a fresh-clone CI run of tests/fuzz/test_openapi on a loaded machine).
_KEEP_ALIVE_S = 75


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: this process stops both servers itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def run_process(settings: RuntimeSettings) -> None:
    """Serve until SIGTERM/SIGINT. Raises `StartupError` if the ports cannot be bound."""
    uvloop.run(serve(settings))


def run_worker_process(settings: RuntimeSettings, index: int) -> None:
    """One of several workers: all but the first bind only once their component has loaded, so
    SO_REUSEPORT never hands a connection to a worker that would answer 503 while it loads."""
    uvloop.run(serve(settings, load_before_binding=index > 0))


async def serve(
    settings: RuntimeSettings, stop: asyncio.Event | None = None, *, load_before_binding: bool = False
) -> None:
    server_settings = settings.server
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stop_task = asyncio.create_task(stop.wait())

    executor = (
        ThreadPoolExecutor(server_settings.user_code_threads, thread_name_prefix="user-code")
        if server_settings.user_code_threads
        else None
    )
    metrics = RuntimeMetrics(CollectorRegistry(), settings.telemetry.identity)
    tracing = Tracing(settings.telemetry.tracing) if settings.telemetry.tracing.otlp_endpoint else None
    observer = RequestObserver(metrics, tracing, settings.component.name)
    core = DataPlane(settings.component, load_component, metrics)
    inference = InferenceCore(core)
    infer = make_infer(inference, server_settings, blocking_runner(executor))
    payloads = _payload_log(settings, metrics)
    loading = asyncio.create_task(_load_in_thread(core))
    parts = _Parts(core, inference, infer, executor, observer, metrics, loading, payloads)
    try:
        await _serve_parts(settings, parts, stop, stop_task, load_before_binding)
    finally:
        if payloads is not None:  # what is not delivered stays spooled for the next start
            await asyncio.to_thread(payloads.logger.stop, 1.0)
            if payloads.slot is not None:
                payloads.slot.release()
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown)  # flush what is batched


@dataclass(frozen=True)
class _Parts:
    """What one process serves, built before any port is bound."""

    core: DataPlane
    inference: InferenceCore
    infer: Infer
    executor: ThreadPoolExecutor | None
    observer: RequestObserver
    metrics: RuntimeMetrics
    loading: asyncio.Task[bool]
    payloads: PayloadLog | None = None


def _payload_log(settings: RuntimeSettings, metrics: RuntimeMetrics) -> PayloadLog | None:
    """The node's payload logger in a spool slot of its own (`payload_log.slots`: workers and replicas
    each claim one; a restarted process takes over a killed one's), started: it delivers what is left."""
    if settings.payload_log is None:
        return None
    server = settings.server
    source = f"http://{server.host}:{server.http_port}/"
    observer = PayloadLogMetrics(metrics.registry)
    slot = claim(settings.payload_log.spool.spool_dir)
    payloads = PayloadLog(
        settings.payload_log, metrics.identity, settings.component.name, source, observer, slot
    )
    payloads.logger.start(asyncio.get_running_loop())  # writes and delivers on the serving loop
    return payloads


async def _serve_parts(
    settings: RuntimeSettings,
    parts: _Parts,
    stop: asyncio.Event,
    stop_task: asyncio.Task[bool],
    load_before_binding: bool,
) -> None:
    server_settings = settings.server
    core, executor, loading = parts.core, parts.executor, parts.loading
    if load_before_binding:
        await asyncio.wait({loading, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            return
    http_socket = bind_http(server_settings)
    try:
        grpc_server, health_servicer, grpc_port = create_server(
            server_settings, core, executor, parts.inference, parts.infer, parts.observer, parts.payloads
        )
    except RuntimeError as exc:
        http_socket.close()
        raise StartupError(
            f"cannot serve gRPC on {server_settings.host}:{server_settings.grpc_port}: {exc}"
        ) from exc
    if settings.telemetry.multiprocess_dir is None:  # with several workers their supervisor serves it
        try:
            serve_metrics(Exposition(parts.metrics.registry), settings.telemetry, server_settings.host)
        except StartupError:
            http_socket.close()
            raise
    await mark_serving(health_servicer, False)
    await grpc_server.start()

    config = uvicorn.Config(
        RestApp(
            core,
            server_settings,
            executor,
            parts.inference,
            parts.infer,
            parts.observer,
            parts.payloads,
            gateway_facing=settings.telemetry.identity.gateway_facing,
        ),
        http="httptools",
        lifespan="off",
        ws="none",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=max(1, int(server_settings.graceful_shutdown_seconds)),
        backlog=_BACKLOG,
        server_header=False,
        timeout_keep_alive=_KEEP_ALIVE_S,
    )
    http_server = _Uvicorn(config)
    http_task = asyncio.create_task(http_server.serve(sockets=[http_socket]))
    http_port = http_socket.getsockname()[1]
    log.info(
        "runtime %s: REST on http://%s:%d, gRPC on %s:%d",
        settings.component.name,
        server_settings.host,
        http_port,
        server_settings.host,
        grpc_port,
    )
    load_task = asyncio.create_task(_serving_once_loaded(loading, health_servicer))
    await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)

    log.info("runtime %s stopping", settings.component.name)
    load_task.cancel()
    await mark_serving(health_servicer, False)
    http_server.should_exit = True
    await asyncio.gather(grpc_server.stop(server_settings.graceful_shutdown_seconds), http_task)
    stop_task.cancel()
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)
    log.info("runtime %s stopped", settings.component.name)


def serve_metrics(exposition: Exposition, telemetry: TelemetrySettings, host: str) -> int | None:
    """Serve the Prometheus scrape on its own port (any path answers: `/prometheus`, `/metrics`)."""
    if telemetry.metrics_port is None:
        return None
    try:
        port = exposition.serve(telemetry.metrics_port, host)
    except OSError as exc:
        raise StartupError(f"cannot serve metrics on {host}:{telemetry.metrics_port}: {exc}") from exc
    log.info("metrics on http://%s:%d/prometheus", host, port)
    return port


async def _serving_once_loaded(loading: asyncio.Task[bool], health_servicer: HealthServicer) -> None:
    if await loading:
        await mark_serving(health_servicer, True)


async def _load_in_thread(core: DataPlane) -> bool:
    """Load on a daemon thread, so a slow load never blocks requests or the process exit."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()

    def finish(ok: bool) -> None:
        if not done.done():
            done.set_result(ok)

    def work() -> None:
        ok = core.load()
        with contextlib.suppress(RuntimeError):  # the loop closed: the process is stopping anyway
            loop.call_soon_threadsafe(finish, ok)

    threading.Thread(target=work, name="model-load", daemon=True).start()
    return await done


def bind_http(settings: ServerSettings) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        settings.host, settings.http_port, type=socket.SOCK_STREAM
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if settings.workers > 1:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
        # listening at once: two SO_REUSEADDR sockets may share a port while neither listens, and the
        # gRPC server binding the same port then succeeded, leaving a runtime that never got ready
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot serve REST on {settings.host}:{settings.http_port}: {exc}") from exc
    sock.set_inheritable(False)
    return sock
