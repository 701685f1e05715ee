"""`make bench` suite `runtime`: our model runtime against MLServer 1.7.1 (V2) and Seldon Core 1.18's Python
wrapper (Seldon v1), all serving the same scikit-learn iris model with the same number of workers.

Every server is driven by the same load generators in the same run, interleaved (ours, anchor, ours,
anchor, ...; the best of the rounds counts for each): `wrk` for REST, and for gRPC a small asyncio
generator of ours that sends pre-serialised request bytes over one HTTP/2 channel. Cases: REST and gRPC,
concurrency 1 and 16, a 1-row iris request and a 10,000 x 10 FP32 request (to a model trained on 10
features). Peak RSS is the high-water mark (VmHWM) of each server's processes over the whole run.

MLServer runs with `parallel_workers: 0` (inference in the server process, its fastest setting: the
default of 1 adds a process hop per request) and without its metrics server, so the anchor is MLServer at
its best. Both protocols ask for `predict_proba`, so every server does the same model work. A last
section ("batched") serves iris with adaptive batching on both ours and MLServer (16 requests, 2 ms) and
repeats the concurrency-16 1-row cases.

Flags: --duration=SECONDS per measurement (default 5), --rounds=N (default 2), --workers=N (default 1),
--quick (1 s, 1 round: a smoke run).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.envs import mlserver_bin, seldon_core_bin
from bench.report import Row, print_table, write_results

ROOT = Path(__file__).resolve().parents[1]
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
WIDE_ROWS, WIDE_COLUMNS = 10_000, 10
BATCH_SIZE, BATCH_TIME_MS = 16, 2.0  # the adaptive-batching section, same settings for both servers
GRPC_CLIENT = "h2load"  # or "python" (--grpc-client=python): our asyncio generator, bytes in and out

SELDON_CORE_MODEL = """
import joblib


class IrisModel:
    def __init__(self):
        self.model = joblib.load("model.joblib")

    def predict(self, X, features_names=None):
        return self.model.predict_proba(X)
"""


# --- models ------------------------------------------------------------------------------------------


def train(folder: Path) -> dict[str, Path]:
    """Model folders: iris (4 features), wide (10 features, for the 10,000-row payload) and batched (iris
    again, served with adaptive batching by ours and by MLServer)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    rng = np.random.default_rng(0)
    wide = np.hstack([features, rng.normal(size=(len(features), WIDE_COLUMNS - 4))])
    folders = {}
    for name, x in (("iris", features), ("wide", wide), ("batched", features)):
        target = folder / name
        target.mkdir()
        joblib.dump(LogisticRegression(max_iter=1000).fit(x, labels), target / "model.joblib")
        (target / "IrisModel.py").write_text(SELDON_CORE_MODEL)
        settings = {"name": name, "implementation": "mlserver_sklearn.SKLearnModel"}
        settings["parameters"] = {"uri": "./model.joblib"}
        if name == "batched":  # MLServer's adaptive batching: max_batch_time is in seconds
            settings.update(max_batch_size=BATCH_SIZE, max_batch_time=BATCH_TIME_MS / 1000)
        (target / "model-settings.json").write_text(json.dumps(settings))
        folders[name] = target
    return folders


# --- servers -----------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    protocol: str  # "v2" or "v1"
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    model: str

    def peak_rss_mb(self) -> float:
        return sum(_hwm_kb(pid) for pid in _tree(self.process.pid)) / 1024


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree(pid: int) -> list[int]:
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            children = []
        pids += map(int, children)
        frontier += map(int, children)
    return pids


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextmanager
def serve(kind: str, folder: Path, workers: int, log_dir: Path) -> Iterator[Server]:
    http_port, grpc_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if kind == "ours":
        command = [sys.executable, "-m", "model_runtime", "--implementation", "SKLEARN_SERVER"]
        command += ["--model-uri", str(folder), "--name", folder.name, "--workers", str(workers)]
        command += ["--http-port", str(http_port), "--grpc-port", str(grpc_port), "--log-level", "WARNING"]
        if folder.name == "batched":
            command += ["--max-batch-size", str(BATCH_SIZE), "--max-batch-time-ms", str(BATCH_TIME_MS)]
        env["PYTHONPATH"] = str(ROOT)
        protocol, cwd = "both", ROOT
    elif kind == "mlserver":
        settings = {
            "http_port": http_port,
            "grpc_port": grpc_port,
            "parallel_workers": 0 if workers == 1 else workers,
            "metrics_endpoint": None,
            "debug": False,
        }
        (folder / "settings.json").write_text(json.dumps(settings))
        command = [str(mlserver_bin() / "mlserver"), "start", str(folder)]
        protocol, cwd = "v2", folder
    else:
        command = [
            str(seldon_core_bin() / "seldon-core-microservice"),
            "IrisModel",
            "--service-type",
            "MODEL",
        ]
        command += ["--http-port", str(http_port), "--grpc-port", str(grpc_port)]
        command += ["--metrics-port", str(_free_port()), "--workers", str(workers)]
        env.update(GUNICORN_WORKERS=str(workers), SELDON_LOG_LEVEL="WARNING", GUNICORN_THREADS="1")
        protocol, cwd = "v1", folder
    log = (log_dir / f"{kind}-{folder.name}.log").open("wb")
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = Server(kind, protocol, process, http_port, grpc_port, folder.name)
    try:
        _wait_ready(server, log.name)
        yield server
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _wait_ready(server: Server, log_name: str) -> None:
    url = f"http://127.0.0.1:{server.http_port}" + (
        f"/v2/models/{server.model}/ready" if server.name == "mlserver" else "/health/ping"
    )
    if server.name == "ours":
        url = f"http://127.0.0.1:{server.http_port}/ready"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {Path(log_name).read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    else:
        raise RuntimeError(f"{server.name} not ready after 120 s: {Path(log_name).read_text()[-3000:]}")
    time.sleep(0.5)  # extra workers bind once loaded, and the gRPC port may trail REST


# --- payloads ----------------------------------------------------------------------------------------


def rows_for(case: str) -> np.ndarray:
    if case == "1-row":
        return np.asarray([IRIS_ROW], dtype=np.float32)
    return np.random.default_rng(1).normal(size=(WIDE_ROWS, WIDE_COLUMNS)).astype(np.float32)


def v2_json(model: str, rows: np.ndarray) -> bytes:
    body = {
        "inputs": [
            {"name": "input-0", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}
        ],
        "outputs": [{"name": "predict_proba"}],
    }
    return json.dumps(body).encode()


def v1_json(rows: np.ndarray) -> bytes:
    return json.dumps({"data": {"ndarray": rows.tolist()}}).encode()


def v2_grpc(model: str, rows: np.ndarray) -> bytes:
    from generated.inference import dataplane_pb2 as v2

    request = v2.ModelInferRequest(model_name=model)
    item = request.inputs.add(name="input-0", datatype="FP32", shape=list(rows.shape))
    item.contents.fp32_contents.extend(rows.ravel().tolist())
    request.outputs.add(name="predict_proba")
    return request.SerializeToString()


def v1_grpc(rows: np.ndarray) -> bytes:
    from generated.seldon import prediction_pb2 as pb

    message = pb.SeldonMessage()
    message.data.tensor.shape.extend(rows.shape)
    message.data.tensor.values.extend(rows.astype(np.float64).ravel().tolist())
    return message.SerializeToString()


# --- load generators ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_WRK_SCRIPT = """
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""


def run_wrk(url: str, body: bytes, concurrency: int, duration: float, work: Path) -> Measurement:
    body_file, script = work / "body.json", work / "post.lua"
    body_file.write_bytes(body)
    script.write_text(_WRK_SCRIPT)
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--latency"]
    command += ["-s", str(script), "--timeout", "30s", url]
    out = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "BENCH_BODY": str(body_file)}, check=True
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no Requests/sec line:\n{out}")
    rps = float(found.group(1))
    p50 = _wrk_latency(out, "50%")
    p99 = _wrk_latency(out, "99%")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    return Measurement(rps, p50, p99, errors)


def _wrk_latency(out: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_h2load(
    target: str, method: str, body: bytes, concurrency: int, duration: float, work: Path
) -> Measurement:
    """gRPC with h2load (nghttp2's C load generator): one HTTP/2 connection carrying `concurrency` streams,
    each a pre-framed unary call. Latencies come from its per-request log. h2load cannot see a gRPC
    status (it travels in trailers), so `run` checks every server's gRPC answer before timing it."""
    framed = work / "grpc-body.bin"
    framed.write_bytes(b"\0" + len(body).to_bytes(4, "big") + body)
    log = work / "h2load.log"
    log.unlink(missing_ok=True)
    command = ["h2load", "-t1", "-c1", f"-m{concurrency}", f"-D{max(1, round(duration))}", "-d", str(framed)]
    command += ["-H", "content-type: application/grpc", "-H", "te: trailers", "--log-file", str(log)]
    command += [f"http://{target}{method}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    elapsed = re.search(r"finished in ([\d.]+)(ms|s)", out)
    if done is None or elapsed is None:
        raise RuntimeError(f"cannot read h2load output:\n{out}")
    seconds = float(elapsed.group(1)) / (1000 if elapsed.group(2) == "ms" else 1)
    durations = [int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines() if line.strip()]
    ms = np.asarray(durations or [float("nan")])
    return Measurement(
        int(done.group(2)) / seconds,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        int(done.group(1)) - int(done.group(2)),
    )


def _call_once(target: str, method: str, body: bytes) -> None:
    import grpc

    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(target, options=options) as channel:
        channel.unary_unary(method)(body, timeout=60)


def run_grpc(target: str, method: str, body: bytes, concurrency: int, duration: float) -> Measurement:
    return asyncio.run(_grpc_load(target, method, body, concurrency, duration))


async def _grpc_load(target: str, method: str, body: bytes, concurrency: int, duration: float) -> Measurement:
    import grpc

    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary(method)  # bytes in, bytes out: the client does no protobuf work
        await call(body, timeout=60)  # warm the connection
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    await call(body, timeout=60)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000 if latencies else np.asarray([float("nan")])
    return Measurement(
        len(latencies) / elapsed, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), errors
    )


# --- the suite ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    transport: str  # REST or gRPC
    concurrency: int
    payload: str  # 1-row or 10000x10

    @property
    def label(self) -> str:
        return f"{self.transport} c={self.concurrency} {self.payload}"


def _request(server: Server, protocol: str, case: Case) -> tuple[str, bytes]:
    """(URL or gRPC method, body) for this server speaking `protocol`."""
    rows = rows_for(case.payload)
    if case.transport == "REST":
        base = f"http://127.0.0.1:{server.http_port}"
        if protocol == "v2":
            return f"{base}/v2/models/{server.model}/infer", v2_json(server.model, rows)
        return f"{base}/api/v1.0/predictions", v1_json(rows)
    if protocol == "v2":
        return "/inference.GRPCInferenceService/ModelInfer", v2_grpc(server.model, rows)
    return "/seldon.protos.Seldon/Predict", v1_grpc(rows)


def _measure(
    server: Server, protocol: str, case: Case, duration: float, work: Path, grpc_client: str = GRPC_CLIENT
) -> Measurement:
    where, body = _request(server, protocol, case)
    if case.transport == "REST":
        return run_wrk(where, body, case.concurrency, duration, work)
    target = f"127.0.0.1:{server.grpc_port}"
    if grpc_client == "python":
        return run_grpc(target, where, body, case.concurrency, duration)
    _call_once(target, where, body)  # h2load cannot see gRPC statuses: make sure this call succeeds
    return run_h2load(target, where, body, case.concurrency, duration, work)


def _check_same_numbers(ours: Server, anchor: Server, protocol: str) -> None:
    """Before timing anything: both servers must give the same probabilities for the same request."""
    case = Case("REST", 1, "1-row")
    answers = []
    for server in (ours, anchor):
        url, body = _request(server, protocol, case)
        reply = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30)
        reply.raise_for_status()
        data = reply.json()
        answers.append(data["outputs"][0]["data"] if protocol == "v2" else data["data"]["ndarray"])
    np.testing.assert_allclose(np.ravel(answers[0]), np.ravel(answers[1]), rtol=1e-5)


def run(flags: list[str]) -> None:
    options = dict(_flag(f) for f in flags)
    quick = "quick" in options
    duration = float(options.get("duration", 1 if quick else 5))
    rounds = int(options.get("rounds", 1 if quick else 2))
    workers = int(options.get("workers", 1))
    grpc_client = options.get("grpc-client", GRPC_CLIENT)
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install -y {package} (make bench installs it)")
    work = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    folders = train(work)
    cases = [
        Case(transport, concurrency, payload)
        for payload in ("1-row", f"{WIDE_ROWS}x{WIDE_COLUMNS}")
        for transport in ("REST", "gRPC")
        for concurrency in (1, 16)
    ]
    rows: list[Row] = []
    raw: list[dict[str, Any]] = []
    rss: dict[str, float] = {}
    for anchor_kind, protocol, anchor_label in (
        ("mlserver", "v2", "MLServer 1.7.1 (V2)"),
        ("seldon-core", "v1", "Seldon Core 1.18 wrapper (v1)"),
    ):
        sections = [("", "1-row", "iris"), ("", f"{WIDE_ROWS}x{WIDE_COLUMNS}", "wide")]
        if anchor_kind == "mlserver":
            sections.append(("batched ", "1-row", "batched"))
        for prefix, payload, folder_key in sections:
            if anchor_kind == "seldon-core" and payload != "1-row" and quick:
                continue
            folder = folders[folder_key]
            with (
                serve("ours", folder, workers, work) as ours,
                serve(anchor_kind, folder, workers, work) as anchor,
            ):
                if payload == "1-row":
                    _check_same_numbers(ours, anchor, protocol)
                wanted = [c for c in cases if c.payload == payload and (not prefix or c.concurrency > 1)]
                for case in wanted:
                    best: dict[str, Measurement] = {}
                    for _ in range(rounds):
                        for server in (ours, anchor):  # interleaved
                            m = _measure(server, protocol, case, duration, work, grpc_client)
                            key = server.name
                            if key not in best or m.rps > best[key].rps:
                                best[key] = m
                    o, a = best["ours"], best[anchor_kind]
                    label = f"{prefix}{protocol} {case.label}"
                    print(
                        f"  {label:<32} ours {o.rps:9.1f} req/s p50 {o.p50_ms:7.2f} ms p99 {o.p99_ms:7.2f} ms"
                        f" | {anchor_kind} {a.rps:9.1f} req/s p50 {a.p50_ms:7.2f} ms p99 {a.p99_ms:7.2f} ms"
                        f"{'  ERRORS ' + str((o.errors, a.errors)) if o.errors or a.errors else ''}",
                        flush=True,
                    )
                    rows.append(Row(label, "throughput", o.rps, a.rps, anchor_label, "req/s"))
                    rows.append(Row(label, "p50", o.p50_ms, a.p50_ms, anchor_label, "ms", False))
                    rows.append(Row(label, "p99", o.p99_ms, a.p99_ms, anchor_label, "ms", False))
                    raw.append({"case": label, "ours": o.__dict__, anchor_kind: a.__dict__})
                rss_key = f"{prefix}{protocol} {payload}"
                rss[f"ours {rss_key}"] = ours.peak_rss_mb()
                rss[f"{anchor_kind} {rss_key}"] = anchor.peak_rss_mb()
                rows.append(
                    Row(
                        f"{rss_key} whole run",
                        "peak RSS",
                        rss[f"ours {rss_key}"],
                        rss[f"{anchor_kind} {rss_key}"],
                        anchor_label,
                        "MB",
                        False,
                    )
                )
    print()
    print_table(
        f"runtime: ours vs anchors, {workers} worker(s) each, best of {rounds} x {duration:.0f}s", rows
    )
    path = write_results(
        "runtime",
        rows,
        {"workers": workers, "duration_s": duration, "rounds": rounds, "raw": raw, "peak_rss_mb": rss},
    )
    print(f"results: {path}")
    shutil.rmtree(work, ignore_errors=True)


def _flag(flag: str) -> tuple[str, str]:
    name, _, value = flag.removeprefix("--").partition("=")
    return name, value or "1"
