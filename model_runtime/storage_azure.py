"""Azure blob storage through azure-storage-blob: `https://<account>.blob.core.windows.net/<container>/<path>`
(as Seldon's initializer takes it) and `az://<container>/<path>` (account from the environment).

Credentials: `AZURE_STORAGE_CONNECTION_STRING`, else the account (`AZURE_STORAGE_ACCOUNT_NAME` or
`AZURE_STORAGE_ACCOUNT`, or the URL's host) with `AZURE_STORAGE_ACCESS_KEY`/`AZURE_STORAGE_KEY` or a SAS
token `AZURE_STORAGE_SAS_TOKEN`; with none, anonymous (a public container). `AZURE_STORAGE_BLOB_ENDPOINT`
overrides the account URL (Azurite or a sovereign cloud).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from model_runtime.errors import LoadError

# a few quick retries: the SDK's default (15 s initial back-off, 3 retries) keeps a pod in Init for a minute
# before it can say the endpoint is unreachable
_RETRY: dict[str, Any] = {
    "retry_total": 2,
    "initial_backoff": 1,
    "increment_base": 2,
    "connection_timeout": 20,
}


@dataclass(frozen=True, slots=True)
class AzureConfig:
    account: str | None = None
    key: str | None = None
    sas_url: str | None = None
    sas_token: str | None = None
    connection_string: str | None = None
    endpoint: str | None = None


def config_from_env(env: Mapping[str, str]) -> AzureConfig:
    return AzureConfig(
        account=env.get("AZURE_STORAGE_ACCOUNT_NAME") or env.get("AZURE_STORAGE_ACCOUNT") or None,
        key=env.get("AZURE_STORAGE_ACCESS_KEY") or env.get("AZURE_STORAGE_KEY") or None,
        sas_token=env.get("AZURE_STORAGE_SAS_TOKEN") or None,
        connection_string=env.get("AZURE_STORAGE_CONNECTION_STRING") or None,
        endpoint=env.get("AZURE_STORAGE_BLOB_ENDPOINT") or None,
    )


def download_url(uri: str, env: Mapping[str, str], target: Path) -> None:
    """`https://<account>.blob.core.windows.net/<container>/<path>`."""
    parsed = urlparse(uri)
    account = (parsed.hostname or "").split(".", 1)[0]
    container, _, path = unquote(parsed.path).lstrip("/").partition("/")
    config = config_from_env(env)
    if config.account != account:  # the URL names the account; a key for another one does not apply
        config = replace(config, account=account, key=None, connection_string=None, endpoint=None)
    download(uri, container, path, config, target)


def _service(config: AzureConfig) -> Any:
    from azure.storage.blob import BlobServiceClient

    if config.connection_string:
        return BlobServiceClient.from_connection_string(config.connection_string, **_RETRY)
    if config.sas_url:
        return BlobServiceClient(account_url=config.sas_url, **_RETRY)
    url = config.endpoint or (f"https://{config.account}.blob.core.windows.net" if config.account else None)
    if url is None:
        raise LoadError("no Azure storage account (set AZURE_STORAGE_ACCOUNT_NAME or use an https URL)")
    credential: Any = None
    if config.key:
        credential = {"account_name": config.account, "account_key": config.key}
    elif config.sas_token:
        credential = config.sas_token
    return BlobServiceClient(account_url=url, credential=credential, **_RETRY)


def download(uri: str, container: str, path: str, config: AzureConfig, target: Path) -> None:
    from azure.core import exceptions as az

    from model_runtime.storage import local_path_for

    path = path.lstrip("/")
    if not container:
        raise LoadError(f"model URI {uri}: no container named")
    try:
        client = _service(config).get_container_client(container)
        names = [b.name for b in client.list_blobs(name_starts_with=path) if not b.name.endswith("/")]
        prefix = path.rstrip("/") + "/" if path else ""
        if path in names:
            wanted = [(path, target / (Path(path).name or "model"))]
        else:
            wanted = [(n, local_path_for(target, n, prefix)) for n in names if n.startswith(prefix)]
        if not wanted:
            raise LoadError(f"model URI {uri}: no blob at or under {container}/{path}")
        for name, local in wanted:
            with local.open("wb") as out:
                client.download_blob(name).readinto(out)
    except LoadError as exc:
        raise LoadError(
            exc.info if exc.info.startswith("model URI") else f"model URI {uri}: {exc.info}"
        ) from exc
    except az.ClientAuthenticationError as exc:
        raise LoadError(
            f"model URI {uri}: access denied (check AZURE_STORAGE_* or the rclone remote's key)"
        ) from exc
    except az.ResourceNotFoundError as exc:
        raise LoadError(f"model URI {uri}: no such container or blob") from exc
    except (az.AzureError, ValueError, OSError) as exc:
        raise LoadError(f"model URI {uri}: {type(exc).__name__}: {exc}") from exc
