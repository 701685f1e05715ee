"""`make bench` suite `changes`: what clients see while a deployment changes under steady load.

One `seldon-mesh up` serves a canary (main 90 / canary 10, both the prepackaged SKLEARN_SERVER on the
iris model). Clients send REST predictions through the gateway at a steady rate (open loop: each thread
keeps its own schedule, so a slow answer does not lower the rate). The run has three phases of equal
length-ish: steady (no change), changes (the weights shift 10 times and main's model is updated 3 times,
each update waiting until the new runtime serves and the old one is gone), steady again. Reported: the
non-2xx answers during the changes (target 0) and the p99 latency during the changes against the p99 of
the two steady phases of the same run (target at most 2x). Changes go through the control API, as
`seldon-mesh apply` sends them (without the CLI's own process start, which would only add noise).

Flags: --rate=N requests per second (default 100), --steady=S seconds per steady phase (default 15),
--quick (rate 50, 8 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.report import Row, print_table, write_results

ROOT = Path(__file__).resolve().parents[1]
PREDICT = "/seldon/seldon/changes/api/v1.0/predictions"
BODY = {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}
THREADS = 4
WEIGHT_SHIFTS = 10
MODEL_UPDATES = 3

SPEC = """\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: changes, namespace: seldon}}
spec:
  predictors:
    - name: main
      traffic: {main}
      graph: {{name: classifier, implementation: SKLEARN_SERVER, modelUri: {model}}}
    - name: canary
      traffic: {canary}
      graph: {{name: classifier, implementation: SKLEARN_SERVER, modelUri: ./model-1}}
"""


def _flag(flags: list[str], name: str, default: int) -> int:
    for flag in flags:
        if flag.startswith(f"--{name}="):
            return int(flag.split("=", 1)[1])
    return default


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            result = None
        if result:
            return result
        time.sleep(0.25)
    raise RuntimeError(f"timed out waiting for {what}")


@dataclass
class _Sample:
    at: float
    status: int
    latency_ms: float


@dataclass
class _Load:
    """THREADS threads, each sending at rate/THREADS on its own fixed schedule."""

    url: str
    rate: int
    samples: list[_Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(THREADS):
            thread = threading.Thread(target=self._loop, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self, index: int) -> None:
        interval = THREADS / self.rate
        next_at = time.monotonic() + index * interval / THREADS
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                started = time.monotonic()
                try:
                    status = client.post(self.url, json=BODY).status_code
                except httpx.HTTPError:
                    status = 0
                self.samples.append(_Sample(started, status, (time.monotonic() - started) * 1000))
                next_at += interval

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def between(self, start: float, end: float) -> list[_Sample]:
        return [s for s in self.samples if start <= s.at < end]


class _Up:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state = folder / "state"
        self.port = _free_port()
        self.gateway = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self.control = ""
        self._headers: dict[str, str] = {}

    def start(self) -> None:
        with (self.folder / "up.log").open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "mesh.cli.main", "up", str(self.folder / "changes.yaml"),
                 "--port", str(self.port), "--state-dir", str(self.state)],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        control = self.state / "control.json"
        record = _wait(lambda: json.loads(control.read_text()), 60, "the control API")
        self.control = record["url"]
        if record.get("token"):  # the control API wants its owner's token on every /v1 call
            self._headers["Authorization"] = f"Bearer {record['token']}"

    def apply(self, text: str) -> None:
        (self.folder / "changes.yaml").write_text(text)
        body = {"documents": text, "source": "changes.yaml", "base_dir": str(self.folder)}
        response = httpx.post(f"{self.control}/v1/apply", json=body, headers=self._headers, timeout=60)
        response.raise_for_status()

    def status(self) -> dict[str, Any]:
        response = httpx.get(
            f"{self.control}/v1/deployments/seldon/changes", headers=self._headers, timeout=10
        )
        response.raise_for_status()
        return dict(response.json()["status"])

    def main_pid(self) -> int | None:
        status = self.status()
        main = next(c for c in status["components"] if c["predictor"] == "main")
        return int(main["pid"]) if status["state"] == "Available" and main["pid"] else None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(60)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _p(samples: list[_Sample], q: float) -> float:
    latencies = sorted(s.latency_ms for s in samples)
    return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")


def _changes(up: _Up, updates: list[tuple[float, float]]) -> list[str]:
    """Weight shifts between model updates; returns what was done, in order (and each model update's
    start and end in `updates`)."""
    done = []
    model = 1
    weights = [80, 10, 50, 99, 1, 70, 30, 85, 20, 60]
    for index, main in enumerate(weights):
        up.apply(SPEC.format(main=main, canary=100 - main, model=f"./model-{model}"))
        done.append(f"weights {main}/{100 - main}")
        time.sleep(0.5)
        if index % 3 == 2 and model <= MODEL_UPDATES:  # after the 3rd, 6th and 9th shift
            model += 1
            started = time.monotonic()
            done.append(
                _update_model(up, SPEC.format(main=main, canary=100 - main, model=f"./model-{model}"))
            )
            updates.append((started, time.monotonic()))
    return done


def _update_model(up: _Up, spec: str) -> str:
    """Apply `spec` (main's model changed) and wait until a new runtime serves and the old one is gone."""
    old = up.main_pid()
    assert old is not None
    up.apply(spec)
    new = _wait(lambda: (p := up.main_pid()) != old and p, 120, "the updated model to serve")
    _wait(lambda: not _alive(old), 60, "the previous runtime to stop")
    return f"model update (runtime {old} -> {new})"


def run(flags: list[str]) -> None:
    quick = "--quick" in flags
    rate = _flag(flags, "rate", 50 if quick else 100)
    steady_s = _flag(flags, "steady", 8 if quick else 15)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-changes-") as tmp:
        folder = Path(tmp)
        subprocess.run(
            [sys.executable, str(ROOT / "examples/iris/train.py"), str(folder / "model-1")],
            check=True,
            capture_output=True,
        )
        for index in range(2, MODEL_UPDATES + 2):
            shutil.copytree(folder / "model-1", folder / f"model-{index}")
        (folder / "changes.yaml").write_text(SPEC.format(main=90, canary=10, model="./model-1"))
        up = _Up(folder)
        up.start()
        try:
            try:
                _wait(lambda: up.status()["state"] == "Available", 120, "the deployment to be Available")
            except RuntimeError:
                with contextlib.suppress(httpx.HTTPError):
                    print(json.dumps(up.status())[:2000], file=sys.stderr)
                print((folder / "up.log").read_text(errors="replace")[-3000:], file=sys.stderr)
                for log in sorted((up.state / "logs").glob("*.log")):
                    print(f"-- {log.name}", log.read_text(errors="replace")[-1500:], file=sys.stderr)
                raise
            _wait(lambda: httpx.post(up.gateway + PREDICT, json=BODY).status_code == 200, 60, "a 200")
            load = _Load(up.gateway + PREDICT, rate)
            load.start()
            time.sleep(2)  # connections open, caches warm
            t0 = time.monotonic()
            time.sleep(steady_s)
            t1 = time.monotonic()
            updates: list[tuple[float, float]] = []
            done = _changes(up, updates)
            t2 = time.monotonic()
            time.sleep(steady_s)
            t3 = time.monotonic()
            load.stop()
        finally:
            up.stop()
    steady = load.between(t0, t1) + load.between(t2, t3)
    during = load.between(t1, t2)
    in_updates = [s for start, end in updates for s in load.between(start, end)]
    in_shifts = [s for s in during if not any(start <= s.at < end for start, end in updates)]
    bad_during = sum(1 for s in during if not 200 <= s.status < 300)
    bad_steady = sum(1 for s in steady if not 200 <= s.status < 300)
    rows = [
        Row("changes under load", "p99 latency", _p(during, 0.99), _p(steady, 0.99),
            "same run, steady phases", "ms", higher_is_better=False),
        Row("changes under load", "p50 latency", _p(during, 0.50), _p(steady, 0.50),
            "same run, steady phases", "ms", higher_is_better=False),
        Row("changes under load", "non-2xx", float(bad_during), float(bad_steady),
            "same run, steady phases", "requests", higher_is_better=False),
    ]  # fmt: skip
    extra = {
        "rate_rps": rate,
        "requests": {"during_changes": len(during), "steady": len(steady)},
        "non_2xx": {"during_changes": bad_during, "steady": bad_steady},
        "statuses_during_changes": dict(sorted(_counts(during).items())),
        "changes_s": round(t2 - t1, 1),
        "changes": done,
        "p99_ratio": _p(during, 0.99) / _p(steady, 0.99),
        "p99_ms": {
            "steady": _p(steady, 0.99),
            "during_changes": _p(during, 0.99),
            "during_model_updates": _p(in_updates, 0.99),
            "during_weight_shifts_only": _p(in_shifts, 0.99),
        },
        "model_update_s": [round(end - start, 1) for start, end in updates],
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": os.getloadavg()[0],
        "mean_latency_ms": {
            "during_changes": statistics.fmean(s.latency_ms for s in during),
            "steady": statistics.fmean(s.latency_ms for s in steady),
        },
    }
    print_table(f"changes under steady load ({rate} req/s through the gateway)", rows)
    print(
        f"  {len(during)} requests during {t2 - t1:.1f} s of changes ({WEIGHT_SHIFTS} weight shifts, "
        f"{MODEL_UPDATES} model updates): {bad_during} non-2xx; p99 ratio {extra['p99_ratio']:.2f}x"
    )
    print(f"  results: {write_results('changes', rows, extra)}")


def _counts(samples: list[_Sample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sample in samples:
        counts[str(sample.status)] = counts.get(str(sample.status), 0) + 1
    return counts
