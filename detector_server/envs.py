"""The detector server's own Python environment: alibi-detect pins numpy below 2 (and our runtime's venv has
numpy 2), so the server runs in a virtual environment of its own, as Seldon runs it in an image of its own.

Made on first use from PyPI and reused afterwards: `ensure_env` builds it under the user's cache
(`SELDON_MESH_ENVS_DIR`, else `$XDG_CACHE_HOME/seldon-mesh/envs`, else `~/.cache/seldon-mesh/envs`) and
records the requirements it was built with, so a change of them rebuilds it. alibi-detect with its
TensorFlow extra (CPU; about 2 minutes and 3 GB the first time): its base install fits and runs IForest,
Mahalanobis and the scipy drift tests, but `load_detector` reads every outlier and adversarial detector
through its TensorFlow loader (the legacy `meta.dill` format), so without TensorFlow no outlier detector
loads at all. Drift detectors are saved as `config.toml` and load without it. More packages (a PyTorch
backend, say) go in `DETECTOR_EXTRA_REQUIREMENTS`, space-separated.

`command()` is how a caller in our own venv starts the server: this package's source is copied into the
environment (by content, once per version), never the caller's site-packages, whose numpy 2 would shadow
the environment's. Standard library only: it runs in the caller's interpreter.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

NAME = "alibi-detect"
REQUIREMENTS: tuple[str, ...] = (
    "alibi-detect[tensorflow]==0.13.0",
    "prometheus-client>=0.20",
    "aiohttp>=3.9",
)
PACKAGE = Path(__file__).resolve().parent


def envs_root(environ: Mapping[str, str] = os.environ) -> Path:
    if environ.get("SELDON_MESH_ENVS_DIR"):
        return Path(environ["SELDON_MESH_ENVS_DIR"])
    cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "seldon-mesh" / "envs"


def requirements(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    extra = environ.get("DETECTOR_EXTRA_REQUIREMENTS", "").split()
    return (*REQUIREMENTS, *extra)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder at a time (a test and a CLI may both ask for the environment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_env(root: Path | None = None, wanted: tuple[str, ...] | None = None) -> Path:
    """The environment's python, after creating or refreshing the environment to hold `wanted`."""
    folder = (root or envs_root()) / NAME
    wanted = wanted or requirements()
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()
    marker = folder / ".requirements"
    python = folder / "bin" / "python"
    with _locked(folder.parent / f".{NAME}.lock"):
        if marker.exists() and marker.read_text() == digest and python.exists():
            return python
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *wanted], check=True)
        marker.write_text(digest)
    return python


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def install_source(python: Path) -> Path:
    """A folder holding a copy of this package for `python`'s environment; put it on PYTHONPATH."""
    env = python.parent.parent
    folder = env / "app" / _source_digest()
    if (folder / PACKAGE.name / "__main__.py").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent))
    shutil.copytree(PACKAGE, staging / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    try:
        staging.rename(folder)
    except OSError:  # another caller put the same version there first
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def command(args: list[str], root: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run the detector server with `args` (Seldon's adserver flags)."""
    python = ensure_env(root)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONPATH"] = str(install_source(python))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's import notes about absent GPUs and CPU flags
    return [str(python), "-m", "detector_server", *args], env


if __name__ == "__main__":  # `python -m detector_server.envs`: build it now (make detector-env)
    print(ensure_env())
