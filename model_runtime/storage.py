"""Model URIs → a local directory, as Seldon's storage initializer resolves them.

Schemes: local paths and `file://`; `http(s)://` (a file, or an archive that is extracted); `s3://`
(AWS or any S3-compatible server: `S3_ENDPOINT`/`AWS_ENDPOINT_URL`, as MinIO users set); `gs://`
(anonymous for public buckets, else `GOOGLE_APPLICATION_CREDENTIALS`); Azure blob
(`https://<account>.blob.core.windows.net/<container>/<path>` or `az://<container>/<path>`); `pvc://<claim>/
<path>` (locally a folder per claim under `$SELDON_MESH_PVC_ROOT`); and rclone remotes (`minio:bucket/path`
with `RCLONE_CONFIG_<REMOTE>_*`, read here: no rclone binary). Credentials are read from `env`, which
defaults to the process environment; in a cluster the node's `envSecretRefName` Secret arrives there.

The clients live in `storage_s3`, `storage_gcs`, `storage_azure` (imported only for their scheme) and
`storage_rclone` (remote → client settings). Every failure is a `LoadError` naming the URI.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from model_runtime.errors import LoadError
from model_runtime.storage_rclone import Remote, remote_for

PVC_ROOT_ENV = "SELDON_MESH_PVC_ROOT"

_ARCHIVES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")
_HTTP_TIMEOUT = httpx.Timeout(30.0, read=300.0)  # seconds; large models stream slowly
_AZURE_HOST = ".blob.core.windows.net"


def fetch(uri: str, cache_dir: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The local path holding the model for `uri`, downloading (into a new folder under `cache_dir`, else
    the system's temporary folder) and extracting it when remote. `env` holds the credentials."""
    if not uri:
        raise LoadError("no model URI given (set --model-uri or a model_uri parameter)")
    environ = os.environ if env is None else env
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] in (":\\", ":/")):
        path = Path(unquote(parsed.path) if scheme == "file" else uri).expanduser()
        if not path.exists():
            raise LoadError(f"model URI {uri}: {path} does not exist")
        return path
    if scheme == "pvc":
        return _pvc(uri, parsed.netloc, parsed.path, environ)
    remote = remote_for(uri, environ)
    if remote is None and scheme not in _FETCHERS:
        raise LoadError(
            f"model URI {uri}: unsupported scheme {scheme!r} (use a path, file, http(s), s3, gs, az, pvc, "
            "or an rclone remote configured with RCLONE_CONFIG_<REMOTE>_TYPE)"
        )
    target = Path(tempfile.mkdtemp(prefix="model-", dir=cache_dir))
    try:
        if remote is not None:
            _fetch_remote(uri, remote, target)
        else:
            _FETCHERS[scheme](uri, environ, target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _pvc(uri: str, claim: str, folder: str, env: Mapping[str, str]) -> Path:
    root = env.get(PVC_ROOT_ENV)
    if not root:
        raise LoadError(
            f"model URI {uri}: a PersistentVolumeClaim is mounted in a cluster; locally set "
            f"{PVC_ROOT_ENV} to a folder holding one folder per claim (here {claim!r})"
        )
    path = Path(root).expanduser() / claim / unquote(folder).lstrip("/")
    if not path.exists():
        raise LoadError(f"model URI {uri}: {path} does not exist ({PVC_ROOT_ENV}={root})")
    return path


def _fetch_http(uri: str, env: Mapping[str, str], target: Path) -> None:
    if (urlparse(uri).hostname or "").endswith(_AZURE_HOST):
        from model_runtime import storage_azure

        storage_azure.download_url(uri, env, target)
        return
    download_http(uri, target)


def download_http(uri: str, target: Path, headers: Mapping[str, str] | None = None) -> None:
    """GET `uri` into `target`; an archive (.tar.gz, .tgz, .tar, .tar.bz2, .tar.xz, .zip) is extracted."""
    name = Path(unquote(urlparse(uri).path)).name or "model"
    download = target / name
    try:
        with httpx.stream(
            "GET", uri, headers=dict(headers or {}), follow_redirects=True, timeout=_HTTP_TIMEOUT
        ) as response:
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


def _fetch_s3(uri: str, env: Mapping[str, str], target: Path) -> None:
    from model_runtime import storage_s3

    parsed = urlparse(uri)
    storage_s3.download(uri, parsed.netloc, parsed.path, storage_s3.config_from_env(env), target)


def _fetch_gcs(uri: str, env: Mapping[str, str], target: Path) -> None:
    from model_runtime import storage_gcs

    parsed = urlparse(uri)
    storage_gcs.download(uri, parsed.netloc, parsed.path, storage_gcs.config_from_env(env), target)


def _fetch_az(uri: str, env: Mapping[str, str], target: Path) -> None:
    from model_runtime import storage_azure

    parsed = urlparse(uri)
    storage_azure.download(uri, parsed.netloc, parsed.path, storage_azure.config_from_env(env), target)


_FETCHERS: dict[str, Callable[[str, Mapping[str, str], Path], None]] = {
    "http": _fetch_http,
    "https": _fetch_http,
    "s3": _fetch_s3,
    "gs": _fetch_gcs,
    "gcs": _fetch_gcs,
    "az": _fetch_az,
}


def _fetch_remote(uri: str, remote: Remote, target: Path) -> None:
    """An rclone remote: its settings become the matching client's, its path `bucket/key...`."""
    bucket, _, key = remote.path.lstrip("/").partition("/")
    if remote.s3 is not None:
        from model_runtime import storage_s3

        storage_s3.download(uri, bucket, key, remote.s3, target)
    elif remote.gcs is not None:
        from model_runtime import storage_gcs

        storage_gcs.download(uri, bucket, key, remote.gcs, target)
    elif remote.azure is not None:
        from model_runtime import storage_azure

        storage_azure.download(uri, bucket, key, remote.azure, target)
    elif remote.http_url is not None:
        download_http(remote.http_url.rstrip("/") + "/" + remote.path.lstrip("/"), target)
    elif remote.local_root is not None:
        source = Path(remote.local_root) / remote.path
        if not source.exists():
            raise LoadError(f"model URI {uri}: {source} does not exist")
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target / source.name)


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


def local_path_for(root: Path, key: str, prefix: str) -> Path:
    """Where object `key` listed under `prefix` is written below `root` (refusing `..` escapes)."""
    relative = key[len(prefix) :].lstrip("/") if prefix else key
    path = root / (relative or Path(key).name)
    if not _inside(root, path):
        raise LoadError(f"object {key!r} would be written outside {root}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
