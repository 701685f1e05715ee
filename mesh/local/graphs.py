"""The local graph executor: one supervised `python -m extproc` process, and the graph config it serves.

`seldon-mesh up` starts it once on a fixed port (so Envoy's extproc cluster never changes), restarts it
at once if it dies after serving (with backoff if it keeps dying at startup) or stops answering its gRPC
health check once it had (`liveness`: hung or stopped, not merely busy), and writes the graph
config file it watches every time the reconciler publishes (deployments plus the endpoints of their
serving components). The file is the versioned, atomic contract of `extproc/config.py` (schema 1), built
by `mesh.spec.extproc_config` (which the Kubernetes renderer shares); this module writes JSON only and
imports nothing of extproc.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

from mesh.local.activity import group_activity
from mesh.local.children import PidRecords, guard_prefix
from mesh.local.liveness import (
    LivenessCheck,
    LivenessPolicy,
    Outcome,
    Verdict,
    probe_grpc_health,
    watch_liveness,
)
from mesh.spec import PredictiveUnit, PredictorSpec, SeldonDeployment, extproc_config
from xds_controller.translate import ComponentEndpoints, ComponentKey, Upstream

log = logging.getLogger(__name__)

SCHEMA = extproc_config.SCHEMA
# An extproc that ran this long had started serving: one that exits sooner is crash-looping.
SERVED_S = 5.0
NODE_PROTOCOL_ANNOTATION = extproc_config.NODE_PROTOCOL_ANNOTATION
STARTING_POLL_S = 0.2
# A run whose health check has not answered this long after it started is restarted (Kubernetes'
# startupProbe); extproc imports and binds in a few seconds, ~20 on a loaded laptop.
STARTUP_ALLOWANCE_S = 120.0
HUNG_GRACE_S = 5.0  # SIGTERM to SIGKILL for a run stopped for not answering (`up`'s stop grace)


def _address(upstreams: Sequence[Upstream]) -> str | None:
    return f"{upstreams[0].host}:{upstreams[0].port}" if upstreams else None


def graph_config(
    deployments: Sequence[SeldonDeployment], endpoints: Mapping[ComponentKey, ComponentEndpoints]
) -> dict[str, Any]:
    """The document extproc serves (`mesh.spec.extproc_config`), nodes at the endpoints reconciled here."""

    def addresses(
        deployment: SeldonDeployment, predictor: PredictorSpec, node: PredictiveUnit
    ) -> extproc_config.NodeAddress:
        namespace, name = deployment.key
        found = endpoints.get(ComponentKey(namespace, name, predictor.name, node.name), ComponentEndpoints())
        return extproc_config.NodeAddress(_address(found.http), _address(found.grpc))

    return extproc_config.graph_config(deployments, addresses)


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
        records: PidRecords | None = None,
        liveness: LivenessPolicy | None = None,
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
        self._records = records
        self._liveness = liveness or LivenessPolicy()
        self._hung: str | None = None  # why the last run was stopped for not answering
        self.answered = False  # this run's health check has answered: its liveness is checked

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
        if self._records is not None:
            self._records.forget(process.pid)

    async def _watched(self, process: asyncio.subprocess.Process) -> int:
        """Wait for the run to exit, its liveness checked meanwhile; its exit code."""
        watcher = asyncio.create_task(self._watch_liveness(process))
        try:
            return await process.wait()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_liveness(self, process: asyncio.subprocess.Process) -> None:
        """Once the health check first answers: the liveness policy on it; a dead verdict restarts."""
        policy = self._liveness
        loop = asyncio.get_running_loop()
        self.answered = False
        async with grpc.aio.insecure_channel(f"{self.upstream.host}:{self.upstream.port}") as channel:
            reason = await self._started(channel, loop.time() + STARTUP_ALLOWANCE_S)
            if reason is None:
                self.answered = True
                verdict = await watch_liveness(
                    LivenessCheck(policy, loop.time()),
                    lambda: probe_grpc_health(channel, policy.timeout_s),
                    lambda: group_activity(process.pid),
                    _report,
                )
                reason = verdict.reason
        self._hung = f"stopped: {reason} (port {self.upstream.port}, pid {process.pid})"
        log.warning("extproc: restarting it: %s", self._hung)
        for sig in (signal.SIGTERM, signal.SIGCONT):  # SIGCONT: a stopped process gets the TERM
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), HUNG_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    async def _started(self, channel: grpc.aio.Channel, deadline: float) -> str | None:
        """None once the health check answers; why not, if it has not by `deadline`."""
        loop = asyncio.get_running_loop()
        while True:
            probe = await probe_grpc_health(channel, self._liveness.timeout_s)
            if probe.outcome is Outcome.ANSWERED:
                return None
            if loop.time() > deadline:
                return f"no answer to its health check {STARTUP_ALLOWANCE_S:.0f}s after it started"
            await asyncio.sleep(STARTING_POLL_S)

    async def _keep_alive(self) -> None:
        backoff = self._backoff[0]
        loop = asyncio.get_running_loop()
        while True:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            args = [
                *guard_prefix(), sys.executable, "-m", "extproc",
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
            pid = self._process.pid
            (self._state_dir / "extproc.pid").write_text(str(pid))
            if self._records is not None:
                self._records.record(pid, "extproc", group=True)
            started = loop.time()
            code = await self._watched(self._process)
            if self._records is not None:
                self._records.forget(pid)
            if loop.time() - started > SERVED_S:  # it served (was killed): back at once, 503 until then
                delay, backoff = 0.0, self._backoff[0]
            else:
                delay, backoff = backoff, min(backoff * 2, self._backoff[1])
            hung, self._hung = self._hung, None
            why = hung or f"exited with code {code}"
            log.warning("extproc %s; restarting in %.1fs", why, delay)
            await asyncio.sleep(delay)


def _report(verdict: Verdict) -> None:
    log.log(logging.WARNING if verdict.counted else logging.INFO, "extproc: %s", verdict.reason)
