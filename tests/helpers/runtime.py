"""Start a real `python -m model_runtime` subprocess on free ports and wait until it is ready.

    with start_runtime(["--implementation", "SKLEARN_SERVER", "--model-uri", str(folder)]) as rt:
        httpx.post(f"{rt.http_url}/predict", json=...)
        grpc.insecure_channel(rt.grpc_target)

`wait_ready=False` returns as soon as the process answers `/live` (for tests of load failures). On exit
the process gets SIGTERM, must exit within `stop_timeout`, and is killed (and the test failed) otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers.ports import free_port

REPO = Path(__file__).resolve().parents[2]


class RuntimeFailedToStart(AssertionError):
    pass


@dataclass
class RunningRuntime:
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path
    host: str = "127.0.0.1"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait for a graceful exit; returns the exit code (kills it and raises if it hangs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"runtime did not stop within {timeout}s after SIGTERM\n{self.log()}"
            ) from None


@contextmanager
def start_runtime(
    args: Sequence[str],
    cwd: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    wait_ready: bool = True,
    timeout: float = 60.0,
    stop_timeout: float = 15.0,
    module: str = "model_runtime",
    port_flags: bool = True,
) -> Iterator[RunningRuntime]:
    """Run `python -m <module> <args> --http-port H --grpc-port G` until the block ends.

    A free port can be taken by another process between `free_port()` and the runtime's bind; a start
    that fails with "Address already in use" is retried on fresh ports (a few times) before it counts.
    """
    for attempt in range(BIND_ATTEMPTS):
        runtime = _spawn(args, cwd, env, module, port_flags)
        try:
            _wait(runtime, "/ready" if wait_ready else "/live", timeout)
        except RuntimeFailedToStart:
            taken = "Address already in use" in runtime.log()
            _cleanup(runtime, stop_timeout)
            if port_flags and taken and attempt + 1 < BIND_ATTEMPTS:
                continue
            raise
        break
    try:
        yield runtime
    finally:
        _cleanup(runtime, stop_timeout)


BIND_ATTEMPTS = 3


def _spawn(
    args: Sequence[str],
    cwd: Path | str | None,
    env: Mapping[str, str] | None,
    module: str,
    port_flags: bool,
) -> RunningRuntime:
    http_port, grpc_port = free_port(), free_port()
    while grpc_port == http_port:
        grpc_port = free_port()
    command = [sys.executable, "-m", module, *args]
    if port_flags:
        command += ["--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    log_file = tempfile.NamedTemporaryFile(prefix="runtime-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        command,
        cwd=cwd or REPO,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log_file.close()
    return RunningRuntime(process, http_port, grpc_port, Path(log_file.name))


def _cleanup(runtime: RunningRuntime, stop_timeout: float) -> None:
    try:
        runtime.stop(stop_timeout)
    finally:
        _kill_group(runtime.process.pid)
        runtime.log_path.unlink(missing_ok=True)


def _wait(runtime: RunningRuntime, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not runtime.is_running():
                raise RuntimeFailedToStart(
                    f"runtime exited with {runtime.process.returncode}\n{runtime.log()}"
                )
            try:
                if client.get(runtime.http_url + path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise RuntimeFailedToStart(f"runtime not answering {path} after {timeout}s\n{runtime.log()}")


def _kill_group(pid: int) -> None:
    """Workers run in the runtime's session; make sure none survive a failed test."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
