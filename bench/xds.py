"""`make bench` suite `xds`: the control plane at 1,000 and 10,000 deployments with a real Envoy.

For each size, deployments with two predictors each (75/25 canary, one REST and one gRPC cluster per
component, so 4 clusters and 4 endpoint assignments per deployment) are built into a snapshot by
`SnapshotBuilder` and served to a real Envoy over delta ADS and, in the same run, over state-of-the-world
ADS. The gateway is scoped (one RouteConfiguration and route scope per deployment), as `seldon-mesh up`
runs it. Figures:
- snapshot build: a cold build of every deployment (translate + pack; wall time, and this process's CPU
  time for it, since the machine may be shared), then a rebuild after one change;
- full config applied: from publishing the snapshot to Envoy ACKing every type at its version;
- apply to answer: one new deployment is applied (`SnapshotBuilder.update` with it alone, as the local
  mesh's reconcile does, + publish) and its route polled until it answers
  200 from a real upstream; p50 (and p90) over `--applies` applies;
- RSS of the controller (this process: builder, cache, server) and of Envoy.
Anchors: the issue's figures (Seldon Core 2's Go scheduler builds 10,000 models' snapshot in ~0.5 s; the
targets are < 1 s build, < 100 ms apply-to-answer p50, < 500 MB controller RSS) as fixed reference
rows, and SotW against delta in the same run.

Flags: --sizes=1000,10000, --applies=N (default 20), --sotw-applies=N (default 5: each SotW apply resends
every cluster), --quick (sizes 1000, 5 applies).
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.report import Row, print_table, write_results
from mesh.local.envoy import EnvoyProcess
from xds_controller import resource_types
from xds_controller.bootstrap import render_bootstrap
from xds_controller.builder import SnapshotBuilder
from xds_controller.cache import SnapshotCache
from xds_controller.server import ServerSettings, create_server
from xds_controller.snapshot import Snapshot
from xds_controller.translate import ComponentEndpoints, ComponentKey, GatewaySettings, Upstream

SCHEDULER_BUILD_S = 0.5  # Seldon Core 2's scheduler, 10,000 models (issue #4)
TARGET_BUILD_S = 1.0
TARGET_APPLY_MS = 100.0
TARGET_RSS_MB = 500.0
TIMEOUT_S = 600.0


# -- deployments: the shape xds_controller.translate reads -------------------------------------------------
@dataclass(frozen=True)
class _Unit:
    name: str
    children: tuple[_Unit, ...] = ()

    def nodes(self) -> Iterator[_Unit]:
        yield self


@dataclass(frozen=True)
class _Predictor:
    name: str
    graph: _Unit
    traffic: int
    shadow: bool = False

    def nodes(self) -> Iterator[_Unit]:
        return self.graph.nodes()


@dataclass(frozen=True)
class _Meta:
    name: str
    namespace: str = "bench"


@dataclass(frozen=True)
class _Spec:
    predictors: tuple[_Predictor, ...]


@dataclass(frozen=True)
class _Deployment:
    metadata: _Meta
    spec: _Spec
    annotations: dict[str, str] = field(default_factory=dict)


def _deployment(name: str) -> _Deployment:
    predictors = (_Predictor("main", _Unit("model"), 75), _Predictor("canary", _Unit("model"), 25))
    return _Deployment(_Meta(name), _Spec(predictors), {"seldon.io/rest-timeout": "5000"})


def _endpoints(deployment: _Deployment, port: int) -> dict[ComponentKey, ComponentEndpoints]:
    up = (Upstream("127.0.0.1", port),)
    return {
        ComponentKey("bench", deployment.metadata.name, p.name, "model"): ComponentEndpoints(http=up, grpc=up)
        for p in deployment.spec.predictors
    }


# -- the real pieces ----------------------------------------------------------------------------------------
class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ControlPlane:
    def __init__(self) -> None:
        self.cache = SnapshotCache()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(create_server(ServerSettings(), self.cache), self.loop)
        self.server, self.port = started.result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


def _rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.001)


def _runs(cache: SnapshotCache, node: str, snapshot: Snapshot) -> bool:
    acked = cache.status(node).acked
    return all(acked.get(u) == snapshot.version(u) for u in resource_types.PUSH_ORDER if snapshot.get(u))


def _answers(port: int, path: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except OSError:
        return False
    finally:
        connection.close()


@dataclass
class _Figures:
    build_s: float = 0.0
    build_cpu_s: float = 0.0  # this process's CPU time for that build (others cannot inflate it)
    rebuild_s: float = 0.0
    applied_s: dict[str, float] = field(default_factory=dict)
    apply_p50_ms: dict[str, float] = field(default_factory=dict)
    apply_p90_ms: dict[str, float] = field(default_factory=dict)
    controller_rss_mb: float = 0.0
    envoy_rss_mb: dict[str, float] = field(default_factory=dict)


def _measure(
    size: int, applies: dict[str, int], plane: _ControlPlane, upstream_port: int, workdir: Path
) -> _Figures:
    figures = _Figures()
    gateway = GatewaySettings(listen_port=_free_port(), scoped=True)
    deployments: list[_Deployment] = [_deployment(f"m{i}") for i in range(size)]
    endpoints: dict[ComponentKey, ComponentEndpoints] = {}
    for deployment in deployments:
        endpoints.update(_endpoints(deployment, upstream_port))
    builder = SnapshotBuilder(gateway)
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    snapshot = builder.build(deployments, endpoints)
    figures.build_s = time.perf_counter() - started
    figures.build_cpu_s = time.process_time() - cpu
    snapshot.consistency_check()
    gc.freeze()  # the cached fragments are long-lived: keep the cyclic GC from rescanning them
    changed = list(deployments)
    changed[size // 2] = _Deployment(
        _Meta(f"m{size // 2}"), changed[size // 2].spec, {"seldon.io/retries": "1"}
    )
    started = time.perf_counter()
    snapshot = builder.build(changed, endpoints)
    figures.rebuild_s = time.perf_counter() - started
    deployments = changed

    for mode in ("delta", "sotw"):
        node = f"bench-{size}-{mode}"
        bootstrap = render_bootstrap(
            node, Upstream("127.0.0.1", plane.port), admin_port=0, delta=mode == "delta"
        )
        envoy = EnvoyProcess(bootstrap, workdir / node, concurrency=2, start_timeout_s=60)
        envoy.start()
        try:
            started = time.perf_counter()
            plane.cache.set_snapshot(node, snapshot)
            _wait(lambda: _runs(plane.cache, node, snapshot), f"{mode} Envoy to apply {size} deployments")  # noqa: B023
            figures.applied_s[mode] = time.perf_counter() - started
            latencies = []
            for i in range(applies[mode]):
                new = _deployment(f"new-{mode}-{i}")
                endpoints.update(_endpoints(new, upstream_port))
                path = f"/seldon/bench/{new.metadata.name}/api/v1.0/metadata"
                started = time.perf_counter()
                plane.cache.set_snapshot(node, builder.update([new], [], endpoints))
                _wait(lambda path=path: _answers(gateway.listen_port, path), f"{new.metadata.name} to answer")  # type: ignore[misc]
                latencies.append((time.perf_counter() - started) * 1000)
            figures.apply_p50_ms[mode] = statistics.median(latencies)
            figures.apply_p90_ms[mode] = (
                statistics.quantiles(latencies, n=10)[-1] if len(latencies) > 1 else latencies[0]
            )
            figures.envoy_rss_mb[mode] = _rss_mb(envoy.pid or 0)
        finally:
            envoy.stop()
            plane.cache.forget(node)
        builder.build(deployments, endpoints)  # back to the base set for the next mode
    figures.controller_rss_mb = _rss_mb()
    gc.unfreeze()
    return figures


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rows(size: int, f: _Figures) -> list[Row]:
    case = f"{size:,} deployments"
    rows = [
        Row(case, "snapshot build, cold", f.build_s, SCHEDULER_BUILD_S * size / 10_000,
            "Seldon Core 2 scheduler (~0.5 s at 10k, scaled)", "s", higher_is_better=False),
        Row(case, "snapshot build, cold", f.build_s, TARGET_BUILD_S * size / 10_000,
            "issue target (< 1 s at 10k, scaled)", "s", higher_is_better=False),
        Row(case, "snapshot build, cold (CPU time)", f.build_cpu_s, TARGET_BUILD_S * size / 10_000,
            "issue target (< 1 s at 10k, scaled)", "s", higher_is_better=False),
        Row(case, "rebuild after one change", f.rebuild_s, SCHEDULER_BUILD_S * size / 10_000,
            "Seldon Core 2 scheduler (~0.5 s at 10k, scaled)", "s", higher_is_better=False),
        Row(case, "full config applied (delta)", f.applied_s["delta"], f.applied_s["sotw"],
            "SotW, same run", "s", higher_is_better=False),
        Row(case, "apply -> answer p50 (delta)", f.apply_p50_ms["delta"], TARGET_APPLY_MS,
            "issue target (< 100 ms)", "ms", higher_is_better=False),
        Row(case, "apply -> answer p50 (delta)", f.apply_p50_ms["delta"], f.apply_p50_ms["sotw"],
            "SotW, same run", "ms", higher_is_better=False),
        Row(case, "controller RSS", f.controller_rss_mb, TARGET_RSS_MB,
            "issue target (< 500 MB)", "MB", higher_is_better=False),
        Row(case, "Envoy RSS (delta)", f.envoy_rss_mb["delta"], f.envoy_rss_mb["sotw"],
            "SotW, same run", "MB", higher_is_better=False),
    ]  # fmt: skip
    return rows


def _flag(flags: Sequence[str], name: str, default: str) -> str:
    for flag in flags:
        if flag.startswith(f"--{name}="):
            return flag.split("=", 1)[1]
    return default


def run(flags: list[str]) -> None:
    quick = "--quick" in flags
    sizes = [int(s) for s in _flag(flags, "sizes", "1000" if quick else "1000,10000").split(",")]
    applies = int(_flag(flags, "applies", "5" if quick else "20"))
    # SotW resends every cluster on each apply (minutes at 10,000 deployments): fewer applies suffice
    sotw_applies = int(_flag(flags, "sotw-applies", "5"))
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    plane = _ControlPlane()
    rows: list[Row] = []
    extra: dict[str, Any] = {"applies": {"delta": applies, "sotw": min(applies, sotw_applies)}, "figures": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-xds-") as tmp:
            for size in sizes:
                print(f"  {size:,} deployments ...", flush=True)
                counts = {"delta": applies, "sotw": min(applies, sotw_applies)}
                figures = _measure(size, counts, plane, int(upstream.server_address[1]), Path(tmp))
                rows += _rows(size, figures)
                extra["figures"][str(size)] = figures.__dict__
                print(f"    {figures}", flush=True)
    finally:
        plane.stop()
        upstream.shutdown()
    extra["load_average"] = os.getloadavg()  # the machine is shared: read the figures with this in mind
    print_table("xDS control plane at scale (lower is better everywhere)", rows)
    print(f"  results: {write_results('xds', rows, extra)}")
