"""TensorFlow's own environment, made on first use: the interpreter `TENSORFLOW_SERVER`'s worker runs on.

TensorFlow cannot be imported in the runtime's process (see `tensorflow_worker`), and at ~1.5 GB it is no
dependency every install should pay for. So the first TensorFlow model to load creates a virtual
environment holding `tensorflow-cpu` from PyPI (about a minute here) and every later one reuses it; a
marker file records the requirements it was built with, and a lock keeps two runtimes loading at once
from building it twice.

Where: `SELDON_MESH_TENSORFLOW_PYTHON` names an interpreter that already has TensorFlow (nothing is
built); otherwise the environment is `tensorflow` under `SELDON_MESH_ENVS_DIR` (default
`$XDG_CACHE_HOME/seldon-mesh/envs`, i.e. `~/.cache/seldon-mesh/envs`). `python -m
model_runtime.runtimes.tensorflow_setup` builds it ahead of time.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

from model_runtime.errors import LoadError

log = logging.getLogger(__name__)

# The CPU build (no CUDA libraries); 2.21 supports numpy 2 and protobuf 6 like the runtime's own env.
REQUIREMENTS = ("tensorflow-cpu==2.21.0",)
PYTHON_VARIABLE = "SELDON_MESH_TENSORFLOW_PYTHON"
ENVS_VARIABLE = "SELDON_MESH_ENVS_DIR"
INSTALL_TIMEOUT_S = 1800.0  # a cold pip install of ~300 MB of wheels on a slow link


def envs_dir() -> Path:
    configured = os.environ.get(ENVS_VARIABLE)
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "seldon-mesh" / "envs"


def tensorflow_python() -> Path:
    """The interpreter with TensorFlow, building its environment first if needed (`LoadError` if not)."""
    configured = os.environ.get(PYTHON_VARIABLE)
    if configured:
        return Path(configured)
    return ensure_env(envs_dir() / "tensorflow", REQUIREMENTS)


def ensure_env(root: Path, requirements: tuple[str, ...]) -> Path:
    """`root`'s bin/python, the environment created or refreshed to hold `requirements`."""
    python = root / "bin" / "python"
    wanted = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    marker = root / ".requirements"
    if marker.is_file() and marker.read_text() == wanted and python.exists():
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another runtime may be building it: wait for it
        if marker.is_file() and marker.read_text() == wanted and python.exists():
            return python
        log.info("creating %s with %s (once; later loads reuse it)", root, " ".join(requirements))
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run([sys.executable, "-m", "venv", "--clear", str(root)])
        _run([*pip, *requirements])
        marker.write_text(wanted)
    return python


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LoadError(f"cannot build TensorFlow's environment: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise LoadError(
            f"cannot build TensorFlow's environment ({' '.join(command[:4])}): {' / '.join(tail)}"
        )
