"""`make bench` suite `xds_kube`: the in-cluster gateway (`python -m xds_controller.kube`) at 10,000
SeldonDeployments, against the local controller path measured in the same run.

Kubernetes mode: the SeldonDeployments (two predictors each, 75/25, as `bench.xds`) and one EndpointSlice
per predictor Service are held by kmock's KubernetesEmulator (loopback, in this process, loaded directly
into its store); the controller runs as its own process, as in the cluster, listing and watching the
emulator; a real Envoy (two workers) is bootstrapped as the chart bootstraps the gateway. Figures:
- full config applied: from starting the controller process to Envoy ACKing every type of the complete
  snapshot (the controller's /statusz `in_sync`): list, parse, build and push included;
- change -> answer: a new SeldonDeployment is created in the emulator (its slices already there) and its
  route polled until it answers 200; p50 and p90 over `--applies`, from the emulator's answer to the
  create (the object stored, its watch event queued), and in `extra` from the create request (kmock
  takes 40-140 ms per create at this size under load: it scans every object per request, where an API
  server answers in milliseconds);
- first request to a deployment Envoy has no routes or cluster for yet (its RouteConfiguration and
  component clusters are on demand: `xds_controller.translate.on_demand`): p50 and p90 over `--applies`
  existing deployments, from the request to its 200 (on-demand RDS, then CDS + EDS round trips to the
  controller included), once the controller has read the watch's replay of every object (kmock's
  watch starts with one, which an API server's watch from the list's resourceVersion does not send);
- RSS of Envoy and of the controller process.
With the chart's bootstrap (`render_bootstrap` with `GATEWAY_STATS_PREFIXES`, what the gateway runs), and
optionally (`--kube-stats=both|all`) with every stat Envoy makes.
Anchor: the local path (`SnapshotBuilder` published in-process, as `bench.xds` delta) at the same size,
and the issue's targets.

Flags: --kube-size=N (default 10000; --quick 1000), --applies=N (default 20; --quick 5),
--kube-stats=chart|all|both (default chart).
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from bench.report import Row, print_table, write_results
from bench.xds import (
    _answers,
    _ControlPlane,
    _deployment,
    _endpoints,
    _flag,
    _free_port,
    _Ok,
    _rss_mb,
    _runs,
    _wait,
)
from mesh.local.envoy import EnvoyProcess
from xds_controller.bootstrap import GATEWAY_STATS_PREFIXES, render_bootstrap
from xds_controller.builder import SnapshotBuilder
from xds_controller.translate import ComponentEndpoints, ComponentKey, GatewaySettings, Upstream

REPO = Path(__file__).resolve().parents[1]
NODE = "seldon-mesh-gateway"
NAMESPACE = "bench"
TARGET_ENVOY_MB = 1000.0
TARGET_APPLIED_S = 5.0
TARGET_P50_MS = 100.0
TARGET_P90_MS = 250.0
TARGET_CONTROLLER_MB = 500.0
TIMEOUT_S = 600.0
SDEP = "machinelearning.seldon.io/v1/seldondeployments"
SLICES = "discovery.k8s.io/v1/endpointslices"
T = TypeVar("T")


@dataclass
class Figures:
    applied_s: float = 0.0
    # CPU seconds Envoy and the controller spent until then: the machine is shared, and under load the
    # wall time above stretches with everyone else's work while these do not
    envoy_cpu_s: float = 0.0
    controller_cpu_s: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    first_request_p50_ms: float = 0.0
    first_request_p90_ms: float = 0.0
    envoy_rss_mb: float = 0.0
    controller_rss_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _cpu_s(pid: int | str = "self") -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    p90 = statistics.quantiles(latencies, n=10)[-1] if len(latencies) > 1 else latencies[0]
    return statistics.median(latencies), p90


# -- the anchor: the local controller path ------------------------------------------------------------------
def _local(size: int, applies: int, upstream_port: int, workdir: Path) -> Figures:
    figures = Figures()
    plane = _ControlPlane()
    gateway = GatewaySettings(listen_port=_free_port(), scoped=True)
    deployments = [_deployment(f"m{i}") for i in range(size)]
    endpoints: dict[ComponentKey, ComponentEndpoints] = {}
    for deployment in deployments:
        endpoints.update(_endpoints(deployment, upstream_port))
    builder = SnapshotBuilder(gateway)
    snapshot = builder.build(deployments, endpoints)
    node = f"local-{size}"
    bootstrap = render_bootstrap(node, Upstream("127.0.0.1", plane.port), admin_port=0)
    envoy = EnvoyProcess(bootstrap, workdir / node, concurrency=2, start_timeout_s=60)
    envoy.start()
    try:
        started, envoy_cpu, cpu = time.perf_counter(), _cpu_s(envoy.pid or 0), time.process_time()
        plane.cache.set_snapshot(node, snapshot)
        _wait(lambda: _runs(plane.cache, node, snapshot), f"local Envoy to apply {size} deployments")
        figures.applied_s = time.perf_counter() - started
        figures.envoy_cpu_s = _cpu_s(envoy.pid or 0) - envoy_cpu
        figures.controller_cpu_s = time.process_time() - cpu  # the push (and this thread's polling)
        latencies = []
        for i in range(applies):
            new = _deployment(f"new-{i}")
            endpoints.update(_endpoints(new, upstream_port))
            path = f"/seldon/bench/{new.metadata.name}/api/v1.0/metadata"
            started = time.perf_counter()
            plane.cache.set_snapshot(node, builder.update([new], [], endpoints))
            _wait(functools.partial(_answers, gateway.listen_port, path), f"{path} to answer")
            latencies.append((time.perf_counter() - started) * 1000)
        figures.p50_ms, figures.p90_ms = _percentiles(latencies)
        figures.envoy_rss_mb = _rss_mb(envoy.pid or 0)
        figures.controller_rss_mb = _rss_mb()
    finally:
        envoy.stop()
        plane.stop()
    return figures


# -- Kubernetes mode ----------------------------------------------------------------------------------------
def _sdep(name: str) -> dict[str, Any]:
    unit = {"name": "model", "implementation": "SKLEARN_SERVER", "modelUri": "gs://bench/model"}
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": {"seldon.io/rest-timeout": "5000"}},
        "spec": {
            "predictors": [
                {"name": "main", "traffic": 75, "graph": unit},
                {"name": "canary", "traffic": 25, "graph": unit},
            ]
        },
    }


def _slice(deployment: str, predictor: str, port: int) -> dict[str, Any]:
    service = f"{deployment}-{predictor}"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-x",
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": port}, {"name": "grpc", "port": port}],
    }


class _Emulator:
    """kmock's KubernetesEmulator on its own event loop thread, with a lightkube client for changes."""

    def __init__(self) -> None:
        import kmock

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

        async def start() -> tuple[Any, Any, Any]:
            emulator = kmock.KubernetesEmulator()
            await emulator.__aenter__()
            server = kmock.Server(emulator)
            await server.__aenter__()
            for resource, kind in ((SDEP, "SeldonDeployment"), (SLICES, "EndpointSlice")):
                emulator.resources[resource] = kmock.ResourceInfo(namespaced=True, kind=kind)
            from lightkube import AsyncClient, KubeConfig
            from lightkube.config.models import Cluster, User

            client = AsyncClient(KubeConfig.from_one(cluster=Cluster(server=str(server.url)), user=User()))
            return emulator, server, client

        self.emulator, self.server, self.client = self.run(start())
        self.url = str(self.server.url)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT_S)

    def load(self, objects: list[tuple[str, dict[str, Any]]]) -> None:
        """Straight into the store (no watch events: nothing watches yet), as a cluster has them."""

        async def load() -> None:
            for resource, obj in objects:
                self.emulator.objects[resource, NAMESPACE, obj["metadata"]["name"]] = obj

        self.run(load())

    def create(self, resource: str, obj: dict[str, Any]) -> None:
        from lightkube.generic_resource import create_namespaced_resource

        group, version, plural = resource.split("/")
        kind = obj["kind"]
        model = create_namespaced_resource(group, version, kind, plural)
        self.run(self.client.create(model(obj)))

    def stop(self) -> None:
        async def stop() -> None:
            await self.client.close()
            await self.server.__aexit__(None, None, None)
            await self.emulator.__aexit__(None, None, None)

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


def _get_json(port: int, path: str) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return json.loads(response.read()) if response.status == 200 else None
    except (OSError, ValueError):
        return None
    finally:
        connection.close()


def _poll(
    condition: Callable[[], bool],
    what: str,
    process: subprocess.Popen[bytes],
    log: Path,
    interval_s: float = 0.002,
) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if process.poll() is not None:
            raise RuntimeError(f"controller exited {process.returncode}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval_s)


def _first_requests(
    names: list[str], port: int, controller: subprocess.Popen[bytes], log: Path
) -> list[float]:
    """Milliseconds from a request to its 200 for deployments no request reached yet (their clusters
    are fetched on demand)."""
    latencies = []
    for name in names:
        path = f"/seldon/{NAMESPACE}/{name}/api/v1.0/metadata"
        started = time.perf_counter()
        _poll(functools.partial(_answers, port, path), f"{path} to answer", controller, log)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _changes(
    emulator: _Emulator,
    applies: int,
    upstream_port: int,
    port: int,
    controller: subprocess.Popen[bytes],
    log: Path,
) -> tuple[list[float], list[float]]:
    """New SeldonDeployments, one at a time: milliseconds to their first 200 from the emulator's answer
    to the create, and from the create request."""
    latencies: list[float] = []
    with_emulator: list[float] = []
    for i in range(applies):
        name = f"new-{i}"
        for predictor in ("main", "canary"):
            emulator.create(SLICES, _slice(name, predictor, upstream_port))
        path = f"/seldon/{NAMESPACE}/{name}/api/v1.0/metadata"
        requested = time.perf_counter()
        emulator.create(SDEP, _sdep(name))
        # the emulator has stored the object and queued its watch event when it answers
        started = time.perf_counter()
        _poll(functools.partial(_answers, port, path), f"{path} to answer", controller, log)
        answered = time.perf_counter()
        latencies.append((answered - started) * 1000)
        with_emulator.append((answered - requested) * 1000)
    return latencies, with_emulator


def _kube(size: int, applies: int, upstream_port: int, workdir: Path, stats: bool) -> Figures:
    figures = Figures()
    emulator = _Emulator()
    names = [f"m{i}" for i in range(size)]
    objects = [(SDEP, _sdep(n)) for n in names]
    objects += [(SLICES, _slice(n, p, upstream_port)) for n in names for p in ("main", "canary")]
    emulator.load(objects)
    xds_port, health_port, listen_port = _free_port(), _free_port(), _free_port()
    bootstrap = render_bootstrap(
        NODE,
        Upstream("127.0.0.1", xds_port),
        admin_port=0,
        cluster=NODE,
        stats_prefixes=GATEWAY_STATS_PREFIXES if stats else None,
    )
    envoy = EnvoyProcess(bootstrap, workdir / f"kube-{stats}", concurrency=2, start_timeout_s=60)
    envoy.start()  # before the controller, as a gateway pod waits for its control plane
    log = workdir / f"controller-{stats}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "xds_controller.kube", "--api-server", emulator.url, "--log-level", "WARNING",
        "--xds-host", "127.0.0.1", "--xds-port", str(xds_port),
        "--health-host", "127.0.0.1", "--health-port", str(health_port),
        "--listen-host", "127.0.0.1", "--listen-port", str(listen_port),
    ]  # fmt: skip
    with log.open("wb") as out:
        started, envoy_cpu = time.perf_counter(), _cpu_s(envoy.pid or 0)
        controller = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:

        def in_sync() -> bool:
            status = _get_json(health_port, "/statusz")
            return bool(status and status["in_sync"] and status["deployments"] == size)

        # every 20 ms, not 2: each /statusz is answered on the controller's loop, which is busy syncing
        _poll(in_sync, f"Envoy to apply {size} deployments", controller, log, 0.02)
        figures.applied_s = time.perf_counter() - started
        figures.envoy_cpu_s = _cpu_s(envoy.pid or 0) - envoy_cpu
        figures.controller_cpu_s = _cpu_s(controller.pid)
        figures.envoy_rss_mb = _rss_mb(envoy.pid or 0)  # the full configuration, before any request

        def replayed() -> bool:
            status = _get_json(health_port, "/statusz")
            return bool(status and sum(status["events"].values()) >= len(objects))

        # kmock's watch replays every object it holds as ADDED (it ignores the list's resourceVersion,
        # from which an API server sends only later changes): the first requests wait until the
        # controller has read those, which costs it a second or so of CPU after the sync
        _poll(replayed, "the controller to read the emulator's replay", controller, log, 0.02)
        figures.extra["watch replay read (s from controller start)"] = time.perf_counter() - started
        untouched = [names[(i * 997) % size] for i in range(applies)]
        first = _first_requests(untouched, listen_port, controller, log)
        figures.first_request_p50_ms, figures.first_request_p90_ms = _percentiles(first)
        figures.extra["Envoy RSS after the full configuration (MB)"] = figures.envoy_rss_mb
        latencies, with_emulator = _changes(emulator, applies, upstream_port, listen_port, controller, log)
        figures.p50_ms, figures.p90_ms = _percentiles(latencies)
        p50, p90 = _percentiles(with_emulator)
        status, memory = envoy.admin_get("/memory")
        figures.extra["Envoy /memory after the changes"] = json.loads(memory) if status == 200 else {}
        figures.extra["from the create request (emulator included)"] = {"p50_ms": p50, "p90_ms": p90}
        figures.envoy_rss_mb = _rss_mb(envoy.pid or 0)
        figures.controller_rss_mb = _rss_mb(controller.pid)
        figures.extra["statusz"] = _get_json(health_port, "/statusz") or {}
    finally:
        controller.terminate()
        controller.wait(30)
        envoy.stop()
        emulator.stop()
    return figures


def _rows(size: int, name: str, kube: Figures, local: Figures) -> list[Row]:
    case = f"{size:,} SeldonDeployments, Kubernetes mode ({name})"
    return [
        Row(case, "Envoy RSS", kube.envoy_rss_mb, TARGET_ENVOY_MB, "issue target (<= 1 GB)", "MB", False),
        Row(case, "Envoy RSS", kube.envoy_rss_mb, local.envoy_rss_mb, "local path, same run", "MB", False),
        Row(case, "full config applied from controller start", kube.applied_s, TARGET_APPLIED_S,
            "issue target (<= 5 s)", "s", False),
        Row(case, "full config applied from controller start", kube.applied_s, local.applied_s,
            "local path, publish to ACK, same run", "s", False),
        Row(case, "Envoy CPU until applied", kube.envoy_cpu_s, local.envoy_cpu_s, "local path, same run", "s",
            False),
        Row(case, "change -> answer p50", kube.p50_ms, TARGET_P50_MS, "issue target (<= 100 ms)", "ms",
            False),
        Row(case, "change -> answer p50", kube.p50_ms, local.p50_ms, "local path, same run", "ms", False),
        Row(case, "change -> answer p90", kube.p90_ms, TARGET_P90_MS, "issue target (<= 250 ms)", "ms",
            False),
        Row(case, "change -> answer p90", kube.p90_ms, local.p90_ms, "local path, same run", "ms", False),
        Row(case, "first request to a deployment (routes, cluster on demand) p50", kube.first_request_p50_ms,
            local.p50_ms, "local path change -> answer p50, same run", "ms", False),
        Row(case, "first request to a deployment (routes, cluster on demand) p90", kube.first_request_p90_ms,
            local.p90_ms, "local path change -> answer p90, same run", "ms", False),
        Row(case, "controller RSS", kube.controller_rss_mb, TARGET_CONTROLLER_MB,
            "issue target (<= 500 MB)", "MB", False),
    ]  # fmt: skip


def run(flags: list[str]) -> None:
    quick = "--quick" in flags
    size = int(_flag(flags, "kube-size", "1000" if quick else "10000"))
    applies = int(_flag(flags, "applies", "5" if quick else "20"))
    variants = {"both": (True, False), "chart": (True,), "all": (False,)}[_flag(flags, "kube-stats", "chart")]
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = int(upstream.server_address[1])
    load_before = os.getloadavg()
    rows: list[Row] = []
    extra: dict[str, Any] = {"size": size, "applies": applies, "figures": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-xds-kube-") as tmp:
            print(f"  local path, {size:,} deployments ...", flush=True)
            local = _local(size, applies, port, Path(tmp))
            print(f"    {local}", flush=True)
            extra["figures"]["local"] = local.__dict__
            for stats in variants:
                name = "chart bootstrap" if stats else "every stat"
                print(f"  Kubernetes mode ({name}), {size:,} SeldonDeployments ...", flush=True)
                kube = _kube(size, applies, port, Path(tmp), stats)
                print(f"    {kube}", flush=True)
                extra["figures"][name] = kube.__dict__
                rows += _rows(size, name, kube, local)
    finally:
        upstream.shutdown()
    extra["load_average"] = {"before": load_before, "after": os.getloadavg()}
    print_table("In-cluster gateway at scale (lower is better everywhere)", rows)
    print(f"  results: {write_results('xds_kube', rows, extra)}")
