"""A config that Envoy rejects (NACK) leaves the last good config serving, and `get` says why."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import httpx
from envoy.config.cluster.v3 import cluster_pb2

from mesh.local.app import LocalMesh
from mesh.local.settings import LocalSettings
from mesh.spec import SeldonDeployment, load_path
from tests.helpers.mesh import free_port
from xds_controller.translate import ComponentEndpoints, ComponentKey, GatewaySettings, Resources, translate

GOOD = {"data": {"ndarray": [[1, 2, 3, 4]]}}


def reject_broken(
    deployments: Sequence[SeldonDeployment],
    endpoints: Mapping[ComponentKey, ComponentEndpoints],
    gateway: GatewaySettings,
) -> Resources:
    """The real translation, except that deployment `broken` gets a cluster Envoy must refuse."""
    resources = translate(deployments, endpoints, gateway)
    clusters = []
    for message in resources.clusters:
        cluster = cluster_pb2.Cluster()
        cluster.CopyFrom(message)
        if ".broken." in cluster.name:
            cluster.connect_timeout.seconds = -1  # Envoy validates connect_timeout > 0
        clusters.append(cluster)
    return dataclasses.replace(resources, clusters=tuple(clusters))


async def _eventually(check: Callable[[], Awaitable[bool]], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_rejected_config_keeps_last_good_config_and_shows_in_get(iris_dir: Path, tmp_path: Path) -> None:
    settings = LocalSettings(state_dir=tmp_path / "state", gateway_port=free_port())
    broken = (iris_dir / "iris.yaml").read_text().replace("name: iris-model", "name: broken")
    asyncio.run(_scenario(LocalMesh(settings, translate_fn=reject_broken), iris_dir, broken))


async def _scenario(mesh: LocalMesh, iris_dir: Path, broken_manifest: str) -> None:
    running = asyncio.create_task(mesh.run([(load_path(iris_dir), iris_dir)]))
    gateway = mesh.gateway_url
    iris = f"{gateway}/seldon/seldon/iris-model/api/v1.0/predictions"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await _eventually(lambda: _ok(client, iris), 90, "iris to serve")
            assert mesh.control_url
            applied = await client.post(
                f"{mesh.control_url}/v1/apply",
                headers={"Authorization": f"Bearer {mesh.control_token}"},
                json={"documents": broken_manifest, "source": "broken.yaml", "base_dir": str(iris_dir)},
            )
            assert applied.status_code == 200, applied.text

            async def broken_failed() -> bool:
                (status,) = [d["status"] for d in mesh.describe("seldon", "broken")]
                return bool(status["state"] == "Failed")

            await _eventually(broken_failed, 90, "broken to be Failed")
            (status,) = [d["status"] for d in mesh.describe("seldon", "broken")]
            assert "Envoy rejected the config" in status["description"]
            assert "positive duration" in status["description"]  # Envoy's own words
            (iris_status,) = [d["status"] for d in mesh.describe("seldon", "iris-model")]
            assert iris_status["state"] == "Available", iris_status
            # the last good config keeps serving; the rejected deployment never got a route
            assert (await client.post(iris, json=GOOD)).status_code == 200
            broken_url = f"{gateway}/seldon/seldon/broken/api/v1.0/predictions"
            # Envoy refused its cluster, so the route naming it is never sent: the deployment does not exist
            refused = await client.post(broken_url, json=GOOD)
            assert refused.status_code == 404
            assert refused.json()["status"]["status"] == "FAILURE"
    finally:
        mesh.stop()
        await running


async def _ok(client: httpx.AsyncClient, url: str) -> bool:
    return (await client.post(url, json=GOOD)).status_code == 200
