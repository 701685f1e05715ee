"""`Storage.download(uri, out_dir=None)`: fetch a model URI into a local folder, as custom servers written
for Seldon call it in `load()`. Backed by `model_runtime.storage` (s3, gs, Azure, http(s), pvc, rclone
remotes; credentials from the environment)."""

from __future__ import annotations

from pathlib import Path

from model_runtime.storage import fetch
from model_runtime.storage_init import download


class Storage:
    @staticmethod
    def download(uri: str, out_dir: str | None = None) -> str:
        """The local folder holding the model's files (`out_dir` when given, else a new one)."""
        if out_dir is None:
            return str(fetch(uri))
        return str(download(uri, Path(out_dir)))
