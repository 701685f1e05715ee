"""Children that die with `seldon-mesh up`, and pid records so the next `up` stops what a killed one left.

Every process `up` starts (Envoy, extproc, runtimes) is started through `guard_prefix`: on Linux a tiny
launcher arms the parent-death signal and execs the real command, so the kernel sends the child SIGTERM
when `up` dies, however it dies (SIGKILL or an OOM kill included), and a runtime stops its own workers
as on any SIGTERM. (A `preexec_fn` would do the same without the launcher, but it makes subprocess
fork() instead of vfork(), and gRPC's fork handlers then abort the child of a process serving gRPC.)
Elsewhere, or should a child outlive `up` anyway, its record in `<state-dir>/pids/` (pid, start time,
whether it leads its own process group) lets the next `up` on that state directory stop it before
binding anything: two extprocs sharing one payload spool, or a runtime holding a port, are what such a
leftover would otherwise cause.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

# argv: parent pid, then the command. prctl(PR_SET_PDEATHSIG=1, SIGTERM); if the parent died before the
# signal was armed, there is no one to serve; else become the command (the signal survives exec).
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def guard_prefix() -> list[str]:
    """Arguments to put before a child's command so it gets SIGTERM when this process dies (Linux;
    elsewhere none). The kernel ties the signal to the thread that starts the child: start it from a
    thread that lives as long as `up` (the event loop's)."""
    if not sys.platform.startswith("linux"):
        return []
    return [sys.executable, "-S", "-c", _LAUNCHER, str(os.getpid())]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


class PidRecords:
    """`<state-dir>/pids/<pid>.json` for each child that runs; removed when it has exited."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def record(self, pid: int, what: str, *, group: bool) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        body = {"pid": pid, "start": _start_time(pid), "what": what, "group": group}
        (self.folder / f"{pid}.json").write_text(json.dumps(body))

    def forget(self, pid: int) -> None:
        (self.folder / f"{pid}.json").unlink(missing_ok=True)

    def stop_leftovers(self, grace_s: float) -> list[str]:
        """Stop every recorded process that still runs (the same process: its start time matches),
        SIGTERM then SIGKILL after `grace_s`; returns what was stopped. Records are removed."""
        if not self.folder.is_dir():
            return []
        alive: list[tuple[int, bool, str]] = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                record = json.loads(path.read_text())
                pid, group, what = int(record["pid"]), bool(record["group"]), str(record["what"])
                started = record.get("start")
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if started is not None and _start_time(pid) == started:
                alive.append((pid, group, what))
            path.unlink(missing_ok=True)
        for pid, group, _ in alive:
            _signal(pid, group, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_start_time(pid) is not None for pid, _, _ in alive):
            time.sleep(0.05)
        for pid, group, _ in alive:
            _signal(pid, group, signal.SIGKILL)  # the group may hold workers whose leader has exited
        stopped = [f"{what} (pid {pid})" for pid, _, what in alive]
        if stopped:
            log.warning("stopped what a previous seldon-mesh up left running: %s", ", ".join(stopped))
        return stopped


def _signal(pid: int, group: bool, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
