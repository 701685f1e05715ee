"""Only the owner changes the mesh (issue 19, part 1): the state directory is the owner's alone (0700, and
every file in it 0600: the control file with its token, the store and its WAL, the payload spool, logs),
the control API answers /v1 only with the token, graph parameters are not on any command line, and a
second, unprivileged user can neither read the control file nor drive the mesh through the CLI."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers.mesh import Mesh

PREDICT = "/seldon/seldon/iris-model/api/v1.0/predictions"
GOOD = {"data": {"ndarray": [[1, 2, 3, 4]]}}
NOBODY = 65534


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_directory_is_the_owners_alone(mesh: Mesh) -> None:
    mesh.wait_serving(PREDICT, GOOD)
    assert _mode(mesh.state_dir) == 0o700
    files = [p for p in mesh.state_dir.rglob("*") if p.is_file()]
    assert any(p.name == "control.json" for p in files)
    readable = {str(p.relative_to(mesh.state_dir)): oct(_mode(p)) for p in files if _mode(p) & 0o077}
    assert not readable, f"readable by others: {readable}"


def test_the_control_api_wants_the_owners_token(mesh: Mesh) -> None:
    url, headers = mesh.control()
    assert httpx.get(f"{url}/v1/deployments", timeout=10).status_code == 401
    assert (
        httpx.get(f"{url}/v1/deployments", headers={"Authorization": "Bearer guess"}, timeout=10).status_code
        == 401
    )
    assert (
        httpx.post(f"{url}/v1/apply", json={"documents": "", "base_dir": "/"}, timeout=10).status_code == 401
    )
    assert httpx.get(f"{url}/v1/deployments", headers=headers, timeout=10).status_code == 200
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200  # the read-only scrape stays open


def test_graph_parameters_are_not_on_command_lines(mesh: Mesh) -> None:
    mesh.wait_serving(PREDICT, GOOD)
    for pid in mesh.child_pids():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"--parameters" not in cmdline


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a second user's process needs root (setuid)")
def test_another_user_cannot_read_or_drive_the_mesh(mesh: Mesh) -> None:
    def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            env={"PATH": os.environ.get("PATH", ""), "HOME": "/tmp"},
        )

    # (the project's own Python lives where that user cannot execute it; cat and curl are system tools)
    read = as_nobody("cat", str(mesh.state_dir / "control.json"))
    assert read.returncode != 0 and "Permission denied" in read.stderr
    url, _ = mesh.control()  # what a port scan would find: the API answers, but not to that user
    listed = as_nobody("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/v1/deployments")
    assert listed.stdout == "401"
    body = '{"documents": "", "base_dir": "/tmp"}'
    applied = as_nobody(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
        "-H", "content-type: application/json", "-d", body, f"{url}/v1/apply",
    )  # fmt: skip
    assert applied.stdout == "401"
