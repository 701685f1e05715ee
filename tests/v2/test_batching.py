"""Adaptive batching: concurrent V2 requests (REST and gRPC alike) are merged into one model call and each
caller gets its own rows back; a request with another input layout is called on its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest

from generated.inference import dataplane_pb2 as v2
from generated.inference import dataplane_pb2_grpc as v2_grpc
from tests.helpers.runtime import RunningRuntime, start_runtime
from tests.v2.conftest import toy

# A batch runs when 4 requests are queued; the 30 s window only matters if a test is broken.
PARAMETERS = json.dumps(
    [
        {"name": "max_batch_size", "value": "4", "type": "INT"},
        {"name": "max_batch_time_ms", "value": "30000", "type": "FLOAT"},
    ]
)


@pytest.fixture(scope="module")
def batching() -> Iterator[RunningRuntime]:
    # batching comes from graph parameters here, which must not reach the model's constructor
    with start_runtime(toy("BatchSize", "batch", "--parameters", PARAMETERS)) as runtime:
        yield runtime


def _rest(runtime: RunningRuntime, first: float, columns: int = 2) -> list[float]:
    row = [first] + [0.0] * (columns - 1)
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, columns], "data": row}]}
    response = httpx.post(runtime.http_url + "/v2/models/batch/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return list(response.json()["outputs"][0]["data"])


def _grpc(runtime: RunningRuntime, first: float) -> list[float]:
    request = v2.ModelInferRequest(model_name="batch")
    request.inputs.add(name="x", datatype="FP64", shape=[1, 2]).contents.fp64_contents.extend([first, 0.0])
    with grpc.insecure_channel(runtime.grpc_target) as channel:
        reply = v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    return list(reply.outputs[0].contents.fp64_contents)


def test_concurrent_requests_share_one_call_and_keep_their_own_rows(batching: RunningRuntime) -> None:
    with ThreadPoolExecutor(4) as pool:
        rest = [pool.submit(_rest, batching, float(i)) for i in (1, 2)]
        rpc = [pool.submit(_grpc, batching, float(i)) for i in (3, 4)]
        answers = [f.result() for f in (*rest, *rpc)]
    assert answers == [[1.0, 4.0], [2.0, 4.0], [3.0, 4.0], [4.0, 4.0]]  # [own value, rows in the call]


def test_a_request_with_another_layout_is_called_alone(batching: RunningRuntime) -> None:
    with ThreadPoolExecutor(4) as pool:
        same = [pool.submit(_rest, batching, float(i)) for i in (1, 2, 3)]
        other = pool.submit(_rest, batching, 9.0, 3)
        answers = [f.result() for f in same]
        alone = other.result()
    assert answers == [[1.0, 3.0], [2.0, 3.0], [3.0, 3.0]]
    assert alone == [9.0, 1.0]
