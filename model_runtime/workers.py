"""Running the runtime as one process, or as N worker processes sharing both ports via SO_REUSEPORT.

The parent only supervises: it restarts a worker that dies, forwards SIGTERM/SIGINT, waits for the
workers to stop gracefully and kills stragglers. Each worker asks the kernel to SIGTERM it if the parent
dies, so no worker outlives its supervisor.

Metrics of several workers: the parent sets `PROMETHEUS_MULTIPROC_DIR` to a fresh directory before the
first worker starts (prometheus_client reads it at import), every worker writes its values there, and the
parent serves the metrics port with all of them merged, marking a dead worker's live gauges gone.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from prometheus_client import CollectorRegistry

from model_runtime.server import StartupError, run_process, run_worker_process, serve_metrics
from model_runtime.settings import RuntimeSettings
from telemetry.exposition import Exposition

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_RESTART_BACKOFF = 1.0  # seconds between restarts of a crashing worker, so a crash loop cannot spin
_EXTRA_STOP_SECONDS = 5.0  # on top of the graceful period, before stragglers are killed
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )


def run(settings: RuntimeSettings) -> int:
    """Serve until told to stop; the process exit code."""
    if settings.server.workers == 1:
        return _serve_here(settings)
    return _supervise(settings)


def _serve_here(settings: RuntimeSettings, worker: int | None = None) -> int:
    try:
        if worker is None:
            run_process(settings)
        else:
            run_worker_process(settings, worker)
    except StartupError as exc:
        log.error("%s", exc)
        return 1
    return 0


def _worker_main(settings_json: str, index: int) -> None:
    _die_with_parent()
    settings = RuntimeSettings.model_validate_json(settings_json)
    configure_logging(settings.log_level)
    sys.exit(_serve_here(settings, index))


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the parent's own cleanup still applies
        pass


def _supervise(settings: RuntimeSettings) -> int:
    directory = Path(tempfile.mkdtemp(prefix="seldon-mesh-metrics-"))
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(directory)  # spawned workers inherit it before importing anything
    try:
        telemetry = settings.telemetry.model_copy(update={"multiprocess_dir": directory})
        settings = settings.model_copy(update={"telemetry": telemetry})
        exposition = Exposition(CollectorRegistry(), directory)
        try:
            serve_metrics(exposition, telemetry, settings.server.host)
        except StartupError as exc:
            log.error("%s", exc)
            return 1
        return _supervise_workers(settings, exposition)
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


def _supervise_workers(settings: RuntimeSettings, exposition: Exposition) -> int:
    context = multiprocessing.get_context("spawn")
    settings_json = settings.model_dump_json()
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def start(index: int) -> BaseProcess:
        process = context.Process(target=_worker_main, args=(settings_json, index), name=f"worker-{index}")
        process.start()
        log.info("started worker %d (pid %s)", index, process.pid)
        return process

    workers = [start(i) for i in range(settings.server.workers)]
    exit_code = 0
    while not stopping:
        wait([w.sentinel for w in workers], timeout=0.5)
        for index, worker in enumerate(workers):
            if worker.is_alive() or stopping:
                continue
            if worker.exitcode == 1:  # a startup error (port taken): restarting cannot help
                log.error("worker %d could not start; stopping", index)
                stopping, exit_code = True, 1
                break
            log.warning("worker %d exited with %s; restarting", index, worker.exitcode)
            if worker.pid is not None:
                exposition.worker_exited(worker.pid)
            time.sleep(_RESTART_BACKOFF)
            workers[index] = start(index)

    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            worker.terminate()
    deadline = time.monotonic() + settings.server.graceful_shutdown_seconds + _EXTRA_STOP_SECONDS
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            log.warning("worker %s did not stop in time; killing it", worker.pid)
            worker.kill()
            worker.join()
    return exit_code
