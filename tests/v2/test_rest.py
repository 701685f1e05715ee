"""V2 over REST against real runtime processes: health, metadata, every datatype, outputs selection,
the binary tensor extension, the repository extension and the bad-input table."""

from __future__ import annotations

import json
import struct

import httpx
import numpy as np
import pytest

from tests.helpers.runtime import RunningRuntime

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]

DATA: list[tuple[str, list[object]]] = [
    ("BOOL", [True, False, True, True]),
    ("UINT8", [0, 1, 200, 255]),
    ("UINT16", [0, 1, 60000, 2]),
    ("UINT32", [0, 1, 4000000000, 3]),
    ("UINT64", [0, 1, 2**63, 4]),
    ("INT8", [-128, 0, 5, 127]),
    ("INT16", [-30000, 0, 5, 30000]),
    ("INT32", [-(2**31), 0, 5, 2**31 - 1]),
    ("INT64", [-(2**63), 0, 5, 2**63 - 1]),
    ("FP16", [0.5, -1.0, 2.0, 0.25]),
    ("FP32", [0.5, -1.5, 3.25, 1e-3]),
    ("FP64", [0.1, -1.5, 3.25, 1e300]),
    ("BYTES", ["a", "héllo", "", "z"]),
]


def _infer(runtime: RunningRuntime, model: str, body: object, path: str = "") -> httpx.Response:
    return httpx.post(f"{runtime.http_url}/v2/models/{model}{path}/infer", json=body, timeout=30)


def test_health_and_server_metadata(echo: RunningRuntime) -> None:
    assert httpx.get(echo.http_url + "/v2/health/live").status_code == 200
    assert httpx.get(echo.http_url + "/v2/health/ready").status_code == 200
    assert httpx.get(echo.http_url + "/v2/models/echo/ready").status_code == 200
    assert httpx.get(echo.http_url + "/v2/models/echo/versions/7/ready").status_code == 200
    assert httpx.get(echo.http_url + "/v2/models/other/ready").status_code == 404
    meta = httpx.get(echo.http_url + "/v2").json()
    assert meta["name"] == "seldon-mesh"
    assert set(meta["extensions"]) >= {"binary_tensor_data", "model_repository"}


def test_model_metadata_of_a_prepackaged_model(iris: RunningRuntime) -> None:
    meta = httpx.get(iris.http_url + "/v2/models/iris").json()
    assert meta["name"] == "iris"
    assert meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}]


@pytest.mark.parametrize(("datatype", "values"), DATA, ids=[d for d, _ in DATA])
def test_every_datatype_round_trips_as_json(
    echo: RunningRuntime, datatype: str, values: list[object]
) -> None:
    body = {"id": "r1", "inputs": [{"name": "x", "datatype": datatype, "shape": [2, 2], "data": values}]}
    response = _infer(echo, "echo", body)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["model_name"] == "echo"
    assert reply["model_version"] == "7"
    assert reply["id"] == "r1"
    output = reply["outputs"][0]
    assert (output["datatype"], output["shape"]) == (datatype, [2, 2])
    if datatype == "FP32":
        np.testing.assert_allclose(output["data"], values, rtol=1e-6)
    else:
        assert output["data"] == values


def test_nested_data_is_accepted(echo: RunningRuntime) -> None:
    body = {"inputs": [{"name": "x", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]}
    assert _infer(echo, "echo", body).json()["outputs"][0]["data"] == [1, 2, 3, 4]


@pytest.mark.parametrize(("datatype", "values"), DATA, ids=[d for d, _ in DATA])
def test_every_datatype_round_trips_binary(echo: RunningRuntime, datatype: str, values: list[object]) -> None:
    if datatype == "BYTES":
        blob = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)  # type: ignore[union-attr]
        dtype = None
    else:
        dtype = {"BOOL": "?", "FP16": "<f2"}.get(datatype) or _numpy(datatype)
        blob = np.asarray(values, dtype=dtype).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": datatype,
                    "shape": [4],
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "outputs": [{"name": "output-0", "parameters": {"binary_data": True}}],
        }
    ).encode()
    response = httpx.post(
        echo.http_url + "/v2/models/echo/infer",
        content=header + blob,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "content-type": "application/octet-stream",
        },
    )
    assert response.status_code == 200, response.text
    json_length = int(response.headers["inference-header-content-length"])
    reply = json.loads(response.content[:json_length])
    output = reply["outputs"][0]
    assert "data" not in output
    assert output["parameters"]["binary_data_size"] == len(blob)
    assert response.content[json_length:] == blob


def _numpy(datatype: str) -> str:
    kind = {"UINT": "u", "INT": "i", "FP": "f"}
    for prefix, letter in kind.items():
        if datatype.startswith(prefix):
            return f"<{letter}{int(datatype[len(prefix) :]) // 8}"
    raise AssertionError(datatype)


def test_binary_data_output_applies_to_every_output(pair: RunningRuntime) -> None:
    body = {
        "parameters": {"binary_data_output": True},
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}],
    }
    response = _infer(pair, "pair", body)
    json_length = int(response.headers["inference-header-content-length"])
    sizes = [
        o["parameters"]["binary_data_size"] for o in json.loads(response.content[:json_length])["outputs"]
    ]
    assert np.frombuffer(response.content[json_length:], dtype="<f4").tolist() == [1.0, 2.0, 2.0, 4.0]
    assert sizes == [8, 8]


def test_outputs_selection(pair: RunningRuntime) -> None:
    body = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]}],
        "outputs": [{"name": "twice"}],
    }
    outputs = _infer(pair, "pair", body).json()["outputs"]
    assert [(o["name"], o["data"]) for o in outputs] == [("twice", [2.0, 4.0])]
    body["outputs"] = [{"name": "nope"}]
    response = _infer(pair, "pair", body)
    assert response.status_code == 400
    assert "nope" in response.json()["error"]


def test_v1_and_v2_answer_with_the_same_numbers(iris: RunningRuntime) -> None:
    v1 = httpx.post(iris.http_url + "/api/v1.0/predictions", json={"data": {"ndarray": [IRIS_ROW]}}).json()
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": IRIS_ROW}]}
    v2 = _infer(iris, "iris", body).json()["outputs"][0]
    assert v2["name"] == "predict_proba"
    assert v2["shape"] == [1, 3]
    assert v2["data"] == v1["data"]["ndarray"][0]


BAD_REQUESTS: list[tuple[str, str, object, int, str]] = [
    # (case, model path, body, status, words in the error)
    (
        "unknown datatype",
        "iris",
        {"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [1, 4], "data": IRIS_ROW}]},
        400,
        "datatype",
    ),
    (
        "data does not fill shape",
        "iris",
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 5], "data": IRIS_ROW}]},
        400,
        "shape",
    ),
    (
        "negative dimension",
        "iris",
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4], "data": IRIS_ROW}]},
        400,
        "negative",
    ),
    (
        "strings as FP32",
        "iris",
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": ["a", "b", "c", "d"]}]},
        400,
        "FP32",
    ),
    (
        "floats as INT32",
        "iris",
        {"inputs": [{"name": "x", "datatype": "INT32", "shape": [1, 4], "data": IRIS_ROW}]},
        400,
        "INT32",
    ),
    (
        "out of range INT8",
        "iris",
        {"inputs": [{"name": "x", "datatype": "INT8", "shape": [1, 1], "data": [300]}]},
        400,
        "range",
    ),
    (
        "BYTES to a numeric model",
        "iris",
        {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1, 4], "data": ["a", "b", "c", "d"]}]},
        400,
        "float",
    ),
    (
        "wrong feature count",
        "iris",
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]},
        400,
        "feature",
    ),
    ("no inputs", "iris", {"inputs": []}, 400, "inputs"),
    ("not an object", "iris", [1, 2], 400, "object"),
    ("unknown model", "nope", {"inputs": []}, 404, "nope"),
    ("unknown version", "iris/versions/9", {"inputs": []}, 404, "version"),
]


@pytest.mark.parametrize(
    ("model", "body", "status", "words"), [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_input_gets_a_v2_error_and_the_server_keeps_serving(
    iris: RunningRuntime, model: str, body: object, status: int, words: str
) -> None:
    response = httpx.post(f"{iris.http_url}/v2/models/{model}/infer", json=body)
    assert response.status_code == status, response.text
    assert words.lower() in response.json()["error"].lower()
    good = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": IRIS_ROW}]}
    assert _infer(iris, "iris", good).status_code == 200


def test_invalid_json_and_bad_binary_framing_are_400(echo: RunningRuntime) -> None:
    url = echo.http_url + "/v2/models/echo/infer"
    assert httpx.post(url, content=b"{nope").status_code == 400
    header = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[4],"parameters":{"binary_data_size":16}}]}'
    short = httpx.post(
        url, content=header + b"\0" * 8, headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert short.status_code == 400
    assert "binary_data_size" in short.json()["error"]
    wrong = httpx.post(url, content=header, headers={"Inference-Header-Content-Length": "99999"})
    assert wrong.status_code == 400


def test_an_oversize_body_is_413_and_the_server_keeps_serving(echo: RunningRuntime) -> None:
    values = [1.0] * 50_000  # ~250 kB of JSON, over the 200 kB limit
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [len(values)], "data": values}]}
    response = _infer(echo, "echo", body)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    small = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]}
    assert _infer(echo, "echo", small).status_code == 200


def test_repository_index_unload_and_load(pair: RunningRuntime) -> None:
    index = httpx.post(pair.http_url + "/v2/repository/index", json={}).json()
    assert index == [{"name": "pair", "version": "", "state": "READY", "reason": ""}]
    assert httpx.post(pair.http_url + "/v2/repository/models/pair/unload").status_code == 200
    assert httpx.get(pair.http_url + "/v2/models/pair/ready").status_code == 503
    assert httpx.post(pair.http_url + "/v2/repository/index", json={"ready": True}).json() == []
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]}
    assert _infer(pair, "pair", body).status_code == 503
    assert httpx.post(pair.http_url + "/v2/repository/models/pair/load").status_code == 200
    assert httpx.get(pair.http_url + "/v2/models/pair/ready").status_code == 200
    assert _infer(pair, "pair", body).status_code == 200
    assert httpx.post(pair.http_url + "/v2/repository/models/other/load").status_code == 404
