"""`make bench` suite `graph`: what graph orchestration (Envoy + extproc) and the gateway itself add.

Cases, each against an anchor measured in the same run on the same runtimes:
- a transformer -> model chain through the gateway, vs a client that calls the two runtimes itself,
  in order (POST /transform-input, then /predict with its output);
- a combiner over three models through the gateway, vs a client calling the three models in order and
  then the combiner's /aggregate;
- a single-model predictor through the gateway (Envoy straight to the runtime, ext_proc off), vs calling
  that runtime directly;
- the two graphs again through a second `seldon-mesh up --graph-edge ext_proc` on the same manifest
  (Envoy opens an ext_proc stream for each REST graph request instead of routing it to extproc's REST
  edge as a plain HTTP/1.1 upstream, the default) and a third with `--graph-edge ext_proc-http` (the
  ext_proc filter POSTing the body to that edge), each against the same anchor on that mesh's own
  runtimes.
One keep-alive HTTP/1.1 client (the standard library's, the lightest there is, so that client
overhead does not hide what we add) sends requests one at a time (latency, not throughput); ours and the
anchor alternate request by request, in rounds, and the best round counts for each (the results also
give the median over rounds of each round's own difference). The table shows p50 latency; the added
p50 (ours - anchor) is in the results file and printed below the table, with the CPU time the mesh's
Envoy and extproc spent per request of ours (from /proc; steadier than latency on a shared machine).

Flags: --requests=N per round and case (default 400), --rounds=N (default 3), --quick (100, 1).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.report import Row, print_table, write_results

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ROOT / "tests/data/graphs"  # the user classes the graph tests use: Affine, Summer

MANIFEST = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: chain}}
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: pre, workingDir: {classes}, env: [{{name: MODEL_NAME, value: Affine}}]}}
              - {{name: model, workingDir: {classes}, env: [{{name: MODEL_NAME, value: Affine}}]}}
      graph:
        name: pre
        type: TRANSFORMER
        parameters: [{{name: offset, value: "1", type: FLOAT}}]
        children:
          - {{name: model, type: MODEL, parameters: [{{name: scale, value: "2", type: FLOAT}}]}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: combo}}
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: sum, workingDir: {classes}, env: [{{name: MODEL_NAME, value: Summer}}]}}
              - {{name: m1, workingDir: {classes}, env: [{{name: MODEL_NAME, value: Affine}}]}}
              - {{name: m2, workingDir: {classes}, env: [{{name: MODEL_NAME, value: Affine}}]}}
              - {{name: m3, workingDir: {classes}, env: [{{name: MODEL_NAME, value: Affine}}]}}
      graph:
        name: sum
        type: COMBINER
        children:
          - {{name: m1, type: MODEL}}
          - {{name: m2, type: MODEL}}
          - {{name: m3, type: MODEL}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: single}}
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: model, workingDir: {classes}, env: [{{name: MODEL_NAME, value: Affine}}]}}
      graph: {{name: model, type: MODEL}}
"""

BODY = {"data": {"ndarray": [[1.0, 2.0, 3.0, 4.0]]}}


def _flag(flags: list[str], name: str, default: int) -> int:
    for flag in flags:
        if flag.startswith(f"--{name}="):
            return int(flag.split("=", 1)[1])
    return default


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def _paired(
    ours: Callable[[], None], anchor: Callable[[], None], count: int
) -> tuple[list[float], list[float]]:
    """`count` latencies of each, ours and the anchor's requests alternating one by one, so both see
    the same load from the rest of the machine (back-to-back blocks of 400 let a burst of other work
    land on one side only: anchors of one case varied 0.3-0.5 ms between cases of a run)."""
    for _ in range(min(50, count)):
        ours()
        anchor()
    mine: list[float] = []
    theirs: list[float] = []
    for _ in range(count):
        for call, samples in ((ours, mine), (anchor, theirs)):
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1000)
    return mine, theirs


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Client:
    """Keep-alive `http.client` connections, one per host:port."""

    def __init__(self) -> None:
        self._connections: dict[str, http.client.HTTPConnection] = {}

    def post(self, url: str, body: Any) -> dict[str, Any]:
        parsed = urlsplit(url)
        payload = json.dumps(body)
        for attempt in range(2):
            connection = self._connections.get(parsed.netloc)
            if connection is None:
                connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=30)
                self._connections[parsed.netloc] = connection
            try:
                connection.request("POST", parsed.path, payload, {"content-type": "application/json"})
                response = connection.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException):  # the server closed an idle keep-alive connection
                connection.close()
                del self._connections[parsed.netloc]
                if attempt:
                    raise
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {data[:300]!r}")
        return dict(json.loads(data))

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()


def run(flags: list[str]) -> None:
    quick = "--quick" in flags
    requests = _flag(flags, "requests", 100 if quick else 400)
    rounds = _flag(flags, "rounds", 1 if quick else 3)
    with tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
        folder = Path(tmp)
        (folder / "graphs.yaml").write_text(MANIFEST.format(classes=CLASSES))
        meshes: dict[str, _Up] = {}
        try:
            # one after the other: each picks its free ports as it starts
            for edge in ("http", "ext_proc", "ext_proc-http"):
                meshes[edge] = _Up(folder, edge).start()
                _wait_serving(meshes[edge].gateway)
            rows, extra = _measure(meshes, requests, rounds)
        finally:
            for mesh in meshes.values():
                mesh.stop()
    print_table("graph orchestration and gateway overhead (p50 latency, one request at a time)", rows)
    for case, added in extra["added_p50_ms"].items():
        paired = extra["added_p50_ms_median_of_rounds"][case]
        used = extra["cpu_us_per_request"][case]
        print(
            f"  added p50 {case}: {added:+.3f} ms (same-round differences, median: {paired:+.3f}); "
            f"CPU per request envoy {used['envoy']:.0f} us, extproc {used['extproc']:.0f} us"
        )
    print(f"  results: {write_results('graph', rows, extra)}")


class _Up:
    """`seldon-mesh up` on the bench manifest, REST graphs over `--graph-edge <edge>`."""

    def __init__(self, folder: Path, edge: str) -> None:
        self.edge = edge
        self.state = folder / f"state-{edge}"
        self.gateway = f"http://127.0.0.1:{_free_port()}"
        self._folder = folder
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> _Up:
        log = (self._folder / f"up-{self.edge}.log").open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "mesh.cli.main", "up", str(self._folder / "graphs.yaml"),
             "--port", self.gateway.rsplit(":", 1)[1], "--state-dir", str(self.state),
             "--graph-edge", self.edge],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        log.close()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(60)


def _nodes(state: Path) -> dict[tuple[str, str], str]:
    """node address per (deployment, node), from the graph config extproc serves."""
    document = json.loads((state / "graphs.json").read_text())
    found: dict[tuple[str, str], str] = {}

    def walk(deployment: str, node: dict[str, Any]) -> None:
        if node.get("http"):
            found[(deployment, node["name"])] = node["http"]
        for child in node.get("children", []):
            walk(deployment, child)

    for deployment in document["deployments"]:
        walk(deployment["name"], deployment["predictors"][0]["graph"])
    return found


def _pids(state: Path) -> dict[str, int]:
    """The mesh's Envoy and extproc process ids, as `up` records them in its state directory."""
    return {
        "envoy": int((state / "envoy/envoy.pid").read_text()),
        "extproc": int((state / "extproc.pid").read_text()),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (utime and stime of /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # restarted (or not Linux): count nothing rather than fail the run
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_serving(gateway: str, names: tuple[str, ...] = ("chain", "combo", "single")) -> None:
    with httpx.Client(timeout=30) as probe:
        for name in names:
            url = f"{gateway}/seldon/default/{name}/api/v1.0/predictions"
            _wait(lambda url=url: probe.post(url, json=BODY).status_code == 200, 180, f"{name} to serve")


def _measure(meshes: dict[str, _Up], requests: int, rounds: int) -> tuple[list[Row], dict[str, Any]]:
    client = _Client()
    for mesh in meshes.values():
        state = mesh.state
        _wait(lambda: len(_nodes(state)) == 7, 30, "every node in the graph config")  # noqa: B023
    nodes = {edge: _nodes(mesh.state) for edge, mesh in meshes.items()}

    def node(edge: str, deployment: str, name: str, path: str) -> str:
        return f"http://{nodes[edge][(deployment, name)]}{path}"

    def through(name: str, edge: str = "http") -> Callable[[], None]:
        url = f"{meshes[edge].gateway}/seldon/default/{name}/api/v1.0/predictions"

        def call() -> None:
            client.post(url, BODY)

        return call

    def chain_by_hand(edge: str = "http") -> Callable[[], None]:
        def call() -> None:
            middle = client.post(node(edge, "chain", "pre", "/transform-input"), BODY)
            client.post(node(edge, "chain", "model", "/predict"), middle)

        return call

    def combo_by_hand(edge: str = "http") -> Callable[[], None]:
        def call() -> None:
            outputs = [client.post(node(edge, "combo", m, "/predict"), BODY) for m in ("m1", "m2", "m3")]
            client.post(node(edge, "combo", "sum", "/aggregate"), {"seldonMessages": outputs})

        return call

    def single_direct() -> None:
        client.post(node("http", "single", "model", "/api/v1.0/predictions"), BODY)

    by_hand = "client calls the nodes in order"
    cases = {
        "transformer->model chain": (through("chain"), chain_by_hand(), by_hand),
        "chain, --graph-edge ext_proc": (through("chain", "ext_proc"), chain_by_hand("ext_proc"), by_hand),
        "combiner over 3 models": (through("combo"), combo_by_hand(), by_hand),
        "combiner, --graph-edge ext_proc": (through("combo", "ext_proc"), combo_by_hand("ext_proc"), by_hand),
        "chain, --graph-edge ext_proc-http": (
            through("chain", "ext_proc-http"),
            chain_by_hand("ext_proc-http"),
            by_hand,
        ),
        "combiner, --graph-edge ext_proc-http": (
            through("combo", "ext_proc-http"),
            combo_by_hand("ext_proc-http"),
            by_hand,
        ),
        "single model via gateway": (through("single"), single_direct, "runtime called directly"),
    }
    edges = {
        case: next((e for e in ("ext_proc-http", "ext_proc") if case.endswith(e)), "http") for case in cases
    }
    best: dict[str, tuple[list[float], list[float]]] = {}
    differences: dict[str, list[float]] = {case: [] for case in cases}
    cpu: dict[str, dict[str, list[float]]] = {case: {"envoy": [], "extproc": []} for case in cases}
    for _ in range(rounds):
        for case, (ours, anchor, _) in cases.items():
            pids = _pids(meshes[edges[case]].state)
            before = {kind: _cpu_seconds(pid) for kind, pid in pids.items()}
            mine, theirs = _paired(ours, anchor, requests)
            # the anchor's requests go straight to runtimes: the mesh's processes worked for ours only
            served = requests + min(50, requests)
            for kind, pid in pids.items():
                cpu[case][kind].append((_cpu_seconds(pid) - before[kind]) / served * 1e6)
            differences[case].append(statistics.median(mine) - statistics.median(theirs))
            previous = best.get(case)
            if previous is None:
                best[case] = (mine, theirs)
            else:
                best[case] = (
                    min(previous[0], mine, key=statistics.median),
                    min(previous[1], theirs, key=statistics.median),
                )
    client.close()
    rows, added, p99 = [], {}, {}
    for case, (mine, theirs) in best.items():
        anchor_name = cases[case][2]
        rows.append(Row(case, "p50 latency", _p(mine, 0.5), _p(theirs, 0.5), anchor_name, "ms", False))
        added[case] = _p(mine, 0.5) - _p(theirs, 0.5)
        p99[case] = {"ours": _p(mine, 0.99), "anchor": _p(theirs, 0.99)}
    extra = {
        "graph_edge": "cases without a flag: seldon-mesh up's default, REST graph routes going to extproc's "
        "REST edge (HTTP/1.1 upstream); '--graph-edge ext_proc' cases: a second seldon-mesh up whose REST "
        "graph routes open an ext_proc stream (gRPC) instead; '--graph-edge ext_proc-http' cases: a third, "
        "whose ext_proc filter POSTs the body as JSON to the REST edge (Envoy's http_service transport); "
        "anchors on each mesh's own runtimes",
        "added_p50_ms": added,
        # the same difference taken within each round (ours and the anchor measured side by side), then
        # the median over rounds: less at the mercy of one lucky anchor round than best-of-rounds
        "added_p50_ms_median_of_rounds": {case: statistics.median(d) for case, d in differences.items()},
        "p99_ms": p99,
        # CPU time of the mesh's Envoy and extproc per request of ours, median over rounds: steadier than
        # latency on a shared machine (one OS clock tick is 10 ms: ~20 us at 400 requests a round)
        "cpu_us_per_request": {
            case: {kind: statistics.median(values) for kind, values in kinds.items()}
            for case, kinds in cpu.items()
        },
        "requests_per_round": requests,
        "rounds": rounds,
        # other work on the machine skews latency figures; the 1-minute load average says how much
        "load_average_1m": os.getloadavg()[0],
    }
    return rows, extra
