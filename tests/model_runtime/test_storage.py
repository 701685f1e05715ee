"""Model URIs → local folders (remote http(s) is exercised end to end in test_lifecycle)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from model_runtime.errors import LoadError
from model_runtime.storage import fetch


def test_local_paths(tmp_path: Path) -> None:
    assert fetch(str(tmp_path)) == tmp_path
    assert fetch(f"file://{tmp_path}") == tmp_path


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "no model URI given"),
        ("/definitely/not/here", "/definitely/not/here does not exist"),
        ("ftp://host/model", "unsupported scheme 'ftp'"),
    ],
)
def test_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(LoadError) as error:
        fetch(uri)
    assert message in error.value.info


def test_zip_members_may_not_escape(tmp_path: Path) -> None:
    from model_runtime.storage import _extract

    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../escaped.txt", "x")
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(LoadError) as error:
        _extract(archive, target)
    assert "escapes the archive" in error.value.info
    assert not (tmp_path / "escaped.txt").exists()
