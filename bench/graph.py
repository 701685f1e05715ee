"""`make bench` suite `graph`: what graph orchestration (Envoy + extproc) and the gateway itself add.

Cases, each against an anchor measured in the same run on the same runtimes:
- a transformer -> model chain through the gateway, vs a client that calls the two runtimes itself,
  in order (POST /transform-input, then /predict with its output);
- a combiner over three models through the gateway, vs a client calling the three models in order and
  then the combiner's /aggregate;
- a single-model predictor through the gateway (Envoy straight to the runtime, ext_proc off), vs calling
  that runtime directly;
- the two graphs again over extproc's REST edge (`extproc --http-port`: Envoy routes the request to
  extproc as a plain HTTP/1.1 upstream instead of an ext_proc stream), against the same anchors. `up`
  does not route that way (yet), so the bench starts its own extproc on the graph config `up` wrote
  (same node runtimes) and its own Envoy with a static route per deployment, shaped like the gateway's:
  same Envoy binary and worker count, `x-seldon-predictor` added, no ext_proc filter.
One keep-alive HTTP/1.1 client (the standard library's, the lightest there is, so that client
overhead does not hide what we add) sends requests one at a time (latency, not throughput); ours and the
anchor alternate in rounds and the best round counts for each. The table shows p50 latency; the added
p50 (ours - anchor) is in the results file and printed below the table.

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


def _latencies(call: Callable[[], None], count: int) -> list[float]:
    for _ in range(min(50, count)):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


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
        port = _free_port()
        state = folder / "state"
        log = (folder / "up.log").open("ab")
        up = subprocess.Popen(
            [sys.executable, "-m", "mesh.cli.main", "up", str(folder / "graphs.yaml"), "--port", str(port),
             "--state-dir", str(state)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        edge: _RestEdge | None = None
        try:
            _wait_serving(f"http://127.0.0.1:{port}")
            edge = _RestEdge(folder, state / "graphs.json").start()
            rows, extra = _measure(f"http://127.0.0.1:{port}", edge.gateway, state, requests, rounds)
        finally:
            if edge is not None:
                edge.stop()
            up.terminate()
            up.wait(60)
            log.close()
    print_table("graph orchestration and gateway overhead (p50 latency, one request at a time)", rows)
    for case, added in extra["added_p50_ms"].items():
        print(f"  added p50 {case}: {added:+.3f} ms")
    print(f"  results: {write_results('graph', rows, extra)}")


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


def _wait_serving(gateway: str, names: tuple[str, ...] = ("chain", "combo", "single")) -> None:
    with httpx.Client(timeout=30) as probe:
        for name in names:
            url = f"{gateway}/seldon/default/{name}/api/v1.0/predictions"
            _wait(lambda url=url: probe.post(url, json=BODY).status_code == 200, 180, f"{name} to serve")


HCM_NAME = "envoy.filters.network.http_connection_manager"
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _header(key: str, value: str) -> dict[str, Any]:
    return {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}


class _RestEdge:
    """Its own `python -m extproc --http-port` on `up`'s graph config, behind its own static Envoy."""

    def __init__(self, folder: Path, config: Path) -> None:
        self._folder = folder
        self._config = config
        self._http_port = _free_port()
        self.gateway = f"http://127.0.0.1:{_free_port()}"
        self._extproc: subprocess.Popen[bytes] | None = None
        self._envoy: Any = None

    def start(self) -> _RestEdge:
        from mesh.local.envoy import EnvoyProcess  # the bench's only use of mesh internals

        log = (self._folder / "edge-extproc.log").open("ab")
        self._extproc = subprocess.Popen(
            [sys.executable, "-m", "extproc", "--port", "0", "--http-port", str(self._http_port),
             "--config", str(self._config), "--state-dir", str(self._folder / "edge-state")],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        log.close()
        self._envoy = EnvoyProcess(self._bootstrap(), self._folder / "edge-envoy")
        self._envoy.start()
        _wait_serving(self.gateway, ("chain", "combo"))
        return self

    def _bootstrap(self) -> dict[str, Any]:
        document = json.loads(self._config.read_text())
        routes = [
            {
                "match": {"prefix": f"/seldon/{d['namespace']}/{d['name']}/"},
                "route": {"cluster": "extproc-rest", "timeout": "60s"},
                "request_headers_to_add": [_header("x-seldon-predictor", d["predictors"][0]["name"])],
            }
            for d in document["deployments"]
        ]
        hcm = {
            "@type": HCM_TYPE,
            "stat_prefix": "edge",
            "route_config": {"virtual_hosts": [{"name": "seldon", "domains": ["*"], "routes": routes}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}],
        }
        listener = {
            "name": "edge",
            "address": _address(int(urlsplit(self.gateway).port or 0)),
            "filter_chains": [{"filters": [{"name": HCM_NAME, "typed_config": hcm}]}],
        }
        endpoint = {"endpoint": {"address": _address(self._http_port)}}
        cluster = {
            "name": "extproc-rest",
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "extproc-rest", "endpoints": [{"lb_endpoints": [endpoint]}]},
        }
        return {
            "static_resources": {"listeners": [listener], "clusters": [cluster]},
            "admin": {"address": _address(0)},
        }

    def stop(self) -> None:
        if self._envoy is not None:
            self._envoy.stop()
        if self._extproc is not None:
            self._extproc.terminate()
            self._extproc.wait(30)


def _measure(
    gateway: str, edge: str, state: Path, requests: int, rounds: int
) -> tuple[list[Row], dict[str, Any]]:
    client = _Client()
    _wait(lambda: len(_nodes(state)) == 7, 30, "every node in the graph config")
    nodes = _nodes(state)

    def node(deployment: str, name: str, path: str) -> str:
        return f"http://{nodes[(deployment, name)]}{path}"

    def through(name: str, front: str = gateway) -> Callable[[], None]:
        url = f"{front}/seldon/default/{name}/api/v1.0/predictions"
        return lambda: client.post(url, BODY) and None

    def chain_by_hand() -> None:
        middle = client.post(node("chain", "pre", "/transform-input"), BODY)
        client.post(node("chain", "model", "/predict"), middle)

    def combo_by_hand() -> None:
        outputs = [client.post(node("combo", m, "/predict"), BODY) for m in ("m1", "m2", "m3")]
        client.post(node("combo", "sum", "/aggregate"), {"seldonMessages": outputs})

    def single_direct() -> None:
        client.post(node("single", "model", "/api/v1.0/predictions"), BODY)

    by_hand = "client calls the nodes in order"
    cases = {
        "transformer->model chain": (through("chain"), chain_by_hand, by_hand),
        "chain, REST edge": (through("chain", edge), chain_by_hand, by_hand),
        "combiner over 3 models": (through("combo"), combo_by_hand, by_hand),
        "combiner, REST edge": (through("combo", edge), combo_by_hand, by_hand),
        "single model via gateway": (through("single"), single_direct, "runtime called directly"),
    }
    best: dict[str, tuple[list[float], list[float]]] = {}
    for _ in range(rounds):
        for case, (ours, anchor, _) in cases.items():
            mine, theirs = _latencies(ours, requests), _latencies(anchor, requests)
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
        "rest_edge": "', REST edge' cases: Envoy routes to extproc --http-port (static route, module doc)",
        "added_p50_ms": added,
        "p99_ms": p99,
        "requests_per_round": requests,
        "rounds": rounds,
        # other work on the machine skews latency figures; the 1-minute load average says how much
        "load_average_1m": os.getloadavg()[0],
    }
    return rows, extra
