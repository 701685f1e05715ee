"""The process supervisor: one runtime process per component, restarted with backoff, watched for readiness.

It owns processes and nothing else: it does not know about Envoy or specs beyond `ComponentPlan`. Whenever a
component's observable state changes it calls `on_change`, and the reconciler decides what to push.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import httpx

from mesh.local.plan import ComponentPlan, RuntimeLaunch
from xds_controller.translate import ComponentEndpoints, ComponentKey, Upstream

log = logging.getLogger(__name__)

READY_POLL_S = 0.2
HEALTH_POLL_S = 1.0
# Consecutive failed probes before a Ready runtime is taken out of rotation: Kubernetes' readinessProbe
# failureThreshold default. One probe lost to a busy machine (the 2 s probe timeout) must not pull a
# healthy runtime's endpoints from Envoy and extproc; a runtime that exits is noticed at once anyway.
READY_FAILURE_THRESHOLD = 3
CRASH_LOOP_RESTARTS = 3
NO_ENDPOINTS = ComponentEndpoints(http=(), grpc=())


class _Keep:
    """Marks "leave unchanged" where None is a meaningful value (a process with no pid)."""


KEEP = _Keep()


class ComponentState(StrEnum):
    STARTING = "Starting"
    READY = "Ready"
    NOT_READY = "NotReady"
    CRASHED = "CrashLoopBackOff"
    FAILED = "Failed"
    EXTERNAL = "External"


@dataclass(frozen=True)
class ComponentStatus:
    state: ComponentState
    reason: str = ""
    restarts: int = 0
    endpoints: ComponentEndpoints = NO_ENDPOINTS
    pid: int | None = None
    metrics_url: str | None = None  # the runtime's Prometheus scrape; None for external components

    @property
    def serving(self) -> bool:
        return self.state in (ComponentState.READY, ComponentState.EXTERNAL)


def free_port(host: str) -> int:
    return free_ports(host, 1)[0]


def free_ports(host: str, count: int) -> list[int]:
    """`count` distinct ports free now. The sockets stay bound until all are picked: one closed before
    the next bind lets the kernel hand out the same port again (a runtime once got one port for REST
    and gRPC, and never became ready)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


@dataclass(frozen=True)
class SupervisorSettings:
    host: str
    log_dir: Path
    ready_timeout_s: float
    backoff_initial_s: float
    backoff_max_s: float
    stop_grace_s: float


class RuntimeProcess:
    """Keeps one runtime process alive: start, wait until ready, watch, restart with exponential backoff."""

    def __init__(
        self,
        key: ComponentKey,
        launch: RuntimeLaunch,
        settings: SupervisorSettings,
        on_change: Callable[[], None],
    ) -> None:
        self.key = key
        self.launch = launch
        self._settings = settings
        self._on_change = on_change
        self._pick_ports()
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self.status = ComponentStatus(
            ComponentState.STARTING, endpoints=self.endpoints, metrics_url=self.metrics_url
        )

    def _pick_ports(self) -> None:
        host = self._settings.host
        self._http_port, self._grpc_port, self._metrics_port = free_ports(host, 3)

    @property
    def endpoints(self) -> ComponentEndpoints:
        host = self._settings.host
        return ComponentEndpoints(
            http=(Upstream(host, self._http_port),), grpc=(Upstream(host, self._grpc_port),)
        )

    @property
    def metrics_url(self) -> str:
        return f"http://{self._settings.host}:{self._metrics_port}/prometheus"

    @property
    def log_path(self) -> Path:
        return self._settings.log_dir / f"{'.'.join(self.key)}.log"

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_alive(), name=f"runtime {'/'.join(self.key)}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._terminate()

    def _set(
        self,
        *,
        state: ComponentState | None = None,
        reason: str | None = None,
        restarts: int | None = None,
        pid: int | _Keep | None = KEEP,
    ) -> None:
        current = self.status
        new = replace(
            current,
            state=current.state if state is None else state,
            reason=current.reason if reason is None else reason,
            restarts=current.restarts if restarts is None else restarts,
            pid=current.pid if isinstance(pid, _Keep) else pid,
        )
        if new != current:
            self.status = new
            self._on_change()

    async def _keep_alive(self) -> None:
        restarts = 0
        backoff = self._settings.backoff_initial_s
        while True:
            started = time.monotonic()
            exit_reason = await self._run_once(restarts)
            restarts += 1
            if time.monotonic() - started > 60:  # it served for a while: forget earlier crashes
                backoff = self._settings.backoff_initial_s
            state = ComponentState.FAILED if restarts >= CRASH_LOOP_RESTARTS else ComponentState.CRASHED
            self._set(
                state=state,
                reason=f"{exit_reason}; restarting in {backoff:.1f}s",
                restarts=restarts,
                pid=None,
            )
            log.warning("component %s: %s", "/".join(self.key), self.status.reason)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._settings.backoff_max_s)
            # Fresh ports for the next run: a port picked free may since have been taken (another
            # process, or an outgoing connection's ephemeral port), and retrying it would fail forever.
            self._pick_ports()
            self.status = replace(self.status, endpoints=self.endpoints, metrics_url=self.metrics_url)

    async def _run_once(self, restarts: int) -> str:
        """Run the process until it exits; returns why it exited."""
        self._settings.log_dir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "model_runtime", *self.launch.args,
            "--host", self._settings.host,
            "--http-port", str(self._http_port),
            "--grpc-port", str(self._grpc_port),
            "--metrics-port", str(self._metrics_port),
        ]  # fmt: skip
        env = {**os.environ, **self.launch.env, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log_file:
            self._process = await asyncio.create_subprocess_exec(
                *args,
                cwd=self.launch.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )
        process = self._process
        if self.status.state not in (ComponentState.CRASHED, ComponentState.FAILED):
            self._set(state=ComponentState.STARTING, reason="loading", restarts=restarts, pid=process.pid)
        else:
            self._set(pid=process.pid)
        watcher = asyncio.create_task(self._watch_health(process))
        try:
            code = await process.wait()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        return f"exited with code {code}{self._log_tail()}"

    async def _watch_health(self, process: asyncio.subprocess.Process) -> None:
        """Poll `/ready`: 200 is Ready; a load failure (or no readiness by the deadline) is Failed."""
        url = f"http://{self._settings.host}:{self._http_port}/ready"
        deadline = time.monotonic() + self._settings.ready_timeout_s
        failures = 0
        async with httpx.AsyncClient(timeout=2.0) as client:
            while process.returncode is None:
                probe = await _probe(client, url)
                failures = 0 if probe.ready else failures + 1
                if probe.ready:
                    self._set(state=ComponentState.READY, reason="")
                elif probe.load_failed:
                    self._set(state=ComponentState.FAILED, reason=probe.info)
                elif self.status.state == ComponentState.READY:
                    if failures >= READY_FAILURE_THRESHOLD:
                        self._set(state=ComponentState.NOT_READY, reason=probe.info or "not ready")
                elif time.monotonic() > deadline:
                    self._set(
                        state=ComponentState.FAILED,
                        reason=f"not ready after {self._settings.ready_timeout_s:.0f}s {probe.info}".strip(),
                    )
                poll = HEALTH_POLL_S if self.status.state == ComponentState.READY else READY_POLL_S
                await asyncio.sleep(poll)

    async def _terminate(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), self._settings.stop_grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        # the group may still hold worker processes whose leader has exited
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        tail = " | ".join(line.strip() for line in text[-lines:] if line.strip())
        return f": {tail}" if tail else ""


@dataclass(frozen=True)
class Probe:
    ready: bool
    info: str = ""
    load_failed: bool = False


async def _probe(client: httpx.AsyncClient, url: str) -> Probe:
    """Read the runtime's `/ready`: its 503 body is Seldon's error JSON, `reason` says loading or failed."""
    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return Probe(ready=False)
    if response.status_code == 200:
        return Probe(ready=True)
    try:
        status = response.json()["status"]
        info, reason = str(status.get("info", "")), str(status.get("reason", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        info, reason = response.text[:300], ""
    return Probe(ready=False, info=info, load_failed="FAIL" in reason.upper())


class Supervisor:
    """All runtime processes of the local mesh, keyed by component."""

    def __init__(self, settings: SupervisorSettings, on_change: Callable[[], None]) -> None:
        self._settings = settings
        self._on_change = on_change
        self._processes: dict[ComponentKey, RuntimeProcess] = {}
        self._static: dict[ComponentKey, ComponentStatus] = {}

    def status(self, key: ComponentKey) -> ComponentStatus | None:
        if key in self._processes:
            return self._processes[key].status
        return self._static.get(key)

    def endpoints(self) -> dict[ComponentKey, ComponentEndpoints]:
        """Endpoints of every component that can take traffic now; the others get none (Envoy answers 503)."""
        result: dict[ComponentKey, ComponentEndpoints] = {}
        for key, process in self._processes.items():
            if process.status.serving:
                result[key] = process.endpoints
        for key, status in self._static.items():
            if status.serving:
                result[key] = status.endpoints
        return result

    async def apply(self, plans: list[ComponentPlan]) -> list[RuntimeProcess]:
        """Start what is new or changed; return the processes `plans` no longer need (to stop later)."""
        wanted = {plan.key: plan for plan in plans}
        self._static = {}
        for key, plan in wanted.items():
            if plan.external is not None:
                self._static[key] = ComponentStatus(ComponentState.EXTERNAL, endpoints=plan.external)
            elif plan.error is not None:
                self._static[key] = ComponentStatus(ComponentState.FAILED, reason=plan.error)
        obsolete: list[RuntimeProcess] = []
        for key, process in list(self._processes.items()):
            launch = wanted[key].launch if key in wanted else None
            if launch is None or launch.fingerprint != process.launch.fingerprint:
                obsolete.append(self._processes.pop(key))
        for key, wanted_plan in wanted.items():
            if wanted_plan.launch is not None and key not in self._processes:
                process = RuntimeProcess(key, wanted_plan.launch, self._settings, self._on_change)
                self._processes[key] = process
                process.start()
        return obsolete

    async def stop_all(self) -> None:
        processes = list(self._processes.values())
        self._processes.clear()
        await asyncio.gather(*(p.stop() for p in processes))
