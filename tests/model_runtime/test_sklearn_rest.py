"""SKLEARN_SERVER over REST, with a real iris model and a real runtime process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers.runtime import RunningRuntime, start_runtime
from tests.model_runtime.conftest import IRIS_ROW


def _failure(response: httpx.Response, code: int) -> dict[str, object]:
    assert response.status_code == code, response.text
    status = response.json()["status"]
    assert status["code"] == code
    assert status["status"] == "FAILURE"
    return dict(status)


@pytest.mark.parametrize("path", ["/predict", "/api/v1.0/predictions", "/api/v0.1/predictions"])
def test_ndarray_in_gives_probabilities_out(sklearn_runtime: RunningRuntime, path: str) -> None:
    body = {"data": {"names": ["a", "b", "c", "d"], "ndarray": [IRIS_ROW, [6.7, 3.0, 5.2, 2.3]]}}
    response = httpx.post(sklearn_runtime.http_url + path, json=body)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["names"] == ["t:0", "t:1", "t:2"]
    probabilities = np.asarray(data["ndarray"])
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities.argmax(axis=1).tolist() == [0, 2]


def test_tensor_in_gives_tensor_out(sklearn_runtime: RunningRuntime) -> None:
    body = {"data": {"tensor": {"shape": [1, 4], "values": IRIS_ROW}}}
    response = httpx.post(sklearn_runtime.http_url + "/predict", json=body)
    tensor = response.json()["data"]["tensor"]
    assert tensor["shape"] == [1, 3]
    assert sum(tensor["values"]) == pytest.approx(1.0)


def test_tftensor_in_gives_tftensor_out(sklearn_runtime: RunningRuntime) -> None:
    tftensor = {
        "dtype": "DT_FLOAT",
        "tensorShape": {"dim": [{"size": "1"}, {"size": "4"}]},
        "floatVal": IRIS_ROW,
    }
    response = httpx.post(sklearn_runtime.http_url + "/predict", json={"data": {"tftensor": tftensor}})
    out = response.json()["data"]["tftensor"]
    assert out["dtype"] == "DT_DOUBLE"
    assert [int(d["size"]) for d in out["tensorShape"]["dim"]] == [1, 3]
    assert sum(out["doubleVal"]) == pytest.approx(1.0)


def test_puid_is_echoed_from_the_header(sklearn_runtime: RunningRuntime) -> None:
    body = {"data": {"ndarray": [IRIS_ROW]}}
    response = httpx.post(
        sklearn_runtime.http_url + "/predict", json=body, headers={"Seldon-Puid": "abc-123"}
    )
    assert response.headers["seldon-puid"] == "abc-123"
    assert response.json()["meta"]["puid"] == "abc-123"


def test_a_puid_is_generated_when_none_is_sent(sklearn_runtime: RunningRuntime) -> None:
    response = httpx.post(sklearn_runtime.http_url + "/predict", json={"data": {"ndarray": [IRIS_ROW]}})
    puid = response.headers["seldon-puid"]
    assert puid
    assert response.json()["meta"]["puid"] == puid


@pytest.mark.parametrize("path", ["/predict", "/transform-input", "/send-feedback"])
@pytest.mark.parametrize("puid", ["\u001f", "a\nb", "\u00e9", "x" * 1025])
def test_a_body_puid_no_header_can_carry_is_400(
    sklearn_runtime: RunningRuntime, path: str, puid: str
) -> None:
    """The puid goes back as the Seldon-Puid header; one that cannot (a control character, non-ASCII, over
    1,024 characters) is the client's error, not a connection closed without an answer."""
    message = {"meta": {"puid": puid}, "data": {"ndarray": [IRIS_ROW]}}
    body = {"request": message, "reward": 1} if path == "/send-feedback" else message
    response = httpx.post(sklearn_runtime.http_url + path, json=body)
    assert "puid" in str(_failure(response, 400)["info"])


def test_json_as_form_field_and_query_parameter(sklearn_runtime: RunningRuntime) -> None:
    payload = '{"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}'
    form = httpx.post(sklearn_runtime.http_url + "/predict", data={"json": payload})
    query = httpx.get(sklearn_runtime.http_url + "/predict", params={"json": payload})
    curl_style = httpx.post(
        sklearn_runtime.http_url + "/predict",
        content=payload,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    for response in (form, query, curl_style):
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]["ndarray"][0]) == 3


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": {"ndarray": [[1, 2',
        b"not json at all",
        b"",
        b"[1, 2, 3]",
        b'{"data": {"nothing": []}}',
        b'{"data": {"ndarray": [[1, 2, "x", 4]]}}',
        b'{"data": {"ndarray": [[1, 2], [3]]}}',
        b'{"data": {"ndarray": ' + b"[" * 2000 + b"]" * 2000 + b"}}",
        b'{"data": {"tensor": {"shape": [-2, -2], "values": [1, 2, 3, 4]}}}',
        b'{"data": {"tftensor": {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "1e12"}]}}}}',
        b'{"binData": "%%%"}',
        b'{"strData": "text for a numeric model"}',
        b'{"meta": "not an object", "data": {"ndarray": [[1, 2, 3, 4]]}}',
    ],
)
def test_malformed_requests_get_400_seldon_json(sklearn_runtime: RunningRuntime, body: bytes) -> None:
    response = httpx.post(
        sklearn_runtime.http_url + "/predict", content=body, headers={"content-type": "application/json"}
    )
    status = _failure(response, 400)
    assert status["reason"] == "MICROSERVICE_BAD_DATA"
    assert status["info"]
    assert sklearn_runtime.is_running()


def test_wrong_feature_count_is_400_with_sklearns_message(sklearn_runtime: RunningRuntime) -> None:
    response = httpx.post(
        sklearn_runtime.http_url + "/predict",
        json={"data": {"ndarray": [[1.0, 2.0]]}},
        headers={"Seldon-Puid": "failed-1"},
    )
    assert response.headers["seldon-puid"] == "failed-1"
    status = _failure(response, 400)
    assert "2 features" in str(status["info"])
    assert "expecting 4" in str(status["info"])
    # and the process is fine afterwards
    assert httpx.post(
        sklearn_runtime.http_url + "/predict", json={"data": {"ndarray": [IRIS_ROW]}}
    ).is_success


def test_unknown_path_is_404(sklearn_runtime: RunningRuntime) -> None:
    _failure(httpx.get(sklearn_runtime.http_url + "/no/such/path"), 404)


def test_health_metadata_and_docs(sklearn_runtime: RunningRuntime) -> None:
    base = sklearn_runtime.http_url
    assert httpx.get(base + "/health/ping").text == "pong"
    assert httpx.get(base + "/live").status_code == 200
    assert httpx.get(base + "/ready").status_code == 200
    for path in ("/health/status", "/api/v1.0/health/status"):
        assert httpx.get(base + path).json()["status"]["status"] == "SUCCESS"
    for path in ("/metadata", "/api/v1.0/metadata", "/api/v1.0/metadata/model"):
        metadata = httpx.get(base + path).json()
        assert metadata["platform"] == "sklearn"
        assert metadata["inputs"][0]["schema"]["shape"] == [4]
    _failure(httpx.get(base + "/api/v1.0/metadata/other"), 404)
    openapi = httpx.get(base + "/seldon.json").json()
    assert "/api/v1.0/predictions" in openapi["paths"]
    docs = httpx.get(base + "/api/v1.0/doc/")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_method_parameter_predict_returns_labels(iris_dir: Path) -> None:
    parameters = '[{"name": "method", "value": "predict", "type": "STRING"}]'
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", str(iris_dir), "--parameters", parameters]
    with start_runtime(args) as runtime:
        body = {"data": {"ndarray": [IRIS_ROW, [6.7, 3.0, 5.2, 2.3]]}}
        data = httpx.post(runtime.http_url + "/predict", json=body).json()["data"]
        assert data["ndarray"] == [0, 2]
        assert data["names"] == []


def test_oversized_body_is_413_and_the_server_keeps_serving(iris_dir: Path) -> None:
    args = ["--implementation", "SKLEARN_SERVER", "--model-uri", str(iris_dir), "--max-request-bytes", "2000"]
    with start_runtime(args) as runtime:
        big = {"data": {"ndarray": [IRIS_ROW] * 200}}
        status = _failure(httpx.post(runtime.http_url + "/predict", json=big), 413)
        assert "2000" in str(status["info"])

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
            yield b'{"data": {"ndarray": ['
            for _ in range(200):
                yield b"[5.1, 3.5, 1.4, 0.2],"
            yield b"[5.1, 3.5, 1.4, 0.2]]}}"

        _failure(httpx.post(runtime.http_url + "/predict", content=chunks()), 413)
        small = httpx.post(runtime.http_url + "/predict", json={"data": {"ndarray": [IRIS_ROW]}})
        assert small.status_code == 200
