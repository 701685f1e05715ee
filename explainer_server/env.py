"""The explainer's own Python environment, made on first use and reused (the runtime's venv cannot hold
alibi: it pins numpy below 2, as Seldon's separate explainer image does).

Runs in the mesh's venv with the standard library only. `ensure_env()` creates or refreshes the env under
the user's cache (`$XDG_CACHE_HOME/seldon-mesh/envs/alibi-<hash>`, or `SELDON_MESH_EXPLAINER_ENV`) under a
file lock, so two explainers (or two test runs) starting at once build it once. `python -m
explainer_server.env launch ARGS` is what the local supervisor starts: it ensures the env, then replaces
itself with the env's interpreter running `python -m explainer_server ARGS`. `python -m
explainer_server.env create` (`make explainer-env`) makes it ahead of time.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

ENV_VAR = "SELDON_MESH_EXPLAINER_ENVS"  # the folder the environments are made in, instead of the cache's
# alibi 0.9 (numpy < 2) with its shap extra (KernelShap, TreeShap); spacy comes with alibi (AnchorText).
# click: spacy's CLI imports it, and the typer that pip picks no longer brings it.
REQUIREMENTS = ("alibi[shap]==0.9.6", "scikit-learn>=1.4", "dill>=0.3", "click>=8")
# IntegratedGradients is white-box on a Keras model: alibi 0.9 takes tensorflow below 2.15 (CPU build here).
# A second environment (~4 minutes, ~1.5 GB more), made only for an IntegratedGradients explainer.
TENSORFLOW_REQUIREMENTS = (*REQUIREMENTS, "tensorflow-cpu>=2.13,<2.15")


def requirements_for(kind: str) -> tuple[str, ...]:
    return TENSORFLOW_REQUIREMENTS if kind == "IntegratedGradients" else REQUIREMENTS


_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the folder holding explainer_server/


def _fingerprint(requirements: tuple[str, ...]) -> str:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return hashlib.sha256("\n".join((version, *requirements)).encode()).hexdigest()


def env_root(requirements: tuple[str, ...] = REQUIREMENTS) -> Path:
    configured = os.environ.get(ENV_VAR)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = Path(configured).expanduser() if configured else cache / "seldon-mesh" / "envs"
    flavour = "alibi-tf" if requirements == TENSORFLOW_REQUIREMENTS else "alibi"
    return folder / f"{flavour}-{_fingerprint(requirements)[:12]}"


def ensure_env(root: Path | None = None, requirements: tuple[str, ...] = REQUIREMENTS) -> Path:
    """The env's python, creating (or refreshing) the env when it does not hold `requirements`."""
    root = root or env_root(requirements)
    marker, python = root / ".requirements", root / "bin" / "python"
    wanted = _fingerprint(requirements)
    if marker.exists() and marker.read_text() == wanted and python.exists():
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f".{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second creator waits here, then finds the marker
        if marker.exists() and marker.read_text() == wanted and python.exists():
            return python
        print(f"creating the explainer environment in {root} (once; a few minutes)", file=sys.stderr)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--clear", str(root)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *requirements], check=True)
        marker.write_text(wanted)
    return python


def child_env() -> dict[str, str]:
    """The environment the explainer runs with: this package importable, nothing of the mesh's venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONPATH"] = str(_PACKAGE_ROOT)
    return env


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args else "create"
    if command == "create":  # [--tensorflow]: the IntegratedGradients environment; [--all]: both at once
        wanted = [REQUIREMENTS, TENSORFLOW_REQUIREMENTS] if "--all" in args else []
        wanted = wanted or [TENSORFLOW_REQUIREMENTS if "--tensorflow" in args else REQUIREMENTS]
        # side by side: making one is mostly waiting for downloads
        with concurrent.futures.ThreadPoolExecutor(len(wanted)) as pool:
            for made in pool.map(lambda requirements: ensure_env(requirements=requirements), wanted):
                print(made)
        return 0
    if command == "launch":  # the server's arguments: its `--type` picks the environment
        kind = args[args.index("--type") + 1] if "--type" in args[:-1] else ""
        python = str(ensure_env(requirements=requirements_for(kind)))
        os.execve(python, [python, "-m", "explainer_server", *args], child_env())
    usage = "python -m explainer_server.env [create [--tensorflow | --all] | launch ARGS...]"
    print(f"usage: {usage}, not {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
