"""`s3://bucket/key` through boto3: AWS, or any S3-compatible server (MinIO, Ceph, ...) at a custom endpoint.

Settings, from the variables Seldon's and KServe's initializers read (the first one set wins):
endpoint `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, `S3_ENDPOINT_URL`, `S3_ENDPOINT` (a bare `host:port`
gets `https://`, or `http://` when `S3_USE_HTTPS`/`USE_SSL` is 0/false); keys `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; region `AWS_REGION`, `AWS_DEFAULT_REGION` (default us-east-1);
`S3_VERIFY_SSL=0` skips certificate checks; `AWS_ANON=true` (or `awsAnonymousCredential=true`) signs
nothing, for public buckets. With no keys given, boto3's own chain (profiles, IRSA, instance roles) runs.

A key that is one object is downloaded as that file; otherwise every object under `key/` is, keeping its
path below the prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_runtime.errors import LoadError

_FALSE = ("0", "false", "no", "off")
_TRUE = ("1", "true", "yes", "on")
_DENIED = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "403",
        "401",
    }
)


@dataclass(frozen=True, slots=True)
class S3Config:
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    verify: bool = True
    anonymous: bool = False


def endpoint_url(endpoint: str, use_https: bool) -> str:
    if "://" in endpoint:
        return endpoint
    return f"{'https' if use_https else 'http'}://{endpoint}"


def config_from_env(env: Mapping[str, str]) -> S3Config:
    use_https = (env.get("S3_USE_HTTPS") or env.get("USE_SSL") or "1").lower() not in _FALSE
    endpoint = next(
        (
            env[name]
            for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "S3_ENDPOINT_URL", "S3_ENDPOINT")
            if env.get(name)
        ),
        None,
    )
    anonymous = (env.get("AWS_ANON") or env.get("awsAnonymousCredential") or "").lower() in _TRUE
    return S3Config(
        access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        session_token=env.get("AWS_SESSION_TOKEN") or None,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        endpoint_url=endpoint_url(endpoint, use_https) if endpoint else None,
        verify=(env.get("S3_VERIFY_SSL") or "1").lower() not in _FALSE,
        anonymous=anonymous,
    )


def download(uri: str, bucket: str, key: str, config: S3Config, target: Path) -> None:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    from model_runtime.storage import local_path_for

    key = key.lstrip("/")
    if not bucket:
        raise LoadError(f"model URI {uri}: no bucket named")
    options: dict[str, Any] = {
        "region_name": config.region or "us-east-1",
        "endpoint_url": config.endpoint_url,
        "verify": config.verify,
        "config": Config(
            signature_version=UNSIGNED if config.anonymous else None,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"} if config.endpoint_url else None,
        ),
    }
    if config.access_key_id and not config.anonymous:
        options |= {
            "aws_access_key_id": config.access_key_id,
            "aws_secret_access_key": config.secret_access_key,
            "aws_session_token": config.session_token,
        }
    where = f" at {config.endpoint_url}" if config.endpoint_url else ""
    try:
        client = boto3.session.Session().client("s3", **options)
        keys = _objects(client, bucket, key)
        if keys is None:  # the key is one object
            client.download_file(bucket, key, str(target / (Path(key).name or "model")))
            return
        if not keys:
            raise LoadError(f"model URI {uri}: no object at or under s3://{bucket}/{key}{where}")
        prefix = key.rstrip("/") + "/" if key else ""
        for name in keys:
            if not name.endswith("/"):
                client.download_file(bucket, name, str(local_path_for(target, name, prefix)))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _DENIED:
            raise LoadError(
                f"model URI {uri}: access denied{where} ({code}: check the credentials: "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the rclone remote's keys)"
            ) from exc
        if code in ("NoSuchBucket", "404", "NoSuchKey"):
            raise LoadError(f"model URI {uri}: no such bucket or object{where} ({code})") from exc
        raise LoadError(f"model URI {uri}: S3 error{where}: {code} {error.get('Message', '')}") from exc
    except BotoCoreError as exc:
        raise LoadError(f"model URI {uri}: {type(exc).__name__}{where}: {exc}") from exc


def _objects(client: Any, bucket: str, key: str) -> list[str] | None:
    """None when `key` is a single object, else the keys under `key/` (empty when there are none)."""
    from botocore.exceptions import ClientError

    if key and not key.endswith("/"):
        try:
            client.head_object(Bucket=bucket, Key=key)
            return None
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchKey", "NotFound"):
                raise
    prefix = key.rstrip("/") + "/" if key else ""
    names: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        names.extend(item["Key"] for item in page.get("Contents", ()))
    return names
