"""`gs://bucket/path` through google-cloud-storage, as Seldon's initializer reads Google Cloud Storage.

Credentials: `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key file), else the library's default
chain (workload identity, gcloud), else anonymous, which is enough for a public bucket such as Seldon's
`gs://seldon-models`. `STORAGE_EMULATOR_HOST` points at an emulator (anonymous). A path that is one object
is downloaded as that file; otherwise every object under `path/`, keeping its path below the prefix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_runtime.errors import LoadError


@dataclass(frozen=True, slots=True)
class GcsConfig:
    credentials_file: str | None = None
    credentials_json: str | None = None
    anonymous: bool = False
    endpoint: str | None = None


def config_from_env(env: Mapping[str, str]) -> GcsConfig:
    return GcsConfig(
        credentials_file=env.get("GOOGLE_APPLICATION_CREDENTIALS") or None,
        endpoint=env.get("STORAGE_EMULATOR_HOST") or None,
    )


def _client(config: GcsConfig) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage
    from google.oauth2 import service_account

    if config.endpoint:
        return storage.Client(
            project="anonymous",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": config.endpoint},
        )
    if config.credentials_json:
        info = json.loads(config.credentials_json)
        credentials = service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
        return storage.Client(project=info.get("project_id"), credentials=credentials)
    if config.credentials_file:
        return storage.Client.from_service_account_json(config.credentials_file)
    if config.anonymous:
        return storage.Client.create_anonymous_client()
    try:
        return storage.Client()
    except (DefaultCredentialsError, OSError):
        return storage.Client.create_anonymous_client()


def download(uri: str, bucket: str, key: str, config: GcsConfig, target: Path) -> None:
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth
    from google.cloud.storage.retry import DEFAULT_RETRY

    # transient errors are retried for up to 30 s (the library's default is 120 s per call)
    retry = DEFAULT_RETRY.with_timeout(30.0)

    from model_runtime.storage import local_path_for

    key = key.lstrip("/")
    if not bucket:
        raise LoadError(f"model URI {uri}: no bucket named")
    try:
        client = _client(config)
        blobs = [b for b in client.list_blobs(bucket, prefix=key, retry=retry) if not b.name.endswith("/")]
        single = [b for b in blobs if b.name == key]
        if single:
            single[0].download_to_filename(str(target / (Path(key).name or "model")), retry=retry)
            return
        prefix = key.rstrip("/") + "/" if key else ""
        under = [b for b in blobs if b.name.startswith(prefix)]
        if not under:
            raise LoadError(f"model URI {uri}: no object at or under gs://{bucket}/{key}")
        for blob in under:
            blob.download_to_filename(str(local_path_for(target, blob.name, prefix)), retry=retry)
    except (api.Forbidden, api.Unauthorized) as exc:
        raise LoadError(
            f"model URI {uri}: access denied ({exc.code}: check GOOGLE_APPLICATION_CREDENTIALS or the "
            "rclone remote's service account)"
        ) from exc
    except api.NotFound as exc:
        raise LoadError(f"model URI {uri}: no such bucket or object") from exc
    except (api.GoogleAPIError, auth.GoogleAuthError, ValueError, OSError) as exc:
        raise LoadError(f"model URI {uri}: {type(exc).__name__}: {exc}") from exc
