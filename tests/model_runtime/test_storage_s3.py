"""`s3://` and rclone remotes against a real S3-compatible server (moto's, bound to 127.0.0.1 with IAM
authentication on), set up the way MinIO users of Seldon set their variables."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import joblib
import pytest
from moto.server import ThreadedMotoServer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from model_runtime.errors import LoadError
from model_runtime.storage import fetch
from tests.helpers.ports import free_port
from tests.helpers.runtime import start_runtime
from tests.model_runtime.conftest import IRIS_ROW

BUCKET = "models"
FILES = {"iris/model.joblib": b"weights", "iris/meta/settings.json": b"{}", "single.bin": b"one"}


@dataclass
class S3:
    endpoint: str
    key_id: str
    secret: str

    def env(self, **extra: str) -> dict[str, str]:
        """What a Seldon user puts in the `envSecretRefName` Secret for MinIO."""
        return {
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_ENDPOINT_URL": self.endpoint,
            "USE_SSL": "false",
            **extra,
        }


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    admin = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "admin",
        "aws_secret_access_key": "admin",
    }
    try:
        # moto's backends live in the process, not the server: a second module using this fixture (the
        # local Secret tests) would find the first one's user and bucket, so start from nothing
        httpx.post(f"{endpoint}/moto-api/reset").raise_for_status()
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="reader")
        allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [allow]}
        iam.put_user_policy(UserName="reader", PolicyName="all-s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        client = boto3.client("s3", **admin)
        client.create_bucket(Bucket=BUCKET)
        for name, body in FILES.items():
            client.put_object(Bucket=BUCKET, Key=name, Body=body)
        model = io.BytesIO()
        joblib.dump(LogisticRegression(max_iter=1000).fit(*load_iris(return_X_y=True)), model)
        client.put_object(Bucket=BUCKET, Key="sklearn/iris/model.joblib", Body=model.getvalue())
        # from here on every request must carry a valid signature of an IAM user
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
        yield S3(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"inf")
        server.stop()


def test_a_prefix_downloads_every_object_below_it(s3: S3, tmp_path: Path) -> None:
    folder = fetch(f"s3://{BUCKET}/iris", tmp_path, env=s3.env())
    assert (folder / "model.joblib").read_bytes() == b"weights"
    assert (folder / "meta" / "settings.json").read_bytes() == b"{}"
    assert folder.parent == tmp_path


def test_a_single_object_and_s3_endpoint_without_scheme(s3: S3, tmp_path: Path) -> None:
    env = s3.env(S3_ENDPOINT=s3.endpoint.removeprefix("http://"), S3_USE_HTTPS="0")
    del env["AWS_ENDPOINT_URL"]
    folder = fetch(f"s3://{BUCKET}/single.bin", tmp_path, env=env)
    assert [p.name for p in folder.iterdir()] == ["single.bin"]


def test_bad_credentials_name_the_uri_and_the_keys(s3: S3, tmp_path: Path) -> None:
    with pytest.raises(LoadError) as error:
        fetch(f"s3://{BUCKET}/iris", tmp_path, env=s3.env(AWS_SECRET_ACCESS_KEY="wrong"))
    assert error.value.info.startswith(f"model URI s3://{BUCKET}/iris: access denied at {s3.endpoint}")
    assert "AWS_ACCESS_KEY_ID" in error.value.info
    assert list(tmp_path.iterdir()) == []  # nothing half-downloaded is left behind


@pytest.mark.parametrize("uri", [f"s3://{BUCKET}/no-such-model", "s3://no-such-bucket/iris"])
def test_a_missing_object_or_bucket_names_the_uri(s3: S3, tmp_path: Path, uri: str) -> None:
    with pytest.raises(LoadError) as error:
        fetch(uri, tmp_path, env=s3.env())
    assert error.value.info.startswith(f"model URI {uri}: no ")


def _rclone(s3: S3, remote: str, **extra: str) -> dict[str, str]:
    """Seldon's rclone initializer Secret for MinIO (the docs' `RCLONE_CONFIG_S3_*` layout)."""
    prefix = f"RCLONE_CONFIG_{remote.upper()}"
    return {
        f"{prefix}_TYPE": "s3",
        f"{prefix}_PROVIDER": "Minio",
        f"{prefix}_ENV_AUTH": "false",
        f"{prefix}_ACCESS_KEY_ID": s3.key_id,
        f"{prefix}_SECRET_ACCESS_KEY": s3.secret,
        f"{prefix}_ENDPOINT": s3.endpoint,
        **extra,
    }


def test_an_rclone_remote_maps_to_the_s3_client(s3: S3, tmp_path: Path) -> None:
    folder = fetch(f"minio:{BUCKET}/iris", tmp_path, env=_rclone(s3, "minio"))
    assert (folder / "model.joblib").read_bytes() == b"weights"


def test_s3_uris_use_the_rclone_remote_named_s3_when_configured(s3: S3, tmp_path: Path) -> None:
    # Seldon's rclone initializer reads s3://bucket/path as remote `s3`, path bucket/path
    folder = fetch(f"s3://{BUCKET}/iris", tmp_path, env=_rclone(s3, "s3"))
    assert (folder / "meta" / "settings.json").exists()


def test_an_rclone_remote_with_a_wrong_key_is_access_denied(s3: S3, tmp_path: Path) -> None:
    env = _rclone(s3, "minio", RCLONE_CONFIG_MINIO_ACCESS_KEY_ID="AKIANOTAUSER")
    with pytest.raises(LoadError) as error:
        fetch(f"minio:{BUCKET}/iris", tmp_path, env=env)
    assert error.value.info.startswith(f"model URI minio:{BUCKET}/iris: access denied")


def test_an_unknown_remote_says_how_to_configure_it(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as error:
        fetch("minio:bucket/iris", tmp_path, env={})
    assert "RCLONE_CONFIG_<REMOTE>_TYPE" in error.value.info


def _storage_init(source: str, dest: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_runtime.storage_init", source, str(dest)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true", **env},
    )


def test_the_storage_initializer_fetches_from_s3_with_the_secrets_env(s3: S3, tmp_path: Path) -> None:
    dest = tmp_path / "mnt" / "models"
    result = _storage_init(f"s3://{BUCKET}/iris", dest, s3.env())
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["meta", "model.joblib"]


def test_the_storage_initializer_exits_1_with_the_reason(s3: S3, tmp_path: Path) -> None:
    result = _storage_init(f"s3://{BUCKET}/gone", tmp_path / "dest", s3.env())
    assert result.returncode == 1
    assert f"model URI s3://{BUCKET}/gone: no object" in result.stderr


def test_a_runtime_serves_a_model_from_s3(s3: S3) -> None:
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", f"s3://{BUCKET}/sklearn/iris"]
    with start_runtime(args, env=s3.env()) as runtime:
        out = httpx.post(runtime.http_url + "/predict", json={"data": {"ndarray": [IRIS_ROW]}}).json()
        assert len(out["data"]["ndarray"][0]) == 3


def test_a_runtime_that_cannot_fetch_is_not_ready_with_the_reason(s3: S3) -> None:
    uri = f"s3://{BUCKET}/sklearn/iris"
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", uri]
    with start_runtime(args, env=s3.env(AWS_ACCESS_KEY_ID="AKIAWRONG"), wait_ready=False) as runtime:
        deadline = time.monotonic() + 60
        status: dict[str, str] = {}
        while time.monotonic() < deadline:
            status = httpx.get(runtime.http_url + "/ready").json()["status"]
            if status["reason"] == "MICROSERVICE_LOAD_FAILED":
                break
            time.sleep(0.05)
        assert status["reason"] == "MICROSERVICE_LOAD_FAILED"
        assert status["info"].startswith(f"model URI {uri}: access denied")


def test_an_rclone_remote_with_env_auth_takes_the_aws_keys(s3: S3, tmp_path: Path) -> None:
    env = {
        "RCLONE_CONFIG_MINIO_TYPE": "s3",
        "RCLONE_CONFIG_MINIO_PROVIDER": "Minio",
        "RCLONE_CONFIG_MINIO_ENV_AUTH": "true",
        "RCLONE_CONFIG_MINIO_ENDPOINT": s3.endpoint,
        "AWS_ACCESS_KEY_ID": s3.key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret,
    }
    folder = fetch(f"minio:{BUCKET}/single.bin", tmp_path, env=env)
    assert (folder / "single.bin").read_bytes() == b"one"
