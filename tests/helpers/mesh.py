"""Run `seldon-mesh up` as a real subprocess (real Envoy, real runtimes) and drive it like a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.ports import free_port

__all__ = ["Mesh", "free_port", "pid_alive", "wait_for"]

BIN = Path(sys.executable).parent


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except AssertionError:
            raise  # a condition that knows it can never hold (the process died) ends the wait
        except Exception as error:  # polled conditions may fail until the thing is up
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Mesh:
    state_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.state_dir.parent / f"up-{self.port}.log"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *paths: Path, extra: Sequence[str] = ()) -> Mesh:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [str(BIN / "seldon-mesh"), "up", *map(str, paths), "--port", str(self.port)]
        args += ["--state-dir", str(self.state_dir), *extra]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_for(self._control_up, 60, "the control API")
        return self

    def _control_up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"seldon-mesh up exited with {self.process.returncode}:\n{self.log()}")
        return (self.state_dir / "control.json").exists()

    def control(self) -> tuple[str, dict[str, str]]:
        """The control API's URL and the headers that let its owner in (the token of control.json)."""
        record = json.loads((self.state_dir / "control.json").read_text())
        return str(record["url"]), {"Authorization": f"Bearer {record['token']}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "seldon-mesh"), *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=120,
            check=False,
        )

    def get(self, name: str | None = None) -> list[dict[str, Any]]:
        result = self.cli("get", *([name] if name else []), "-o", "json")
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        return [body] if body.get("kind") == "SeldonDeployment" else list(body["items"])

    def state(self, name: str) -> dict[str, Any]:
        return dict(self.get(name)[0]["status"])

    def wait_state(self, name: str, state: str, timeout: float = 90) -> dict[str, Any]:
        return dict(
            wait_for(
                lambda: (s := self.state(name))["state"] == state and s,
                timeout,
                f"{name} to be {state} (log:\n{self.log()[-3000:]})",
            )
        )

    def wait_serving(self, path: str, body: Any, timeout: float = 60) -> httpx.Response:
        """Wait until a POST through the gateway answers 200 (Envoy applies config asynchronously)."""
        return wait_for(
            lambda: (r := httpx.post(self.gateway + path, json=body, timeout=10)).status_code == 200 and r,
            timeout,
            f"POST {path} to answer 200",
        )

    def child_pids(self) -> list[int]:
        pids = []
        for deployment in self.get():
            pids += [c["pid"] for c in deployment["status"]["components"] if c["pid"]]
        return pids

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"seldon-mesh up did not stop on signal {sig}:\n{self.log()[-3000:]}"
            ) from None
