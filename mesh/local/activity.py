"""How much a process group wanted the CPU: what the liveness check asks before it kills a silent runtime.

A thread that has work is always either on a CPU or waiting in a run queue for one; a thread that is
stopped (SIGSTOP), blocked on a lock or waiting on I/O is neither. The kernel's per-thread schedstat
(`/proc/<pid>/task/<tid>/schedstat`: nanoseconds on a CPU, nanoseconds waiting to run) adds the two up, so
the sum over a runtime's process group (it leads its own group: workers included) grows as fast as the
wall clock while any of its threads is busy, however loaded the machine is, and not at all while it is
stopped or wedged. `runnable_ns` reads that sum; where schedstat is missing it falls back to CPU time from
`/proc/<pid>/stat` (then a starved runtime looks idle); off Linux there is nothing to read (None).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# /proc/<pid>/stat fields after the command's closing parenthesis: state is the first, pgrp the third,
# utime and stime the 12th and 13th (in clock ticks).
_STATE, _PGRP, _UTIME, _STIME = 0, 2, 11, 12
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 10_000_000
_SCHEDSTAT = (PROC / "self" / "schedstat").is_file()
STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "in uninterruptible I/O",
    "T": "stopped",
    "t": "stopped by a tracer",
    "Z": "a zombie",
    "I": "idle",
}


@dataclass(frozen=True)
class Activity:
    """One reading for a process group: its threads' running plus run-queue time, and the state of the
    group leader (the runtime's main process) as `ps` shows it."""

    runnable_ns: int
    leader_state: str

    @property
    def described_state(self) -> str:
        return STATES.get(self.leader_state, self.leader_state or "gone")


def _stat_fields(pid: str) -> list[str] | None:
    try:
        text = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def _threads_ns(pid: str, fields: list[str]) -> int:
    """The process's threads' time on a CPU plus waiting for one; its CPU time without schedstat. A thread
    that exits while it is read counts for nothing (readings are compared, never added across groups)."""
    if not _SCHEDSTAT:
        return (int(fields[_UTIME]) + int(fields[_STIME])) * _TICK_NS
    total = 0
    try:
        tasks = list((PROC / pid / "task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            running, waiting, *_ = (task / "schedstat").read_text().split()
            total += int(running) + int(waiting)
        except (OSError, ValueError):
            continue
    return total


def group_activity(pgid: int) -> Activity | None:
    """The process group's reading now; None where /proc cannot say (not Linux, or the group is gone)."""
    if not PROC.is_dir():
        return None
    total, leader, found = 0, "", False
    try:
        entries = [entry.name for entry in os.scandir(PROC) if entry.name.isdigit()]
    except OSError:
        return None
    for pid in entries:
        fields = _stat_fields(pid)
        if fields is None or len(fields) <= _STIME or fields[_PGRP] != str(pgid):
            continue
        found = True
        total += _threads_ns(pid, fields)
        if pid == str(pgid):
            leader = fields[_STATE]
    return Activity(total, leader) if found else None


def runnable_share(before: Activity | None, after: Activity | None, elapsed_s: float) -> float | None:
    """The share of `elapsed_s` the group spent running or ready to run (summed over its threads, so it
    can pass 1.0); None when either reading is missing."""
    if before is None or after is None or elapsed_s <= 0:
        return None
    return max(after.runnable_ns - before.runnable_ns, 0) / (elapsed_s * 1e9)
