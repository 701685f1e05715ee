"""One runtime process kept alive: started on fresh ports, watched for readiness and liveness, restarted.

A run that got ready and then dies, stops answering (`liveness`: hung or stopped, not merely busy) or
answers only "not ready" for too long (`readiness`) is restarted at once; one that never got ready is
restarted with exponential backoff and, after a few such runs, is Failed. `supervisor` groups these
into components and replicas; this module knows one process.
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
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import httpx

from mesh.local.activity import group_activity
from mesh.local.children import PidRecords, guard_prefix
from mesh.local.liveness import (
    LIVENESS_PATH,
    LivenessCheck,
    LivenessPolicy,
    Verdict,
    probe_live,
    watch_liveness,
)
from mesh.local.plan import RuntimeLaunch
from mesh.local.readiness import (
    READY_FAILURE_THRESHOLD,
    READY_PROBE_TIMEOUT_S,
    BusySilence,
    NotServing,
    probe_ready,
)
from xds_controller.translate import ComponentEndpoints, ComponentKey, Upstream

log = logging.getLogger(__name__)

READY_POLL_S = 0.2
HEALTH_POLL_S = 1.0
# Runs in a row that exit before getting ready, after which the component is Failed (it keeps retrying).
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
class Restart:
    """Why the last run of a process ended (Kubernetes' lastState.terminated), and when (epoch seconds)."""

    reason: str
    at: float


@dataclass(frozen=True)
class ComponentStatus:
    state: ComponentState
    reason: str = ""
    restarts: int = 0
    last_restart: Restart | None = None
    endpoints: ComponentEndpoints = NO_ENDPOINTS
    pid: int | None = None
    metrics_url: str | None = None  # the runtime's Prometheus scrape; None for external components
    replicas: tuple[ComponentStatus, ...] = ()  # each replica's own status (for a component)

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
    pid_dir: Path | None = None  # where each runtime's pid is recorded while it runs (`PidRecords`)
    # When a runtime that got ready is restarted for not answering (`liveness`): hung, stopped or its
    # listener gone, not busy with a long predict or waiting for a CPU on a loaded machine.
    liveness: LivenessPolicy = field(default_factory=LivenessPolicy)
    gateway_url: str | None = None  # SELDON_MESH_GATEWAY_URL of the children (explainers call through it)


class RuntimeProcess:
    """Keeps one runtime process alive: start, wait until ready, watch, restart. A run that got ready is
    restarted at once (it was killed, or died serving); one that never did, with exponential backoff."""

    def __init__(
        self,
        key: ComponentKey,
        launch: RuntimeLaunch,
        settings: SupervisorSettings,
        on_change: Callable[[], None],
        replica: int = 0,
    ) -> None:
        self.key = key
        self.launch = launch
        self.replica = replica
        self._settings = settings
        self._on_change = on_change
        self._records = PidRecords(settings.pid_dir) if settings.pid_dir is not None else None
        self._pick_ports()
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._reached_ready = False
        self._served = asyncio.Event()  # this run got ready: its liveness is checked from then on
        self._hung: str | None = None  # why this run was killed for not answering
        self.liveness: LivenessCheck | None = None  # this run's liveness decision, once it got ready
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
        suffix = f".{self.replica}" if self.replica else ""
        return self._settings.log_dir / f"{'.'.join(self.key)}{suffix}.log"

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
        if new.state is ComponentState.READY:
            self._reached_ready = True
            self._served.set()
        if new != current:
            self.status = new
            self._on_change()

    async def _keep_alive(self) -> None:
        restarts = 0
        crashes = 0  # runs in a row that exited before getting ready
        backoff = self._settings.backoff_initial_s
        while True:
            self._reached_ready = False
            exit_reason = await self._run_once(restarts)
            restarts += 1
            if self._reached_ready:  # it served: back at once, the client sees 503 only until it is ready
                crashes, delay, backoff = 0, 0.0, self._settings.backoff_initial_s
            else:
                crashes, delay = crashes + 1, backoff
                backoff = min(backoff * 2, self._settings.backoff_max_s)
            state = ComponentState.FAILED if crashes >= CRASH_LOOP_RESTARTS else ComponentState.CRASHED
            self.status = replace(self.status, last_restart=Restart(exit_reason, time.time()))
            self._set(
                state=state,
                reason=f"{exit_reason}; restarting in {delay:.1f}s",
                restarts=restarts,
                pid=None,
            )
            log.warning("component %s: restart %d: %s", "/".join(self.key), restarts, self.status.reason)
            await asyncio.sleep(delay)
            # Fresh ports for the next run: a port picked free may since have been taken (another
            # process, or an outgoing connection's ephemeral port), and retrying it would fail forever.
            self._pick_ports()
            self.status = replace(self.status, endpoints=self.endpoints, metrics_url=self.metrics_url)

    async def _run_once(self, restarts: int) -> str:
        """Run the process until it exits; returns why it exited."""
        self._settings.log_dir.mkdir(parents=True, exist_ok=True)
        program = self.launch.program or (sys.executable, "-m", "model_runtime")
        args = [
            *guard_prefix(), *program, *self.launch.args,
            "--host", self._settings.host,
            "--http-port", str(self._http_port),
            "--grpc-port", str(self._grpc_port),
            "--metrics-port", str(self._metrics_port),
        ]  # fmt: skip
        env = {**os.environ, **self.launch.env, "PYTHONUNBUFFERED": "1"}
        if self._settings.gateway_url:
            env["SELDON_MESH_GATEWAY_URL"] = self._settings.gateway_url
        with self.log_path.open("ab") as log_file:
            log_start = log_file.tell()  # the file holds earlier runs too: the exit reason quotes this one
            self._process = await asyncio.create_subprocess_exec(
                *args,
                cwd=self.launch.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,  # its own group: stopping it stops any workers it started
            )
        process = self._process
        if self._records is not None:
            self._records.record(process.pid, f"runtime {'/'.join(self.key)}", group=True)
        if self.status.state not in (ComponentState.CRASHED, ComponentState.FAILED):
            self._set(state=ComponentState.STARTING, reason="loading", restarts=restarts, pid=process.pid)
        else:
            self._set(pid=process.pid)
        self._served = asyncio.Event()
        watchers = [
            asyncio.create_task(self._watch_health(process)),
            asyncio.create_task(self._watch_liveness(process)),
        ]
        try:
            code = await process.wait()
        finally:
            for watcher in watchers:
                watcher.cancel()
            for watcher in watchers:
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        self._forget(process)
        hung, self._hung = self._hung, None
        return hung or f"exited with code {code}{self._log_tail(log_start)}"

    def _forget(self, process: asyncio.subprocess.Process) -> None:
        if self._records is not None:
            self._records.forget(process.pid)

    async def _watch_health(self, process: asyncio.subprocess.Process) -> None:
        """Poll `/ready`: 200 is Ready; a load failure (or no readiness by the deadline) is Failed. The
        deadline is the startup allowance: liveness is checked only once the run got ready."""
        url = f"http://{self._settings.host}:{self._http_port}/ready"
        ready_timeout_s = self.launch.ready_timeout_s or self._settings.ready_timeout_s
        deadline = time.monotonic() + ready_timeout_s
        failures = 0
        silent = 0  # unanswered probes in a row while the runtime was not busy either
        not_serving = NotServing(self._settings.liveness)
        silence = BusySilence(lambda: group_activity(process.pid))
        async with httpx.AsyncClient(timeout=READY_PROBE_TIMEOUT_S) as client:
            while process.returncode is None and self._hung is None:
                probe = await probe_ready(client, url)
                if self._hung is not None:  # the liveness check is restarting this run
                    return
                busy = silence.busy(probe, time.monotonic())
                failures = 0 if probe.ready or busy else failures + 1
                silent = 0 if probe.answered or busy else silent + 1
                if self._reached_ready and not_serving.too_long(probe, time.monotonic()):
                    await self._restart_run(process, not_serving.reason(probe))
                    return
                if probe.ready:
                    self._set(state=ComponentState.READY, reason="")
                elif probe.load_failed:
                    self._set(state=ComponentState.FAILED, reason=probe.info)
                elif self.status.state == ComponentState.READY:
                    if failures >= READY_FAILURE_THRESHOLD:
                        self._set(state=ComponentState.NOT_READY, reason=probe.info or "not ready")
                elif not self._reached_ready and time.monotonic() > deadline:
                    if silent >= READY_FAILURE_THRESHOLD:  # hung or stopped while starting
                        await self._restart_run(process, _silent_start(ready_timeout_s, process.pid))
                        return
                    self._set(
                        state=ComponentState.FAILED,
                        reason=f"not ready after {ready_timeout_s:.0f}s {probe.info}".strip(),
                    )
                poll = HEALTH_POLL_S if self.status.state == ComponentState.READY else READY_POLL_S
                await asyncio.sleep(poll)

    async def _watch_liveness(self, process: asyncio.subprocess.Process) -> None:
        """From the run's first Ready on: `GET /live` by the policy; a dead verdict restarts the run."""
        await self._served.wait()
        policy = self._settings.liveness
        url = f"http://{self._settings.host}:{self._http_port}{LIVENESS_PATH}"
        self.liveness = LivenessCheck(policy, asyncio.get_running_loop().time())
        async with httpx.AsyncClient(timeout=None) as client:  # the probe's own deadline applies
            verdict = await watch_liveness(
                self.liveness,
                lambda: probe_live(client, url, policy.timeout_s),
                lambda: group_activity(process.pid),
                self._report_liveness,
            )
        await self._restart_run(process, verdict.reason)

    def _report_liveness(self, verdict: Verdict) -> None:
        """A failed probe is a warning; a busy stretch is told once (then at debug level)."""
        quiet = verdict.busy and self.liveness is not None and self.liveness.busy_streak > 1
        level = logging.WARNING if verdict.counted else logging.DEBUG if quiet else logging.INFO
        log.log(level, "component %s: %s", "/".join(self.key), verdict.reason)

    async def _restart_run(self, process: asyncio.subprocess.Process, reason: str) -> None:
        """Out of the endpoints first, then SIGTERM (with SIGCONT, so a stopped process gets it), and
        SIGKILL after the grace; `_keep_alive` restarts it at once, as it had served."""
        if self._hung is not None:  # the other check got there first
            return
        self._hung = f"{reason} (port {self._http_port}, pid {process.pid})"
        log.warning("component %s: restarting it: %s", "/".join(self.key), self._hung)
        self._set(state=ComponentState.NOT_READY, reason=self._hung)
        for sig in (signal.SIGTERM, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), self._settings.stop_grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

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
        self._forget(process)

    def _log_tail(self, start: int, lines: int = 3) -> str:
        """The last `lines` this run wrote (the file's tail is bounded: a chatty run wrote megabytes)."""
        try:
            with self.log_path.open("rb") as log_file:
                size = log_file.seek(0, os.SEEK_END)
                log_file.seek(max(start, size - 16384))
                text = log_file.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        tail = " | ".join(line.strip() for line in text[-lines:] if line.strip())
        return f": {tail}" if tail else ""


def _silent_start(ready_timeout_s: float, pid: int) -> str:
    """Why a run that never got ready is restarted: Kubernetes' startupProbe, for a silent one only (one
    that answers "loading" keeps loading, Failed, as a slow load may yet finish)."""
    reading = group_activity(pid)
    state = reading.described_state if reading is not None else "gone"
    return f"no answer to its readiness probe {ready_timeout_s:.0f}s after it started; the process is {state}"
