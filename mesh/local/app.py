"""`seldon-mesh up`: the embedded control plane and data plane of one machine, composed in one process.

It wires the state store, the xDS server and cache, one Envoy, the runtime supervisor, the reconcile loop
and the control API together, and tears them all down on SIGINT/SIGTERM so no child is left behind. Should
`up` die without tearing down (SIGKILL, an OOM kill), its children get SIGTERM from the kernel, and the
next `up` on the state directory first stops whatever its pid records show still running (`children`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mesh.local.api import create_control_app
from mesh.local.children import PidRecords, guard_prefix
from mesh.local.envoy import EnvoyProcess
from mesh.local.graphs import GraphExecutorProcess
from mesh.local.reconcile import Change, Reconciler, Render, Translate
from mesh.local.reflection import start_reflection_server
from mesh.local.settings import LocalSettings
from mesh.local.status import describe
from mesh.local.store import StateStore
from mesh.local.supervisor import Supervisor, SupervisorSettings, free_port, free_ports
from mesh.local.xds import XdsPlane
from mesh.spec import SecretDocument, SeldonDeployment
from xds_controller.bootstrap import tracer_runtime
from xds_controller.builder import SnapshotBuilder
from xds_controller.snapshot import Snapshot
from xds_controller.translate import ComponentEndpoints, ComponentKey, GatewaySettings, Upstream
from xds_controller.translate.tracing import settings_from_otlp_endpoint

log = logging.getLogger(__name__)

NODE_ID = "seldon-mesh-gateway"


class MeshError(Exception):
    """`up` cannot start (port taken, another `up` on the same state dir, ...)."""


class LocalMesh:
    def __init__(self, settings: LocalSettings, translate_fn: Translate | None = None) -> None:
        """`translate_fn` replaces the incremental snapshot builder with a whole translation per publish
        (tests that alter what translation gives)."""
        self.settings = settings
        self._translate = translate_fn
        self._stopping = asyncio.Event()
        self._refresh_scheduled = False
        self._started = time.time()
        self.control_url = ""
        self.control_token = secrets.token_urlsafe(32)  # in the 0600 control file; /v1 calls must carry it
        self.envoy: EnvoyProcess | None = None
        self.envoy_stats_url = ""  # Envoy's stats alone (its admin API is on the owner's Unix socket)
        self._store: StateStore | None = None
        self._reconciler: Reconciler | None = None
        self._graphs: GraphExecutorProcess | None = None
        self.registry = CollectorRegistry()  # the supervisor's own metrics, served at /metrics

    # -- MeshControl (the control API) --------------------------------------------------------------------
    async def apply(
        self,
        deployments: list[SeldonDeployment],
        base_dir: Path,
        secret_documents: Sequence[SecretDocument] = (),
    ) -> list[dict[str, str]]:
        assert self._store is not None and self._reconciler is not None
        results = []
        for secret in secret_documents:  # first: the deployments applied with them read them when planned
            changed = self._store.put_secret(secret)
            namespace, name = secret.key
            action = "configured" if changed else "unchanged"
            results.append({"kind": "Secret", "namespace": namespace, "name": name, "action": action})
        for deployment in deployments:
            namespace, name = deployment.key
            existed = any(s.deployment.key == deployment.key for s in self._reconciler.deployments)
            _, changed = self._store.put(deployment, base_dir)
            action = "configured" if existed else "created"
            results.append(
                {"namespace": namespace, "name": name, "action": action if changed else "unchanged"}
            )
        await self._reconciler.reconcile()
        return results

    async def delete(self, namespace: str, name: str) -> bool:
        assert self._store is not None and self._reconciler is not None
        deleted = self._store.delete(namespace, name)
        if deleted:
            await self._reconciler.reconcile()
        return deleted

    def describe(self, namespace: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        assert self._reconciler is not None
        return describe(self._reconciler, self.gateway_url, namespace, name)

    def info(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway_url,
            "envoy_admin": str(self.envoy.admin_socket) if self.envoy else "",
            "extproc_metrics": self._graphs.metrics_url if self._graphs else None,
            "control": self.control_url,
            "pid": os.getpid(),
            "started": self._started,
        }

    def render_metrics(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def scrape_endpoints(self) -> list[dict[str, Any]]:
        """Every Prometheus scrape endpoint of this mesh: control plane, extproc, Envoy and the runtimes
        (a runtime with no metrics endpoint is listed with `url: null`, so nothing is silently left out)."""
        endpoints: list[dict[str, Any]] = []
        if self.control_url:
            endpoints.append({"component": "control-plane", "url": f"{self.control_url}/metrics"})
        if self._graphs is not None and self._graphs.metrics_url:
            endpoints.append({"component": "extproc", "url": self._graphs.metrics_url})
        if self.envoy is not None:
            endpoints.append({"component": "envoy", "url": f"{self.envoy_stats_url}/stats/prometheus"})
        for deployment in self.describe():
            namespace = deployment["metadata"].get("namespace", "default")
            name = deployment["metadata"]["name"]
            for component in deployment["status"]["components"]:
                url = component.get("metrics")
                endpoint = {
                    "component": f"runtime {namespace}/{name}/{component['predictor']}/{component['node']}",
                    "url": url,
                }
                if url is None:
                    endpoint["note"] = (
                        "no runtime process here (an external server, or a node that cannot run)"
                    )
                endpoints.append(endpoint)
        return endpoints

    @property
    def gateway_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.gateway_port}"

    # -- lifecycle ----------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    async def run(
        self,
        initial: Sequence[tuple[list[SeldonDeployment], Path]] = (),
        secret_documents: Sequence[SecretDocument] = (),
    ) -> None:
        """Start everything, apply `initial` (and the Secrets beside it), serve until stopped, then stop
        every child."""
        settings = self.settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        settings.state_dir.chmod(0o700)  # the store, spool, logs and control file are the owner's alone
        _refuse_second_instance(settings)
        settings.control_file.unlink(missing_ok=True)  # a killed owner's: the CLI must not call it
        records = PidRecords(settings.pid_dir)
        records.stop_leftovers(settings.stop_grace_s)  # before binding anything they may hold
        _require_free_port(settings.host, settings.gateway_port)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        async with contextlib.AsyncExitStack() as stack:
            self._store = StateStore(settings.db_path)
            stack.callback(self._store.close)
            xds = XdsPlane(NODE_ID, settings.host, delta=settings.xds_delta, registry=self.registry)
            await xds.start()
            stack.push_async_callback(xds.stop)
            reflection_server, reflection_port = await start_reflection_server(settings.host)
            stack.push_async_callback(reflection_server.stop, 1.0)
            supervisor = Supervisor(
                SupervisorSettings(
                    host=settings.host,
                    log_dir=settings.log_dir,
                    ready_timeout_s=settings.ready_timeout_s,
                    backoff_initial_s=settings.restart_backoff_initial_s,
                    backoff_max_s=settings.restart_backoff_max_s,
                    stop_grace_s=settings.stop_grace_s,
                    pid_dir=settings.pid_dir,
                    liveness=settings.liveness,
                    gateway_url=self.gateway_url,
                ),
                on_change=self._schedule_refresh,
            )
            stack.push_async_callback(supervisor.stop_all)
            grpc_port, metrics_port, rest_port = free_ports(settings.host, 3)
            graphs = GraphExecutorProcess(
                settings.host,
                grpc_port,
                settings.state_dir,
                settings.log_dir,
                settings.restart_backoff_initial_s,
                settings.restart_backoff_max_s,
                metrics_port=metrics_port,
                rest_port=rest_port if settings.graph_edge != "ext_proc" else None,
                records=records,
                liveness=settings.liveness,
            )
            self._graphs = graphs
            graphs.start()
            stack.push_async_callback(graphs.stop, settings.stop_grace_s)
            gateway = GatewaySettings(
                listen_host=settings.host,
                listen_port=settings.gateway_port,
                reflection=Upstream(settings.host, reflection_port),
                extproc=graphs.upstream,
                extproc_rest=graphs.rest_upstream,
                extproc_http=settings.graph_edge == "ext_proc-http",
                scoped=True,  # one RouteConfiguration per deployment: an apply re-parses only its own
                tracing=(
                    settings_from_otlp_endpoint(
                        settings.tracing.otlp_endpoint, settings.tracing.sampling_ratio
                    )
                    if settings.tracing is not None
                    else None
                ),
            )
            render = _renderer(gateway, self._translate)

            def render_and_feed(
                deployments: Sequence[SeldonDeployment],
                endpoints: Mapping[ComponentKey, ComponentEndpoints],
                change: Change | None,
            ) -> Snapshot:
                # Every publish also hands the graph executor the graphs and their node endpoints.
                graphs.publish(deployments, endpoints)
                return render(deployments, endpoints, change)

            self._reconciler = Reconciler(
                self._store, supervisor, xds, render_and_feed, settings.runtime_workers
            )
            stack.push_async_callback(self._reconciler.close)  # before the supervisor stops everything
            for secret in secret_documents:
                self._store.put_secret(secret)
            for deployments, base_dir in initial:
                for deployment in deployments:
                    self._store.put(deployment, base_dir)
            await self._reconciler.reconcile()
            await self._start_envoy(stack, xds, records)
            server = await self._start_control_api(stack)
            log.info("gateway %s, control API %s", self.gateway_url, self.control_url)
            print(f"seldon-mesh is up: gateway {self.gateway_url}  (Ctrl-C stops it)", flush=True)
            await self._stopping.wait()
            server.should_exit = True
        settings.control_file.unlink(missing_ok=True)

    async def _start_envoy(
        self, stack: contextlib.AsyncExitStack, xds: XdsPlane, records: PidRecords
    ) -> None:
        """Envoy, its admin API on the owner's Unix socket and only its stats on a loopback port."""
        settings = self.settings
        stats_port = settings.envoy_stats_port or free_port(settings.host)
        self.envoy_stats_url = f"http://127.0.0.1:{stats_port}"
        self.envoy = EnvoyProcess(
            xds.bootstrap(
                str(settings.envoy_admin_socket.absolute()),
                stats_port,
                tracer_runtime(settings.tracing.flush_interval_ms) if settings.tracing else None,
            ),
            workdir=settings.state_dir / "envoy",
            log_level=settings.envoy_log_level,
            launcher=guard_prefix(),
        )
        envoy = self.envoy
        envoy.spawn()  # in the loop thread, which lives as long as `up` (the death signal is tied to it)
        assert envoy.pid is not None
        records.record(envoy.pid, "envoy", group=False)
        stack.callback(records.forget, envoy.pid)
        stack.push_async_callback(asyncio.to_thread, envoy.stop)
        await asyncio.to_thread(envoy.wait_started)
        (envoy.workdir / "envoy.pid").write_text(str(envoy.pid))

    async def _start_control_api(self, stack: contextlib.AsyncExitStack) -> uvicorn.Server:
        settings = self.settings
        port = settings.control_port or free_port(settings.host)
        config = uvicorn.Config(
            create_control_app(self, self.control_token),
            host=settings.host,
            port=port,
            log_level="warning",
            lifespan="off",
        )
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve())

        async def _stop() -> None:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(_stop)
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        self.control_url = f"http://{settings.host}:{port}"
        record = {"url": self.control_url, "pid": os.getpid(), "token": self.control_token}
        _write_private(settings.control_file, json.dumps(record))
        return server

    def _schedule_refresh(self) -> None:
        if self._refresh_scheduled or self._reconciler is None:
            return
        self._refresh_scheduled = True

        def _run() -> None:
            self._refresh_scheduled = False
            if self._reconciler is not None:
                self._reconciler.refresh()

        asyncio.get_running_loop().call_soon(_run)


def _renderer(gateway: GatewaySettings, translate_fn: Translate | None) -> Render:
    """The incremental builder (only changed deployments are re-rendered), or `translate_fn` in full."""
    if translate_fn is None:
        builder = SnapshotBuilder(gateway)

        def build(
            deployments: Sequence[SeldonDeployment],
            endpoints: Mapping[ComponentKey, ComponentEndpoints],
            change: Change | None,
        ) -> Snapshot:
            if change is None:
                return builder.build(deployments, endpoints)
            return builder.update(change.changed, change.removed, endpoints)

        return build

    def render(
        deployments: Sequence[SeldonDeployment],
        endpoints: Mapping[ComponentKey, ComponentEndpoints],
        change: Change | None,
    ) -> Snapshot:
        return Snapshot.of(translate_fn(deployments, endpoints, gateway).all())

    return render


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: `up` handles SIGINT/SIGTERM and stops everything in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read, created so (never world-readable for a moment)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _refuse_second_instance(settings: LocalSettings) -> None:
    try:
        pid = int(json.loads(settings.control_file.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass
    raise MeshError(f"seldon-mesh is already running with state dir {settings.state_dir} (pid {pid})")


def _require_free_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise MeshError(
                f"gateway port {host}:{port} is in use ({error.strerror}); choose another with --port"
            ) from None
