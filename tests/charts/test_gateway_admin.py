"""The chart's gateway Envoy, run for real from the chart's own bootstrap: its admin API is reachable from
no network (a Unix socket of mode 0600), and its stats port gives the kubelet and Prometheus `GET /ready`
and `GET /stats/prometheus` and nothing else of the admin API.

The bootstrap is the ConfigMap Helm renders, with what only a pod has swapped for this machine's: the
socket's emptyDir for a temporary directory, the pod's interfaces for loopback (tests bind 127.0.0.1), a
free port for the stats port, and the xDS Service's DNS name for a closed loopback port (no controller:
the admin API answers whether or not configuration ever arrives)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mesh.local.envoy import find_envoy_binary
from tests.charts.helm import render
from tests.helpers.mesh import wait_for
from tests.helpers.ports import free_port

POD_SOCKET = "/var/run/envoy/admin.sock"


def _swap_socket(node: Any, socket: str) -> None:
    """Every `pipe` address (the admin's, the admin cluster's endpoint) to `socket`."""
    if isinstance(node, dict):
        if "pipe" in node:
            assert node["pipe"]["path"] == POD_SOCKET, node
            node["pipe"]["path"] = socket
        for value in node.values():
            _swap_socket(value, socket)
    elif isinstance(node, list):
        for value in node:
            _swap_socket(value, socket)


def _local_bootstrap(workdir: Path, stats_port: int) -> dict[str, Any]:
    rendered = render({"gateway": {"enabled": True}})
    (config_map,) = [
        o for o in rendered.of_kind("ConfigMap") if o["metadata"]["name"].endswith("-gateway-bootstrap")
    ]
    bootstrap: dict[str, Any] = json.loads(config_map["data"]["bootstrap.json"])
    _swap_socket(bootstrap, str(workdir / "admin.sock"))
    (listener,) = bootstrap["static_resources"]["listeners"]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 9902}
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": stats_port}
    xds = bootstrap["static_resources"]["clusters"][0]
    (endpoint,) = xds["load_assignment"]["endpoints"][0]["lb_endpoints"]
    endpoint["endpoint"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": free_port()}
    return bootstrap


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    workdir = tmp_path_factory.mktemp("gateway-envoy")
    port = free_port()
    path = workdir / "bootstrap.json"
    path.write_text(json.dumps(_local_bootstrap(workdir, port)))
    log = (workdir / "envoy.log").open("w")
    process = subprocess.Popen(
        [str(find_envoy_binary()), "-c", str(path), "--disable-hot-restart", "--log-level", "warning"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def serving() -> bool:
            assert process.poll() is None, (workdir / "envoy.log").read_text()
            return httpx.get(url + "/stats/prometheus", timeout=5).status_code == 200

        wait_for(serving, 60, "the gateway Envoy's stats port")
        yield workdir, url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_the_admin_api_is_a_socket_only_its_owner_can_open(envoy: tuple[Path, str]) -> None:
    workdir, _ = envoy
    mode = (workdir / "admin.sock").stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(workdir / "admin.sock"))) as owner:
        assert owner.get("http://admin/server_info", timeout=5).status_code == 200  # it is the admin API
    assert os.stat(workdir / "admin.sock").st_uid == os.getuid()


def test_the_stats_port_serves_ready_and_prometheus_and_nothing_else(envoy: tuple[Path, str]) -> None:
    _, url = envoy
    metrics = httpx.get(url + "/stats/prometheus", timeout=5)
    assert metrics.status_code == 200 and "envoy_server_live" in metrics.text
    ready = httpx.get(url + "/ready", timeout=5)
    # Envoy's own answer: LIVE once the first xDS fetch is over (here it times out: no controller)
    assert (ready.status_code, ready.text) in (
        (200, "LIVE\n"),
        (503, "PRE_INITIALIZING\n"),
        (503, "INITIALIZING\n"),
    )
    for path in ("/config_dump", "/clusters", "/server_info", "/runtime", "/stats", "/", "/ready/x"):
        answer = httpx.get(url + path, timeout=5)
        assert answer.status_code == 404, path
        assert answer.text == "only GET /ready and /stats/prometheus\n"
    for path in ("/quitquitquit", "/healthcheck/fail", "/drain_listeners", "/runtime_modify?x=1", "/ready"):
        assert httpx.post(url + path, timeout=5).status_code == 404, path
    assert httpx.get(url + "/stats/prometheus", timeout=5).status_code == 200  # still up: nothing stopped it
