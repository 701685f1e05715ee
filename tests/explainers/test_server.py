"""The explainer server's edges without alibi (it runs in the main venv with a stand-in explainer):
Seldon and V2 error shapes, readiness while loading and after a failed build, one connection reused
after errors, Seldon's string config, and the types that cannot be served here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from explainer_server.errors import ModelUnavailable
from explainer_server.explainers import ConfigError, ExplainerSpec, Explanations, explain_arguments
from explainer_server.payloads import decode_seldon, decode_v2
from explainer_server.server import State, serve


class _Stub(Explanations):
    """Explains by echoing the instances' shape; `down` makes it fail as a model that is down would."""

    def __init__(self) -> None:
        super().__init__(ExplainerSpec(type="KernelShap"), lambda x: x)
        self.down = False

    def explain(self, instances: np.ndarray) -> str:
        if self.down:
            raise RuntimeError("alibi's own error") from ModelUnavailable("the model of seldon/iris is down")
        return json.dumps({"data": {"shape": list(instances.shape)}})


@pytest.fixture
def served() -> Iterator[tuple[str, State, _Stub]]:
    stub = _Stub()
    state = State(stub, "iris-default-explainer", ("iris-explainer",))
    server = serve(state, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state, stub
    finally:
        server.shutdown()
        server.server_close()


def test_loading_then_ready_then_a_model_down_on_one_connection(served: tuple[str, State, _Stub]) -> None:
    url, state, stub = served
    body: dict[str, Any] = {"data": {"ndarray": [[1.0, 2.0]]}}
    with httpx.Client(base_url=url) as client:  # one keep-alive connection throughout
        loading = client.post("/api/v1.0/explain", json=body)
        assert loading.status_code == 503
        assert loading.json()["status"]["reason"] == "NOT_READY"
        assert client.get("/ready").status_code == 503
        state.ready = True
        assert client.get("/ready").status_code == 200
        assert client.post("/api/v1.0/explain", json=body).json() == {"data": {"shape": [1, 2]}}
        stub.down = True
        down = client.post("/api/v1.0/explain", json=body)
        assert down.status_code == 503
        assert down.json()["status"] == {
            "code": 503,
            "info": "the model of seldon/iris is down",
            "reason": "MODEL_UNAVAILABLE",
            "status": "FAILURE",
        }
        assert client.get("/v2/models/iris-default-explainer/ready").status_code == 200
        v2 = client.post("/v2/models/iris-explainer/infer", json={"inputs": [{}]})
        assert v2.status_code == 400 and "error" in v2.json()
        assert client.post("/v2/models/other/infer", json={}).status_code == 404
        assert client.get("/live").status_code == 200


def test_a_failed_build_is_a_load_failure_the_supervisor_reads(served: tuple[str, State, _Stub]) -> None:
    url, state, _ = served
    state.failure = "IntegratedGradients needs tensorflow"
    ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 503
    assert ready.json()["status"]["reason"] == "LOAD_FAILED"  # the supervisor marks the component Failed


def test_types_this_environment_cannot_serve_fail_to_load_with_the_reason() -> None:
    for kind, reason in (("IntegratedGradients", "tensorflow"), ("Lime", "not served here")):
        with pytest.raises(ConfigError, match=reason):
            Explanations(ExplainerSpec(type=kind), lambda x: x).check()


def test_seldon_config_strings_become_values() -> None:
    config = {"threshold": "0.95", "batch_size": "100", "stop_on_first": "true", "name": "x", "n": 3}
    assert explain_arguments(config) == {
        "threshold": 0.95,
        "batch_size": 100,
        "stop_on_first": True,
        "name": "x",
        "n": 3,
    }


def test_requests_decode_as_seldon_and_v2_send_them() -> None:
    assert decode_seldon({"data": {"tensor": {"shape": [1, 2], "values": [1, 2]}}}).shape == (1, 2)
    assert decode_seldon({"strData": "a film"}).tolist() == ["a film"]
    v2 = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    assert decode_v2(v2).tolist() == [[1, 2], [3, 4]]
    text = {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a film"]}]}
    assert decode_v2(text).tolist() == ["a film"]
