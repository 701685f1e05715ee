"""What every prepackaged runtime needs: fetch the model URI and pick the model file inside it, and map
array dtypes to V2 datatypes for `tensor_metadata`."""

from __future__ import annotations

from pathlib import Path

from model_runtime.errors import LoadError
from model_runtime.storage import fetch


def locate(model_uri: str, cache_dir: str, names: tuple[str, ...]) -> Path:
    """The first of `names` in the fetched folder (or the URI itself when it is a file)."""
    folder = fetch(model_uri, Path(cache_dir) if cache_dir else None)
    if folder.is_file():
        return folder
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise LoadError(f"{' / '.join(names)} not found in {folder}")


def load_failure(path: Path, exc: Exception) -> LoadError:
    return LoadError(f"cannot load {path}: {type(exc).__name__}: {exc}")
