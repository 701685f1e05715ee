"""`gs://` against a real Google Cloud Storage emulator (gcp-storage-emulator, in memory on 127.0.0.1),
reached as the client library reaches one (`STORAGE_EMULATOR_HOST`), and as an rclone remote."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from model_runtime.errors import LoadError
from model_runtime.storage import fetch
from tests.helpers.ports import free_port


@pytest.fixture(scope="module")
def gcs() -> Iterator[str]:
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = storage.Client(
            project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
        )
        bucket = client.create_bucket("seldon-models")
        bucket.blob("sklearn/iris/model.joblib").upload_from_string(b"weights")
        bucket.blob("sklearn/iris/meta/settings.json").upload_from_string(b"{}")
        bucket.blob("sklearn/iris-extra/other.bin").upload_from_string(b"not this one")
        yield endpoint
    finally:
        server.stop()


def test_a_prefix_downloads_its_objects_only(gcs: str, tmp_path: Path) -> None:
    folder = fetch("gs://seldon-models/sklearn/iris", tmp_path, env={"STORAGE_EMULATOR_HOST": gcs})
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == ["meta/settings.json", "model.joblib"]
    assert (folder / "model.joblib").read_bytes() == b"weights"


def test_a_single_object(gcs: str, tmp_path: Path) -> None:
    uri = "gs://seldon-models/sklearn/iris/model.joblib"
    folder = fetch(uri, tmp_path, env={"STORAGE_EMULATOR_HOST": gcs})
    assert [p.name for p in folder.iterdir()] == ["model.joblib"]


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("gs://seldon-models/sklearn/missing", "no object at or under gs://seldon-models/sklearn/missing"),
        ("gs://no-such-bucket/model", "no such bucket or object"),
    ],
)
def test_a_missing_object_or_bucket_names_the_uri(gcs: str, tmp_path: Path, uri: str, reason: str) -> None:
    with pytest.raises(LoadError) as error:
        fetch(uri, tmp_path, env={"STORAGE_EMULATOR_HOST": gcs})
    assert error.value.info == f"model URI {uri}: {reason}"
    assert list(tmp_path.iterdir()) == []


def test_an_rclone_gcs_remote(gcs: str, tmp_path: Path) -> None:
    env = {"RCLONE_CONFIG_GCS_TYPE": "google cloud storage", "RCLONE_CONFIG_GCS_ENDPOINT": gcs}
    folder = fetch("gcs:seldon-models/sklearn/iris", tmp_path, env=env)
    assert (folder / "meta" / "settings.json").exists()
