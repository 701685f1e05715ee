"""`python -m model_runtime.storage_init SRC DEST`, the init container of a Kubernetes model pod: the model's
files land in DEST itself (the model container's `--model-uri /mnt/models`), from a real HTTP server."""

from __future__ import annotations

import functools
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run(source: str, dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_runtime.storage_init", source, str(dest)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_an_http_archive_is_extracted_into_dest(served: tuple[str, Path], tmp_path: Path) -> None:
    url, root = served
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.joblib").write_bytes(b"weights")
    (model / "settings.json").write_text("{}")
    with tarfile.open(root / "iris.tar.gz", "w:gz") as tar:
        for path in model.iterdir():
            tar.add(path, arcname=path.name)
    dest = tmp_path / "mnt" / "models"
    result = run(f"{url}/iris.tar.gz", dest)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["model.joblib", "settings.json"]
    assert (dest / "model.joblib").read_bytes() == b"weights"


def test_a_single_http_file_lands_in_dest(served: tuple[str, Path], tmp_path: Path) -> None:
    url, root = served
    (root / "model.json").write_text('{"learner": {}}')
    dest = tmp_path / "models"
    assert run(f"{url}/model.json", dest).returncode == 0
    assert [p.name for p in dest.iterdir()] == ["model.json"]


def test_a_local_folder_is_copied(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "model.txt").write_text("tree")
    dest = tmp_path / "dest"
    assert run(str(source), dest).returncode == 0
    assert (dest / "sub" / "model.txt").read_text() == "tree"


def test_a_missing_model_fails_the_init_container(served: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = served
    result = run(f"{url}/no-such-model.tar.gz", tmp_path / "dest")
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr
