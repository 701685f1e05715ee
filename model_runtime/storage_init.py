"""`python -m model_runtime.storage_init SRC DEST`: the storage initializer of a Kubernetes model pod.

An init container runs it before the model container starts: it fetches `SRC` (a modelUri: http(s),
gs://, s3://, Azure blob, an rclone remote, a path) with `storage.fetch`, the same code a runtime uses when
it downloads for itself, and leaves the files directly in `DEST` (the pod's `/mnt/models` emptyDir),
which the model container then loads as its `--model-uri`. Credentials come from the environment (the
node's `envSecretRefName` Secret).
Exit status 1 with the reason on stderr when the model cannot be fetched, so the pod shows Init:Error.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from model_runtime.errors import LoadError
from model_runtime.storage import fetch


def download(source: str, dest: Path) -> Path:
    """Fetch `source` into `dest` (created if missing): its files land in `dest` itself."""
    dest.mkdir(parents=True, exist_ok=True)
    fetched = fetch(source, cache_dir=dest)
    if fetched.resolve() == dest.resolve():
        return dest
    if fetched.is_relative_to(dest):  # downloaded into a temporary folder under dest: move its files up
        for item in list(fetched.iterdir()):
            shutil.move(str(item), dest / item.name)
        fetched.rmdir()
    elif fetched.is_dir():  # a local folder: copy it
        shutil.copytree(fetched, dest, dirs_exist_ok=True)
    else:  # a local file
        shutil.copy2(fetched, dest / fetched.name)
    return dest


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model_runtime.storage_init", description=__doc__)
    parser.add_argument(
        "source", help="model URI: path, file://, http(s)://, s3://, gs://, az://, pvc://, rclone remote:path"
    )
    parser.add_argument("dest", type=Path, help="folder the model's files are written to")
    args = parser.parse_args(argv)
    try:
        download(args.source, args.dest)
    except LoadError as error:
        print(f"storage initializer: {error.info}", file=sys.stderr)
        sys.exit(1)
    names = sorted(p.name for p in args.dest.iterdir())
    print(f"storage initializer: {args.source} -> {args.dest}: {', '.join(names) or '(empty)'}")


if __name__ == "__main__":
    main()
