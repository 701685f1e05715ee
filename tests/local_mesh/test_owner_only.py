"""Only the owner changes the mesh (issue 19, part 1): the state directory is the owner's alone (0700, and
every file in it 0600: the control file with its token, the store and its WAL, the payload spool, logs),
the control API answers /v1 only with the token, graph parameters are not on any command line, and a
second, unprivileged user can neither read the control file nor drive the mesh through the CLI. Envoy's
admin API is on a 0600 Unix socket in the state directory, not on loopback TCP: only its stats are on a
port (for Prometheus), and that port serves nothing else of the admin API."""

from __future__ import annotations

import json
import os
import socket
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


def _envoy_stats_url(mesh: Mesh) -> str:
    listed = mesh.cli("metrics", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    [url] = [e["url"] for e in json.loads(listed.stdout) if e["component"] == "envoy"]
    return str(url)


def _listening_tcp_ports(pid: int) -> set[int]:
    """Ports the process listens on over TCP (its sockets' inodes in /proc/net/tcp, state 0A)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_envoys_admin_api_is_a_private_socket(mesh: Mesh) -> None:
    mesh.wait_serving(PREDICT, GOOD)
    admin = mesh.state_dir / "envoy" / "admin.sock"
    assert stat.S_ISSOCK(admin.stat().st_mode) and _mode(admin) == 0o600
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # the owner can use it
        sock.settimeout(10)
        sock.connect(str(admin))
        sock.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
    # on TCP Envoy listens only on the gateway and the stats port, which serves nothing but the stats
    stats = _envoy_stats_url(mesh)
    envoy_pid = int((mesh.state_dir / "envoy" / "envoy.pid").read_text())
    stats_port = int(stats.rsplit(":", 1)[1].split("/", 1)[0])
    assert _listening_tcp_ports(envoy_pid) == {mesh.port, stats_port}
    base = stats.removesuffix("/stats/prometheus")
    assert "envoy_server_live" in httpx.get(stats, timeout=10).text
    assert httpx.get(f"{base}/stats?filter=server.live", timeout=10).status_code == 200
    for path in ("/config_dump", "/clusters", "/quitquitquit", "/", "/stats/../config_dump"):
        assert httpx.get(base + path, timeout=10).status_code == 404, path
    assert httpx.post(f"{base}/stats", timeout=10).status_code == 404
    assert httpx.post(f"{base}/quitquitquit", timeout=10).status_code == 404


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
    # Envoy's admin API: that user cannot connect to its socket (nor reach it: the state dir is 0700)
    admin = str(mesh.state_dir / "envoy" / "admin.sock")
    dumped = as_nobody("curl", "-s", "--unix-socket", admin, "http://x/config_dump")
    assert dumped.returncode == 7 and dumped.stdout == ""  # curl: couldn't connect
