"""The pieces of the in-cluster gateway test, on loopback: a Kubernetes API emulator (kmock) holding
SeldonDeployments and EndpointSlices, `python -m xds_controller.kube` watching it, and a real Envoy
bootstrapped as the chart bootstraps the gateway (node `seldon-mesh-gateway`, delta ADS)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kmock
from lightkube import AsyncClient, KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.generic_resource import create_namespaced_resource

from mesh.local.envoy import EnvoyProcess
from tests.helpers.ports import free_port
from xds_controller.bootstrap import render_bootstrap
from xds_controller.translate import Upstream

REPO = Path(__file__).resolve().parents[2]
NODE = "seldon-mesh-gateway"
SeldonDeployment = create_namespaced_resource(
    "machinelearning.seldon.io", "v1", "SeldonDeployment", "seldondeployments"
)
EndpointSlice = create_namespaced_resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices")


def declare_resources(emulator: kmock.KubernetesEmulator) -> None:
    emulator.resources["machinelearning.seldon.io/v1/seldondeployments"] = kmock.ResourceInfo(
        namespaced=True, kind="SeldonDeployment"
    )
    emulator.resources["discovery.k8s.io/v1/endpointslices"] = kmock.ResourceInfo(
        namespaced=True, kind="EndpointSlice"
    )


def sdep(name: str, namespace: str, predictors: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """A SeldonDeployment of iris predictors (name, traffic)."""
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "predictors": [
                {
                    "name": predictor,
                    "traffic": traffic,
                    "graph": {"name": "classifier", "implementation": "SKLEARN_SERVER", "modelUri": "gs://x"},
                }
                for predictor, traffic in predictors
            ]
        },
    }


def endpoint(address: str, ready: bool = True, terminating: bool = False) -> dict[str, Any]:
    return {
        "addresses": [address],
        "conditions": {"ready": ready, "serving": ready or terminating, "terminating": terminating},
    }


def endpoint_slice(
    name: str,
    namespace: str,
    service: str,
    endpoints: Sequence[Mapping[str, Any]],
    http_port: int | None = None,
    grpc_port: int | None = None,
) -> dict[str, Any]:
    ports = [
        {"name": n, "port": p, "protocol": "TCP"} for n, p in (("http", http_port), ("grpc", grpc_port)) if p
    ]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": list(endpoints),
        "ports": ports,
    }


@dataclass
class Gateway:
    api: AsyncClient
    port: int
    controller: subprocess.Popen[bytes]
    controller_log: Path
    envoy: EnvoyProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def create(self, obj: dict[str, Any]) -> None:
        resource = SeldonDeployment if obj["kind"] == "SeldonDeployment" else EndpointSlice
        await self.api.create(resource(obj))

    async def patch(self, obj: dict[str, Any]) -> None:
        resource = SeldonDeployment if obj["kind"] == "SeldonDeployment" else EndpointSlice
        meta = obj["metadata"]
        await self.api.patch(resource, meta["name"], obj, namespace=meta["namespace"])

    def log(self) -> str:
        return self.controller_log.read_text(errors="replace") + self.envoy.log_path.read_text(
            errors="replace"
        )


async def wait_for(condition: Any, within: float, what: str) -> Any:
    """Await `condition()` (sync or async) until it is truthy, for at most `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


def _spawn_controller(
    server: str, xds_port: int, health_port: int, listen_port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable, "-m", "xds_controller.kube", "--api-server", server,
                "--xds-host", "127.0.0.1", "--xds-port", str(xds_port),
                "--health-host", "127.0.0.1", "--health-port", str(health_port),
                "--listen-host", "127.0.0.1", "--listen-port", str(listen_port),
            ],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def running_gateway(emulator: kmock.KubernetesEmulator, workdir: Path) -> AsyncIterator[Gateway]:
    declare_resources(emulator)
    server = str(emulator.url)
    xds_port, health_port, listen_port = free_port(), free_port(), free_port()
    log_path = workdir / "controller.log"
    controller = _spawn_controller(server, xds_port, health_port, listen_port, log_path)
    api = AsyncClient(KubeConfig.from_one(cluster=Cluster(server=server), user=User()))
    envoy = EnvoyProcess(
        render_bootstrap(NODE, Upstream("127.0.0.1", xds_port), admin_port=0, cluster=NODE),
        workdir / "envoy",
        concurrency=1,
    )
    try:
        async with httpx.AsyncClient(timeout=2) as client:

            async def ready() -> bool:
                if controller.poll() is not None:
                    raise AssertionError(f"controller exited {controller.returncode}\n{log_path.read_text()}")
                try:
                    return (await client.get(f"http://127.0.0.1:{health_port}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, 60, "the controller to sync")
        await asyncio.to_thread(envoy.start)
        yield Gateway(api, listen_port, controller, log_path, envoy)
    finally:
        await asyncio.to_thread(envoy.stop)
        controller.terminate()
        try:
            await asyncio.to_thread(controller.wait, 10)
        except subprocess.TimeoutExpired:
            controller.kill()
            raise
        finally:
            await api.close()


async def curl(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "curl", "-s", "-S", "--max-time", "10", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


GRPCURL = str(Path(sys.executable).parent / "grpcurl")


async def grpcurl(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        GRPCURL, "-plaintext", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()
