"""No answer without its events: SIGKILL the process that logs (extproc for a graph, the runtime for a
single model) under load; every request whose client got a 200 has its request and response events
delivered once the supervisor has the process back (they were in the spool before the answer left)."""

from __future__ import annotations

import os
import secrets
import signal
import threading
from collections.abc import Callable

import httpx

from tests.helpers.mesh import pid_alive, wait_for
from tests.payload_log.conftest import BODY, REQUEST, RESPONSE, LoggedMesh, predictions

CLIENTS = 4


class Load:
    """`CLIENTS` threads posting predictions with their own puids; `answered` holds those that got 200."""

    def __init__(self, logged: LoggedMesh, name: str) -> None:
        self._url = logged.mesh.gateway + predictions(name)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answered: list[str] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def count(self) -> int:
        with self._lock:
            return len(self.answered)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                puid = "load-" + secrets.token_hex(6)
                try:
                    response = client.post(self._url, json=BODY, headers={"Seldon-Puid": puid})
                except httpx.HTTPError:
                    continue
                if response.status_code == 200:
                    with self._lock:
                        self.answered.append(puid)


def _kill_under_load(logged: LoggedMesh, name: str, root: str, victim: Callable[[], int]) -> None:
    with Load(logged, name) as load:
        wait_for(lambda: load.count() >= 100, 60, "100 answered requests")
        pid = victim()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), 10, "the logging process to die", interval=0.005)
        before = load.count()
        wait_for(lambda: load.count() >= before + 100, 90, "100 answers from the restarted process")
    answered = set(load.answered)

    def missing() -> set[str]:
        seen: dict[str, set[str]] = {}
        for event in logged.sink.snapshot():
            if event.headers.get("Ce-Modelid") == root:
                seen.setdefault(event.headers["Ce-Requestid"], set()).add(event.headers["Ce-Type"])
        return {puid for puid in answered if seen.get(puid) != {REQUEST, RESPONSE}}

    wait_for(lambda: not missing(), 60, f"both events of all {len(answered)} answered requests")


def test_sigkill_of_extproc_under_load_loses_no_event_of_an_answered_request(logged_mesh: LoggedMesh) -> None:
    def extproc() -> int:
        return int((logged_mesh.mesh.state_dir / "extproc.pid").read_text())

    _kill_under_load(logged_mesh, "ab", "split", extproc)


def test_sigkill_of_a_runtime_logging_its_single_model_loses_no_event_of_an_answered_request(
    logged_mesh: LoggedMesh,
) -> None:
    def runtime() -> int:
        (deployment,) = logged_mesh.mesh.get("single")
        (component,) = deployment["status"]["components"]
        return int(component["pid"])

    _kill_under_load(logged_mesh, "single", "model", runtime)
