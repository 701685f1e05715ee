"""Isolated virtual environments for real peers (MLServer, Seldon Core's Python wrapper) under bench/envs/.

They cannot share our .venv (their pins differ), so each gets its own, created on first use from PyPI and
reused afterwards; a marker file records the requirements it was built with. Tests that need a real
MLServer and `make bench` both call `ensure_env`.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ENVS = Path(__file__).resolve().parent / "envs"

MLSERVER = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1")
# gunicorn (a seldon-core dependency) imports pkg_resources, which setuptools 81 removed
SELDON_CORE = ("seldon-core>=1.18,<1.19", "scikit-learn", "joblib", "setuptools<81")


def ensure_env(name: str, requirements: tuple[str, ...], python: str | None = None) -> Path:
    """Return the bin/ folder of env `name`, creating or refreshing it to hold `requirements`."""
    root = ENVS / name
    marker = root / ".requirements"
    wanted = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    if marker.exists() and marker.read_text() == wanted:
        return root / "bin"
    interpreter = python or sys.executable
    subprocess.run([interpreter, "-m", "venv", "--clear", str(root)], check=True)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *requirements], check=True)
    marker.write_text(wanted)
    return root / "bin"


def mlserver_bin() -> Path:
    return ensure_env("mlserver", MLSERVER)


def seldon_core_bin() -> Path:
    return ensure_env("seldon-core", SELDON_CORE)
