"""Changes and failures under load: a loop of REST predictions through the gateway runs while the spec
changes (weights, model, parameters, a model that cannot load) and while processes are killed (one of two
replicas, the only replica, `up` itself). What the clients see is asserted: 2xx only where the mesh can
hide the change, 503 (never a hang) where it cannot.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers.mesh import Mesh, free_port, pid_alive, wait_for

PREDICT = "/seldon/seldon/zd/api/v1.0/predictions"
CHAIN_PREDICT = "/seldon/default/chain/api/v1.0/predictions"
CLASSES = Path(__file__).resolve().parents[1] / "data" / "graphs"
CHAIN = f"""\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: chain}}
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: pre, workingDir: {CLASSES}, env: [{{name: MODEL_NAME, value: Affine}}]}}
              - {{name: model, workingDir: {CLASSES}, env: [{{name: MODEL_NAME, value: Affine}}]}}
      graph:
        name: pre
        type: TRANSFORMER
        children: [{{name: model, type: MODEL}}]
"""
BODY = {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}


def _spec(
    main_traffic: int = 80, canary_uri: str = "../model", main_method: str | None = None, third: int = 0
) -> str:
    parameters = (
        f"\n        parameters: [{{name: method, value: {main_method}, type: STRING}}]" if main_method else ""
    )
    third_predictor = (
        f"""
    - name: third
      traffic: {third}
      graph: {{name: classifier, implementation: SKLEARN_SERVER, modelUri: ../model}}"""
        if third
        else ""
    )
    return f"""\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: zd, namespace: seldon}}
spec:
  predictors:
    - name: main
      traffic: {main_traffic}
      replicas: 2
      graph:
        name: classifier
        implementation: SKLEARN_SERVER
        modelUri: ../model{parameters}
    - name: canary
      traffic: {100 - main_traffic - third}
      graph:
        name: classifier
        implementation: SKLEARN_SERVER
        modelUri: {canary_uri}{third_predictor}
"""


@dataclass
class Load:
    """Threads posting predictions through the gateway as fast as they get answers; each answer's status
    is kept (0: no answer within the client's timeout, or the connection failed)."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    threads: int = 2
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._loop, daemon=True)
            worker.start()
            self._workers.append(worker)
        wait_for(lambda: len(self.statuses) >= 20, 30, "the load to start")
        return self

    def _loop(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set():
                try:
                    status = client.post(self.url, json=BODY, headers=self.headers).status_code
                except httpx.HTTPError as error:
                    status = 0
                    self.errors.append(repr(error))
                self.statuses.append(status)
                time.sleep(0.005)  # leave the two cores to the mesh

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def settle(self, count: int = 40) -> None:
        """Let `count` more requests through, so what follows a change is seen too."""
        target = len(self.statuses) + count
        wait_for(lambda: len(self.statuses) >= target, 60, f"{count} more answers")

    def failures(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for status in self.statuses:
            if not 200 <= status < 300:
                counts[status] = counts.get(status, 0) + 1
        return counts

    def cut_responses(self) -> int:
        """Answers whose body never came: the runtime was killed between writing headers and body, after
        Envoy had passed the headers on (then nothing can retry). Any other failed call is an error."""
        cut = [e for e in self.errors if "peer closed connection without sending complete message" in e]
        assert len(cut) == len(self.errors), self.errors
        return len(cut)


@dataclass
class Site:
    mesh: Mesh
    folder: Path

    def apply(self, text: str, subfolder: str = "a") -> None:
        path = self.folder / subfolder / "zd.yaml"
        path.write_text(text)
        result = self.mesh.cli("apply", "-f", str(path))
        assert result.returncode == 0, result.stderr

    def status(self) -> dict[str, Any]:
        """What `seldon-mesh get zd` shows, from the control API the CLI calls (polling through the CLI
        would start a Python process per poll on a machine that is busy starting runtimes)."""
        url, headers = self.mesh.control()
        response = httpx.get(f"{url}/v1/deployments/seldon/zd", headers=headers, timeout=10)
        response.raise_for_status()
        return dict(response.json()["status"])

    def wait_state(self, state: str, timeout: float = 90) -> dict[str, Any]:
        return dict(
            wait_for(
                lambda: (s := self.status())["state"] == state and s,
                timeout,
                f"zd to be {state} (log:\n{self.mesh.log()[-3000:]})",
            )
        )

    def components(self) -> dict[str, dict[str, Any]]:
        return {c["predictor"]: c for c in self.status()["components"]}

    def pids(self, predictor: str) -> list[int]:
        return [r["pid"] for r in self.components()[predictor]["replicas"]]

    def load(self, **headers: str) -> Load:
        return Load(self.mesh.gateway + PREDICT, headers)

    def wait_replaced(self, predictor: str, old: list[int]) -> list[int]:
        """Wait until the predictor is served by processes none of which is in `old`, and is Available."""

        def replaced() -> list[int] | None:
            status = self.status()
            pids = [r["pid"] for r in self.components()[predictor]["replicas"]]
            fresh = status["state"] == "Available" and not set(pids) & set(old)
            return pids if fresh else None

        new: list[int] = wait_for(
            replaced, 90, f"{predictor} to be replaced (log:\n{self.mesh.log()[-2000:]})"
        )
        wait_for(lambda: not any(pid_alive(p) for p in old), 30, f"the old {predictor} to stop")
        return new


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, iris_dir: Path) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("zd")
    for name in ("model", "model2"):
        shutil.copytree(iris_dir / "model", folder / name)
    for sub in ("a", "b", "broken"):
        (folder / sub).mkdir()
    (folder / "broken" / "model.joblib").write_bytes(b"not a model")  # found, but it cannot load
    (folder / "a" / "zd.yaml").write_text(_spec())
    mesh = Mesh(folder / "state", free_port()).start(folder / "a" / "zd.yaml")
    try:
        mesh.wait_state("zd", "Available", timeout=120)
        mesh.wait_serving(PREDICT, BODY)
        yield Site(mesh, folder)
    finally:
        mesh.stop()


def test_weight_shifts_another_folder_and_unread_fields_restart_nothing(site: Site) -> None:
    before = {p: site.pids(p) for p in ("main", "canary")}
    assert len(before["main"]) == 2  # replicas: 2, both endpoints of one cluster
    with site.load() as load:
        site.apply(_spec(main_traffic=20))
        site.apply(_spec(main_traffic=99))
        site.apply(_spec(main_traffic=99), subfolder="b")  # ../model: the same files from folder b
        unread = _spec(main_traffic=99).replace("spec:\n", "spec:\n  annotations: {team: ml}\n", 1)
        site.apply(unread, subfolder="b")  # a field no runtime is started with
        site.wait_state("Available")
        load.settle()
    assert load.failures() == {}, (load.failures(), load.errors)
    assert {p: site.pids(p) for p in ("main", "canary")} == before
    site.apply(_spec())


def test_a_model_update_under_load_drops_nothing(site: Site) -> None:
    old = site.pids("canary")
    with site.load() as load:
        site.apply(_spec(canary_uri="../model2"))
        new = site.wait_replaced("canary", old)
        load.settle()
    assert load.failures() == {}, (load.failures(), load.errors)
    assert len(new) == 1


def test_a_parameter_change_under_load_drops_nothing(site: Site) -> None:
    old = site.pids("main")
    with site.load() as load:
        site.apply(_spec(canary_uri="../model2", main_method="predict_proba"))
        new = site.wait_replaced("main", old)
        load.settle()
    assert load.failures() == {}, (load.failures(), load.errors)
    assert len(new) == 2


def test_adding_and_removing_a_predictor_under_load_drops_nothing(site: Site) -> None:
    """The new predictor's routes wait until its runtime is ready; a removed one serves until its routes
    are gone."""
    with site.load() as load:
        site.apply(_spec(main_traffic=60, canary_uri="../model2", main_method="predict_proba", third=20))
        wait_for(lambda: "third" in site.components(), 30, "the third predictor")
        site.wait_state("Available")
        load.settle()
        third = site.pids("third")
        site.apply(_spec(canary_uri="../model2", main_method="predict_proba"))
        wait_for(lambda: "third" not in site.components(), 30, "the third predictor to go")
        wait_for(lambda: not any(pid_alive(p) for p in third), 30, "its runtime to stop")
        load.settle()
    assert load.failures() == {}, (load.failures(), load.errors)


def test_a_new_version_that_cannot_load_leaves_the_old_one_serving(site: Site) -> None:
    serving = site.pids("canary")
    with site.load() as load:
        site.apply(_spec(canary_uri="../broken", main_method="predict_proba"))
        status = site.wait_state("Failed", timeout=90)
        load.settle()
        assert "previous one keeps serving" in status["description"], status
        assert site.pids("canary") == serving
        site.apply(_spec(canary_uri="../model2", main_method="predict_proba"))  # back to what runs
        site.wait_state("Available")
        load.settle()
    assert load.failures() == {}, (load.failures(), load.errors)
    assert site.pids("canary") == serving


def test_killing_one_of_two_replicas_costs_no_request(site: Site) -> None:
    victim, survivor = site.pids("main")
    restarts = site.components()["main"]["restarts"]
    with site.load() as load:
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: (
                site.components()["main"]["restarts"] > restarts and site.status()["state"] == "Available"
            ),
            90,
            "the killed replica to be back",
        )
        load.settle()
    assert load.failures() == {}, (load.failures(), load.errors)
    assert survivor in site.pids("main")


def test_killing_the_only_replica_answers_503_until_it_is_back(site: Site) -> None:
    (victim,) = site.pids("canary")
    with site.load(**{"Seldon-Predictor": "canary"}) as load:  # pinned: nothing else can answer
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: 503 in load.statuses, 30, "a 503 while the only replica is down")
        site.wait_state("Available")
        load.settle()
    # 503s, and no hang: at most the requests in flight at the kill lose their answer (no other error)
    assert load.cut_responses() <= load.threads
    assert set(load.failures()) - {0} == {503}, load.failures()
    assert all(s == 200 for s in load.statuses[-20:])  # and it ended once the replica was back
    shown = yaml.safe_load(site.mesh.cli("get", "zd", "-o", "yaml").stdout)
    canary = next(c for c in shown["status"]["components"] if c["predictor"] == "canary")
    assert canary["restarts"] == 1
    assert canary["pid"] != victim
    assert canary["lastRestart"]["reason"].startswith("exited with code -9")  # why: SIGKILL


def test_killing_extproc_answers_503_until_it_is_back(site: Site) -> None:
    (site.folder / "chain.yaml").write_text(CHAIN)
    assert site.mesh.cli("apply", "-f", str(site.folder / "chain.yaml")).returncode == 0
    try:
        site.mesh.wait_serving(CHAIN_PREDICT, BODY, timeout=90)
        pid_file = site.folder / "state" / "extproc.pid"
        victim = int(pid_file.read_text())
        with Load(site.mesh.gateway + CHAIN_PREDICT) as load:
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: int(pid_file.read_text()) != victim, 30, "extproc to be restarted")
            wait_for(lambda: load.statuses[-20:] == [200] * 20, 60, "the graph to answer again")
        assert load.cut_responses() <= load.threads
        assert set(load.failures()) - {0} <= {503}, load.failures()  # no hang, no other error
    finally:
        site.mesh.cli("delete", "chain")


def test_sigkill_of_up_leaves_no_process_and_a_second_up_serves_the_same(site: Site) -> None:
    mesh = site.mesh
    state = site.folder / "state"
    ours = [p for c in site.components().values() for p in (r["pid"] for r in c["replicas"])]
    ours += [int((state / "extproc.pid").read_text()), int((state / "envoy/envoy.pid").read_text())]
    assert mesh.process is not None
    mesh.process.kill()  # the up process alone: an OOM kill, a closed terminal
    mesh.process.wait()
    wait_for(lambda: not any(pid_alive(p) for p in ours), 10, "every child of the killed up to exit")

    mesh.start()  # the same state dir, no paths: it brings zd back
    # control.json may still be the killed owner's until the new `up` replaces it
    site.wait_state("Available", timeout=120)
    assert mesh.wait_serving(PREDICT, BODY).json()["data"]["names"] == ["t:0", "t:1", "t:2"]


def test_up_stops_what_its_pid_records_show_still_running(tmp_path: Path) -> None:
    """A child that outlived its `up` (no parent-death signal: another OS, a wedged process) is stopped by
    the next `up` on the state directory before it binds anything."""
    leftover = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        records = tmp_path / "state" / "pids"
        records.mkdir(parents=True)
        start = Path(f"/proc/{leftover.pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
        (records / f"{leftover.pid}.json").write_text(
            f'{{"pid": {leftover.pid}, "start": "{start}", "what": "extproc", "group": true}}'
        )
        mesh = Mesh(tmp_path / "state", free_port()).start()
        try:
            leftover.wait(10)
        finally:
            mesh.stop()
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()
    assert leftover.returncode == -signal.SIGTERM
