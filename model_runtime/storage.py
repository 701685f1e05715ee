"""Model URIs → a local directory: local paths, `file://`, `http(s)://` (a file or an archive), and
`gs://` / `s3://` through fsspec (the `seldon-mesh[cloud]` extra). Used by prepackaged runtimes' `load()`.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from model_runtime.errors import LoadError

_ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")
_HTTP_TIMEOUT = httpx.Timeout(30.0, read=300.0)  # seconds; large models stream slowly


def fetch(uri: str, cache_dir: Path | None = None) -> Path:
    """The local path holding the model for `uri`, downloading and extracting it when remote."""
    if not uri:
        raise LoadError("no model URI given (set --model-uri or a model_uri parameter)")
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] in (":\\", ":/")):
        path = Path(unquote(parsed.path) if scheme == "file" else uri).expanduser()
        if not path.exists():
            raise LoadError(f"model URI {uri}: {path} does not exist")
        return path
    target = Path(tempfile.mkdtemp(prefix="model-", dir=cache_dir))
    if scheme in ("http", "https"):
        return _fetch_http(uri, parsed.path, target)
    if scheme in ("gs", "s3", "gcs"):
        return _fetch_fsspec(uri, target)
    raise LoadError(f"model URI {uri}: unsupported scheme {scheme!r} (use a path, file, http(s), gs or s3)")


def _fetch_http(uri: str, url_path: str, target: Path) -> Path:
    name = Path(unquote(url_path)).name or "model"
    download = target / name
    try:
        with httpx.stream("GET", uri, follow_redirects=True, timeout=_HTTP_TIMEOUT) as response:
            if response.status_code != 200:
                raise LoadError(f"model URI {uri}: HTTP {response.status_code}")
            with download.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise LoadError(f"model URI {uri}: {exc}") from exc
    if name.endswith(_ARCHIVES):
        _extract(download, target)
        download.unlink()
    return target


def _extract(archive: Path, target: Path) -> None:
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                for member in zipped.namelist():
                    if not _inside(target, target / member):
                        raise LoadError(f"{archive.name}: member {member!r} escapes the archive")
                zipped.extractall(target)
        else:
            with tarfile.open(archive) as tar:
                tar.extractall(target, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise LoadError(f"cannot extract {archive.name}: {exc}") from exc


def _inside(root: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _fetch_fsspec(uri: str, target: Path) -> Path:
    try:
        import fsspec
    except ImportError:
        shutil.rmtree(target, ignore_errors=True)
        raise LoadError(
            f"model URI {uri} needs fsspec and its cloud filesystems: pip install 'seldon-mesh[cloud]'"
        ) from None
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        if fs.isdir(path):
            fs.get(path.rstrip("/") + "/", str(target), recursive=True)
        else:
            fs.get(path, str(target / Path(path).name))
    except ImportError as exc:
        raise LoadError(f"model URI {uri}: {exc} (pip install 'seldon-mesh[cloud]')") from exc
    except Exception as exc:
        raise LoadError(f"model URI {uri}: {type(exc).__name__}: {exc}") from exc
    return target
