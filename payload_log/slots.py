"""Spool slots: which spool directory a logging process owns.

Several processes may log for one component: a runtime's workers, its replicas, the new version's
replicas while the old ones still serve, and whatever replaces one that was killed. Each needs a spool of
its own (one writer and one delivery per spool), and a process that replaces a killed one must find the
events that one accepted. So a component has a spool root, and each process claims the first `slot-<n>`
under it that no live process holds, by an exclusive `flock` on the slot's lock file, held until the
process exits: the kernel releases it on any exit, SIGKILL included, so the next process to start takes
over the slot and delivers what is left in it.
"""

from __future__ import annotations

import fcntl
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "lock"


@dataclass(frozen=True)
class Slot:
    directory: Path
    fd: int  # holds the lock; closed (released) by `release` or at exit

    def release(self) -> None:
        os.close(self.fd)


def claim(root: Path) -> Slot:
    """The first free slot under `root`, locked for this process."""
    root.mkdir(parents=True, exist_ok=True)
    for n in itertools.count():
        directory = root / f"slot-{n}"
        directory.mkdir(exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return Slot(directory, fd)
    raise AssertionError("unreachable")
