"""The process supervisor with real runtime processes: a runtime whose port was taken comes back on fresh
ports, one slow readiness probe does not pull a Ready runtime out of rotation, a runtime that stops
answering without dying (SIGSTOPped), answers only "not ready" after serving, or never answers at all
while starting is restarted, one that answers no probe because it is busy with long predicts is not,
and a stopped extproc is restarted too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import pytest

from mesh.local import runtime_process
from mesh.local.graphs import GraphExecutorProcess
from mesh.local.liveness import LivenessPolicy, LiveProbe, Outcome, probe_grpc_health
from mesh.local.plan import RuntimeLaunch
from mesh.local.readiness import READY_FAILURE_THRESHOLD, Probe, probe_ready
from mesh.local.supervisor import (
    ComponentState,
    ComponentStatus,
    RuntimeProcess,
    SupervisorSettings,
    free_ports,
)
from xds_controller.translate import ComponentKey

CLASSES = Path(__file__).resolve().parents[1] / "data" / "graphs"
KEY = ComponentKey("default", "dep", "main", "model")
# Probes every second, each given a second, three failures restart: a runtime that cannot answer is
# restarted within seconds, so a test shows it quickly (the defaults are Kubernetes' 10 s period).
QUICK = LivenessPolicy(period_s=1.0, timeout_s=1.0, failure_threshold=3)
DEFAULT_LIVENESS = LivenessPolicy()


def _process(
    tmp_path: Path,
    on_change: Callable[[], None] = lambda: None,
    liveness: LivenessPolicy = DEFAULT_LIVENESS,
    model: str = "Affine",
) -> RuntimeProcess:
    settings = SupervisorSettings(
        host="127.0.0.1",
        log_dir=tmp_path,
        ready_timeout_s=60.0,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        stop_grace_s=5.0,
        liveness=liveness,
    )
    launch = RuntimeLaunch(("--class", model, "--code-dir", str(CLASSES)), {}, CLASSES)
    return RuntimeProcess(KEY, launch, settings, on_change)


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_a_runtime_whose_port_was_taken_restarts_on_fresh_ports(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, ComponentStatus, int]:
        process = _process(tmp_path)
        taken = process.endpoints.http[0].port
        with socket.socket() as squatter:  # someone else binds the runtime's HTTP port first
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", taken))
            squatter.listen()
            process.start()
            try:
                await _until(lambda: process.status.state is ComponentState.READY, 90, "Ready")
                return taken, process.status, process.endpoints.http[0].port
            finally:
                await process.stop()

    taken, status, port = asyncio.run(scenario())
    assert port != taken
    assert status.restarts >= 1
    assert status.endpoints.http[0].port == port  # what `seldon-mesh get` shows is where it listens
    assert status.last_restart is not None  # why, from what that run logged
    assert "exited with code 1: " in status.last_restart.reason
    assert f"cannot serve REST on 127.0.0.1:{taken}" in status.last_restart.reason


def test_one_failed_probe_keeps_a_ready_runtime_in_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_probe = probe_ready
    failing = {"left": 0}
    seen: list[ComponentState] = []

    async def flaky_probe(client: httpx.AsyncClient, url: str) -> Probe:
        if failing["left"] > 0:
            failing["left"] -= 1
            return Probe(ready=False, answered=False)  # as a probe that timed out on a busy machine
        return await real_probe(client, url)

    monkeypatch.setattr(runtime_process, "probe_ready", flaky_probe)
    monkeypatch.setattr(runtime_process, "HEALTH_POLL_S", 0.05)

    async def scenario() -> None:
        process = _process(tmp_path, lambda: seen.append(process.status.state))
        process.start()
        try:
            await _until(lambda: process.status.state is ComponentState.READY, 90, "Ready")
            failing["left"] = READY_FAILURE_THRESHOLD - 1
            await _until(lambda: failing["left"] == 0, 10, "the failed probes")
            await asyncio.sleep(0.3)  # a few good probes after them
            assert process.status.state is ComponentState.READY
            failing["left"] = READY_FAILURE_THRESHOLD
            await _until(lambda: process.status.state is ComponentState.NOT_READY, 10, "NotReady")
            await _until(lambda: process.status.state is ComponentState.READY, 10, "Ready again")
        finally:
            await process.stop()

    asyncio.run(scenario())
    assert seen.count(ComponentState.NOT_READY) == 1


def test_a_runtime_that_stops_answering_is_restarted(tmp_path: Path) -> None:
    states: list[ComponentState] = []

    async def scenario() -> tuple[int, ComponentStatus, int]:
        process = _process(tmp_path, lambda: states.append(process.status.state), QUICK)
        process.start()
        try:
            await _until(lambda: process.status.state is ComponentState.READY, 90, "Ready")
            stopped = process.status.pid
            assert stopped is not None
            os.killpg(stopped, signal.SIGSTOP)  # alive, listening (the kernel still accepts), silent
            try:
                await _until(lambda: process.status.pid not in (stopped, None), 60, "a new process")
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(stopped, signal.SIGCONT)
            await _until(lambda: process.status.state is ComponentState.READY, 90, "Ready again")
            url = f"http://127.0.0.1:{process.endpoints.http[0].port}/api/v1.0/predictions"
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(url, json={"data": {"ndarray": [[1.0]]}})
            return stopped, process.status, answer.status_code
        finally:
            await process.stop()

    stopped, status, answered = asyncio.run(scenario())
    assert answered == 200
    assert status.restarts == 1
    assert ComponentState.NOT_READY in states  # out of the endpoints before it was killed
    with pytest.raises(ProcessLookupError):
        os.kill(stopped, 0)  # the stopped one was killed, not left behind
    assert status.last_restart is not None  # why, as `seldon-mesh get` shows it
    assert "liveness probe failed 3 times in a row" in status.last_restart.reason
    assert "the process is stopped" in status.last_restart.reason
    assert f"pid {stopped}" in status.last_restart.reason


def test_a_runtime_whose_model_was_unloaded_is_restarted(tmp_path: Path) -> None:
    """It answers, but only "not ready": a V2 repository unload sent to its port (the gateway refuses
    them) left it so for good. Once it has answered so for as long as a silent one is allowed, a fresh
    process loads the model again."""

    async def scenario() -> tuple[int, ComponentStatus, int]:
        process = _process(tmp_path, liveness=QUICK)
        process.start()
        try:
            await _until(lambda: process.status.state is ComponentState.READY, 90, "Ready")
            unloaded = process.status.pid
            assert unloaded is not None
            base = f"http://127.0.0.1:{process.endpoints.http[0].port}"
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(f"{base}/v2/repository/models/model/unload")
                assert answer.status_code == 200, answer.text
                await _until(lambda: process.status.pid not in (unloaded, None), 60, "a new process")
                await _until(lambda: process.status.state is ComponentState.READY, 90, "Ready again")
                base = f"http://127.0.0.1:{process.endpoints.http[0].port}"
                answer = await client.post(
                    f"{base}/api/v1.0/predictions", json={"data": {"ndarray": [[1.0]]}}
                )
            return unloaded, process.status, answer.status_code
        finally:
            await process.stop()

    unloaded, status, answered = asyncio.run(scenario())
    assert answered == 200
    assert status.restarts == 1
    assert status.last_restart is not None
    assert "answered not ready for 3s after it had served: model is unloaded" in status.last_restart.reason
    with pytest.raises(ProcessLookupError):
        os.kill(unloaded, 0)


def test_a_runtime_busy_with_long_predicts_is_not_restarted(tmp_path: Path) -> None:
    """User code runs on the runtime's event loop: while three predicts of 4 s each spin in turn, no probe
    is answered for 12 s, four times what `QUICK` allows a silent runtime. The runtime was working all
    that time, so it keeps running, stays in rotation and answers every request."""
    spin_s, requests = 4.0, 3

    states: list[ComponentState] = []

    async def scenario() -> tuple[list[int], ComponentStatus, int | None, int]:
        process = _process(tmp_path, lambda: states.append(process.status.state), QUICK, "Spinner")
        process.start()
        try:
            await _until(lambda: process.status.state is ComponentState.READY, 90, "Ready")
            pid = process.status.pid
            url = f"http://127.0.0.1:{process.endpoints.http[0].port}/api/v1.0/predictions"
            async with httpx.AsyncClient(timeout=120) as client:
                answers = await asyncio.gather(
                    *(client.post(url, json={"data": {"ndarray": [[spin_s]]}}) for _ in range(requests))
                )
            await _until(lambda: process.status.state is ComponentState.READY, 30, "Ready after it")
            assert process.liveness is not None
            return [a.status_code for a in answers], process.status, pid, process.liveness.busy_probes
        finally:
            await process.stop()

    statuses, status, pid, busy_probes = asyncio.run(scenario())
    assert statuses == [200] * requests
    assert status.restarts == 0 and status.last_restart is None
    assert status.pid == pid
    assert busy_probes >= QUICK.failure_threshold  # it did go unanswered: enough to restart it, if idle
    assert ComponentState.NOT_READY not in states  # and it stayed in rotation: its requests were served


def test_a_runtime_gets_three_distinct_ports_each_free() -> None:
    """Ports picked one socket at a time could repeat (the kernel may hand a closed socket's port out
    again); a runtime that got one port for REST and gRPC never became ready."""
    for _ in range(200):
        ports = free_ports("127.0.0.1", 3)
        assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_runtime_that_never_answers_while_starting_is_restarted(tmp_path: Path) -> None:
    """Past its ready timeout, one that says "loading" keeps loading; one that answers nothing and does
    nothing (here: a program that sleeps and never listens) is restarted, with backoff."""
    sleeper = RuntimeLaunch((), {}, None, (sys.executable, "-c", "import time; time.sleep(600)"), 2.0)

    async def scenario() -> ComponentStatus:
        process = _process(tmp_path)
        process.launch = sleeper
        process.start()
        try:
            await _until(lambda: process.status.restarts >= 1, 60, "a restart")
            return process.status
        finally:
            await process.stop()

    status = asyncio.run(scenario())
    assert status.state is ComponentState.CRASHED
    assert status.last_restart is not None
    reason = status.last_restart.reason
    assert "no answer to its readiness probe 2s after it started; the process is sleeping" in reason


def test_an_extproc_that_stops_answering_is_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The graph executor is supervised the same way, on its gRPC health check."""
    caplog.set_level(logging.WARNING, logger="mesh.local.graphs")

    async def scenario() -> tuple[int, int, LiveProbe]:
        port = free_ports("127.0.0.1", 1)[0]
        graphs = GraphExecutorProcess(
            "127.0.0.1", port, tmp_path, tmp_path / "logs", 0.05, 0.2, liveness=QUICK
        )
        graphs.publish([], {})
        graphs.start()
        try:
            await _until(lambda: graphs.answered, 90, "extproc to answer its health check")
            stopped = graphs.pid
            assert stopped is not None
            os.killpg(stopped, signal.SIGSTOP)
            try:
                await _until(lambda: graphs.pid not in (stopped, None), 60, "a new extproc")
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(stopped, signal.SIGCONT)
            await _until(lambda: graphs.answered, 90, "the new extproc to answer")
            restarted = graphs.pid
            assert restarted is not None
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return stopped, restarted, await probe_grpc_health(channel, 30.0)
        finally:
            await graphs.stop(5.0)

    stopped, restarted, probe = asyncio.run(scenario())
    assert probe.outcome is Outcome.ANSWERED
    assert restarted != stopped
    with pytest.raises(ProcessLookupError):
        os.kill(stopped, 0)
    restarts = [r.getMessage() for r in caplog.records if "restarting in" in r.getMessage()]
    assert len(restarts) == 1, restarts  # and it says why
    assert "liveness probe failed 3 times in a row" in restarts[0]
    assert "gRPC Health/Check unanswered after 1.0s; the process is stopped" in restarts[0]
