"""rclone remotes from `RCLONE_CONFIG_<REMOTE>_<OPTION>` variables, as Seldon's rclone storage initializer
reads them, turned into the settings of our own clients (no rclone binary is needed).

`minio:bucket/path` (and `s3://bucket/path` when `RCLONE_CONFIG_S3_TYPE` is set: rclone sees the remote
`s3` there) is a remote when `RCLONE_CONFIG_<REMOTE>_TYPE` exists, the remote's name upper-cased (a `-`
may be written `_`). Types: `s3` (any provider: `_PROVIDER`, `_ENDPOINT`, `_ACCESS_KEY_ID`,
`_SECRET_ACCESS_KEY`, `_SESSION_TOKEN`, `_REGION`, `_ENV_AUTH`), `google cloud storage`/`gcs`
(`_SERVICE_ACCOUNT_FILE`, `_SERVICE_ACCOUNT_CREDENTIALS`, `_ANONYMOUS`, `_ENDPOINT`), `azureblob`
(`_ACCOUNT`, `_KEY`, `_SAS_URL`, `_ENDPOINT`), `http` (`_URL`) and `local`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from model_runtime.errors import LoadError
from model_runtime.storage_azure import AzureConfig
from model_runtime.storage_gcs import GcsConfig
from model_runtime.storage_s3 import S3Config, config_from_env, endpoint_url

_REMOTE = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_\-.]*):(?P<path>.*)$", re.DOTALL)
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class Remote:
    """One remote: exactly one of the client settings (or `http_url` / `local_root`) is set."""

    name: str
    path: str
    s3: S3Config | None = None
    gcs: GcsConfig | None = None
    azure: AzureConfig | None = None
    http_url: str | None = None
    local_root: str | None = None


def remote_for(uri: str, env: Mapping[str, str]) -> Remote | None:
    """The rclone remote `uri` names, or None when no `RCLONE_CONFIG_<REMOTE>_TYPE` is set for it."""
    match = _REMOTE.match(uri)
    if match is None:
        return None
    name = match["name"]
    prefix = _prefix(name, env)
    if prefix is None:
        return None
    path = match["path"]
    path = path[2:] if path.startswith("//") else path

    def option(key: str, default: str = "") -> str:
        return env.get(f"{prefix}_{key}", default)

    kind = option("TYPE").strip().lower()
    if kind == "s3":
        if option("ENV_AUTH").lower() in _TRUE and not option("ACCESS_KEY_ID"):
            base = config_from_env(env)
        else:
            base = S3Config(
                access_key_id=option("ACCESS_KEY_ID") or None,
                secret_access_key=option("SECRET_ACCESS_KEY") or None,
                session_token=option("SESSION_TOKEN") or None,
            )
        endpoint = option("ENDPOINT")
        config = S3Config(
            access_key_id=base.access_key_id,
            secret_access_key=base.secret_access_key,
            session_token=base.session_token,
            region=option("REGION") or base.region,
            endpoint_url=endpoint_url(endpoint, use_https=True) if endpoint else base.endpoint_url,
            verify=base.verify,
            anonymous=base.access_key_id is None and option("ENV_AUTH").lower() not in _TRUE,
        )
        return Remote(name, path, s3=config)
    if kind in ("google cloud storage", "gcs", "gs"):
        gcs = GcsConfig(
            credentials_file=option("SERVICE_ACCOUNT_FILE") or None,
            credentials_json=option("SERVICE_ACCOUNT_CREDENTIALS") or None,
            anonymous=option("ANONYMOUS").lower() in _TRUE,
            endpoint=option("ENDPOINT") or None,
        )
        return Remote(name, path, gcs=gcs)
    if kind == "azureblob":
        azure = AzureConfig(
            account=option("ACCOUNT") or None,
            key=option("KEY") or None,
            sas_url=option("SAS_URL") or None,
            endpoint=option("ENDPOINT") or None,
        )
        return Remote(name, path, azure=azure)
    if kind == "http":
        if not option("URL"):
            raise LoadError(f"model URI {uri}: rclone remote {name!r} of type http needs {prefix}_URL")
        return Remote(name, path, http_url=option("URL"))
    if kind == "local":
        return Remote(name, path, local_root="")
    raise LoadError(
        f"model URI {uri}: rclone remote {name!r} has type {kind!r}; supported here: s3, "
        "google cloud storage, azureblob, http, local"
    )


def _prefix(name: str, env: Mapping[str, str]) -> str | None:
    for candidate in (name.upper(), name.upper().replace("-", "_").replace(".", "_")):
        prefix = f"RCLONE_CONFIG_{candidate}"
        if f"{prefix}_TYPE" in env:
            return prefix
    return None
