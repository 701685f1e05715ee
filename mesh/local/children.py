"""Children that die with `seldon-mesh up`, and pid records so the next `up` stops what a killed one left.

Every process `up` starts (Envoy, extproc, runtimes) is started with `die_with_parent` as its
`preexec_fn`: on Linux the kernel sends it SIGTERM when `up` dies, however `up` dies (SIGKILL or an OOM
kill included), so a runtime stops its own workers as on any SIGTERM. Elsewhere, or should a child
outlive `up` anyway, its record in `<state-dir>/pids/` (pid, start time, whether it leads its own
process group) lets the next `up` on that state directory stop it before binding anything: two extprocs
sharing one payload spool, or a runtime holding a port, are what such a leftover would otherwise cause.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that has the child sent SIGTERM when this process dies (None off Linux).

    The kernel ties the signal to the thread that forks: call it, and start the child, from a thread
    that lives as long as `up` (the event loop's). Between fork and exec it makes one system call and
    takes no lock, so it is safe in a process with threads (the hazard `preexec_fn`'s documentation
    warns of is a lock another thread held at the fork)."""
    prctl = _prctl
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


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
