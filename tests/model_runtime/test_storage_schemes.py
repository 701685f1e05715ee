"""pvc:// as a local folder setting, Azure URIs answered with clear reasons, rclone remotes of the
other types; the S3 paths are in test_storage_s3 (against a real server)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from model_runtime.errors import LoadError
from model_runtime.storage import PVC_ROOT_ENV, fetch
from tests.helpers.ports import free_port


def test_pvc_uris_read_a_folder_per_claim_under_the_pvc_root(tmp_path: Path) -> None:
    model = tmp_path / "claims" / "models-pvc" / "iris"
    model.mkdir(parents=True)
    (model / "model.joblib").write_bytes(b"w")
    assert fetch("pvc://models-pvc/iris", env={PVC_ROOT_ENV: str(tmp_path / "claims")}) == model


def test_pvc_without_a_root_or_folder_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as error:
        fetch("pvc://models-pvc/iris", env={})
    assert PVC_ROOT_ENV in error.value.info
    with pytest.raises(LoadError) as error:
        fetch("pvc://models-pvc/iris", env={PVC_ROOT_ENV: str(tmp_path)})
    assert error.value.info.startswith("model URI pvc://models-pvc/iris:")
    assert "does not exist" in error.value.info


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    (root / "models" / "iris").mkdir(parents=True)
    (root / "models" / "iris" / "model.bin").write_bytes(b"http")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_rclone_http_and_local_remotes(served: tuple[str, Path], tmp_path: Path) -> None:
    url, root = served
    env = {"RCLONE_CONFIG_WEB_TYPE": "http", "RCLONE_CONFIG_WEB_URL": url + "/models"}
    folder = fetch("web:iris/model.bin", tmp_path, env=env)
    assert (folder / "model.bin").read_bytes() == b"http"
    env = {"RCLONE_CONFIG_DISK_TYPE": "local"}
    folder = fetch(f"disk:{root}/models/iris", tmp_path, env=env)
    assert (folder / "model.bin").read_bytes() == b"http"


def test_an_unsupported_rclone_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as error:
        fetch("box:folder/model", tmp_path, env={"RCLONE_CONFIG_BOX_TYPE": "box"})
    assert "rclone remote 'box' has type 'box'" in error.value.info


def test_azure_blob_url_at_an_unreachable_endpoint_names_the_uri(tmp_path: Path) -> None:
    uri = "az://models/iris"
    env = {
        "AZURE_STORAGE_ACCOUNT_NAME": "devstoreaccount1",
        "AZURE_STORAGE_BLOB_ENDPOINT": f"http://127.0.0.1:{free_port()}/devstoreaccount1",
    }
    with pytest.raises(LoadError) as error:
        fetch(uri, tmp_path, env=env)
    assert error.value.info.startswith(f"model URI {uri}: ")
    assert list(tmp_path.iterdir()) == []


def test_az_without_an_account_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as error:
        fetch("az://models/iris", tmp_path, env={})
    assert error.value.info == (
        "model URI az://models/iris: no Azure storage account "
        "(set AZURE_STORAGE_ACCOUNT_NAME or use an https URL)"
    )


def test_an_http_tar_xz_archive_is_extracted(served: tuple[str, Path], tmp_path: Path) -> None:
    import tarfile

    url, root = served
    with tarfile.open(root / "model.tar.xz", "w:xz") as tar:
        tar.add(root / "models" / "iris" / "model.bin", arcname="model.bin")
    folder = fetch(f"{url}/model.tar.xz", tmp_path, env={})
    assert [p.name for p in folder.iterdir()] == ["model.bin"]


def test_s3_settings_read_as_seldons_and_kserves_initializers_read_them() -> None:
    from model_runtime.storage_s3 import config_from_env

    minio = config_from_env({"S3_ENDPOINT": "minio.minio-system:9000", "S3_USE_HTTPS": "0"})
    assert minio.endpoint_url == "http://minio.minio-system:9000"
    assert config_from_env({"S3_ENDPOINT": "s3.example.com"}).endpoint_url == "https://s3.example.com"
    both = config_from_env({"AWS_ENDPOINT_URL": "http://a:1", "S3_ENDPOINT": "b:2"})
    assert both.endpoint_url == "http://a:1"
    assert config_from_env({"AWS_ANON": "true"}).anonymous
    assert not config_from_env({"S3_VERIFY_SSL": "0"}).verify
    aws = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1"}
    keys = config_from_env(aws)
    assert (keys.access_key_id, keys.secret_access_key, keys.region) == ("k", "s", "eu-west-1")
