"""Deployments come and go: Python class models, delete, restart from the state dir, clean shutdown."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import httpx
import pytest

from tests.helpers.mesh import Mesh, free_port, pid_alive, wait_for

IRIS = "/seldon/seldon/iris-model/api/v1.0/predictions"
DOUBLER = "/seldon/default/doubler/api/v1.0/predictions"
GOOD = {"data": {"ndarray": [[1, 2, 3, 4]]}}


def test_python_class_model_from_a_folder(mesh: Mesh, pyclass_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pyclass"
    shutil.copytree(pyclass_dir, folder)
    result = mesh.cli("apply", "-f", str(folder / "pyclass.yaml"))
    assert result.returncode == 0, result.stderr
    assert "doubler created" in result.stdout
    body = mesh.wait_serving(DOUBLER, {"data": {"ndarray": [[1, 2], [3, 4]]}}).json()
    assert body["data"]["ndarray"] == [
        [3.0, 6.0],
        [9.0, 12.0],
    ]  # x * 2 * scale (1.5, a typed FLOAT parameter)
    assert body["meta"]["tags"] == {"model": "x1.5", "loaded": True}
    again = mesh.cli("apply", "-f", str(folder / "pyclass.yaml"))
    assert "doubler unchanged" in again.stdout

    pids = [c["pid"] for c in mesh.get("doubler")[0]["status"]["components"]]
    deleted = mesh.cli("delete", "doubler")
    assert deleted.returncode == 0, deleted.stderr
    wait_for(
        lambda: httpx.post(mesh.gateway + DOUBLER, json=GOOD).status_code == 404, 30, "doubler's route to go"
    )
    wait_for(lambda: not any(pid_alive(p) for p in pids), 30, "doubler's runtime to stop")
    assert httpx.post(mesh.gateway + IRIS, json=GOOD).status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_leaves_no_child_and_restart_serves_from_the_state_dir(
    iris_dir: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    mesh = Mesh(tmp_path / "state", free_port()).start(iris_dir)
    try:
        mesh.wait_state("iris-model", "Available")
        mesh.wait_serving(IRIS, GOOD)
        pids = mesh.child_pids()
        envoy_pid = int((tmp_path / "state/envoy/envoy.pid").read_text())
    finally:
        code = mesh.stop(sig)
    assert code == 0, mesh.log()[-2000:]
    assert not any(pid_alive(p) for p in [*pids, envoy_pid])

    again = Mesh(tmp_path / "state", mesh.port).start()  # no paths: the state dir brings iris back
    try:
        again.wait_state("iris-model", "Available")
        body = again.wait_serving(IRIS, GOOD).json()
        assert body["data"]["names"] == ["t:0", "t:1", "t:2"]
    finally:
        again.stop()


def test_up_refuses_an_invalid_spec_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: x}\nspec: {}\n"
    )
    mesh = Mesh(tmp_path / "state", free_port())
    with pytest.raises(AssertionError, match="predictors"):
        mesh.start(bad)


def test_up_with_state_of_the_world_xds_serves_too(iris_dir: Path, tmp_path: Path) -> None:
    mesh = Mesh(tmp_path / "state", free_port()).start(iris_dir, extra=("--xds", "sotw"))
    try:
        mesh.wait_state("iris-model", "Available")
        body = mesh.wait_serving(IRIS, GOOD).json()
        assert body["data"]["names"] == ["t:0", "t:1", "t:2"]
        bootstrap = (tmp_path / "state/envoy/bootstrap.json").read_text()
        assert '"GRPC"' in bootstrap and "DELTA_GRPC" not in bootstrap
    finally:
        mesh.stop()
