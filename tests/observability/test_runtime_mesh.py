"""The runtimes' observability in a running `seldon-mesh up`, seen as a user sees it: a user class's custom
metrics (COUNTER adds, GAUGE sets, TIMER in ms into a histogram) and feedback metrics on the runtime's
scrape endpoint with Seldon's labels; the executor's request histogram from the runtime the gateway routes
to directly; every runtime listed by `seldon-mesh metrics`; and one request to a two-node graph giving one
trace from Envoy through extproc to both runtimes."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from model_runtime.metrics import TIMER_BUCKETS
from tests.helpers.mesh import Mesh, free_port, wait_for
from tests.helpers.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.slow

GRAPHS = Path(__file__).resolve().parents[2] / "tests/data/graphs"
METERED_MODEL = '''
import numpy as np

from model_runtime import SeldonResponse


class Metered:
    """Reports a counter and a gauge from metrics(), and a timer and a tagged counter per request."""

    def __init__(self):
        self.last = 0.0

    def predict(self, X, names, meta=None):
        self.last = float(np.asarray(X).ravel()[0])
        per_request = [
            {"type": "TIMER", "key": "metered_latency", "value": 250.0},
            {"type": "COUNTER", "key": "metered_rows", "value": 2, "tags": {"colour": "red"}},
        ]
        return SeldonResponse(np.asarray(X) * 2, metrics=per_request)

    def metrics(self):
        return [
            {"type": "COUNTER", "key": "metered_calls", "value": 1},
            {"type": "GAUGE", "key": "metered_last_input", "value": self.last},
        ]

    def send_feedback(self, features, names, reward, truth, routing=None):
        return []
'''
DEPLOYMENTS = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: metered
spec:
  predictors:
    - name: main
      annotations: {{version: v7}}
      componentSpecs:
        - spec:
            containers:
              - {{name: model, image: example/metered:0.3, workingDir: {folder},
                 env: [{{name: MODEL_NAME, value: Metered}}]}}
      graph: {{name: model, type: MODEL}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: traced-pair
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: pre, image: example/affine:0.1, workingDir: {graphs},
                 env: [{{name: MODEL_NAME, value: Affine}}]}}
              - {{name: model, image: example/affine:0.1, workingDir: {graphs},
                 env: [{{name: MODEL_NAME, value: Affine}}]}}
      graph:
        name: pre
        type: TRANSFORMER
        parameters: [{{name: offset, value: "1", type: FLOAT}}]
        children:
          - {{name: model, type: MODEL, parameters: [{{name: scale, value: "2", type: FLOAT}}]}}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: affine-v2
spec:
  protocol: v2
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: model, image: example/affine:0.1, workingDir: {graphs},
                 env: [{{name: MODEL_NAME, value: Affine}}]}}
      graph: {{name: model, type: MODEL, parameters: [{{name: scale, value: "2", type: FLOAT}}]}}
"""
METERED = "/seldon/default/metered/api/v1.0"
AFFINE_V2 = "/seldon/default/affine-v2"
PAIR = "/seldon/default/traced-pair/api/v1.0/predictions"
BODY = {"data": {"ndarray": [[1.0, 2.0]]}}
LABELS = {
    "deployment_name": "metered",
    "predictor_name": "main",
    "predictor_version": "v7",
    "model_name": "model",
    "model_image": "example/metered",
    "model_version": "0.3",
}
Scraped = dict[str, list[tuple[dict[str, str], float]]]


@dataclass
class Running:
    mesh: Mesh
    otlp: OtlpReceiver

    def scrape_urls(self) -> dict[str, str | None]:
        listed = self.mesh.cli("metrics", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        return {e["component"]: e["url"] for e in json.loads(listed.stdout)}

    def scrape(self, component: str) -> Scraped:
        url = self.scrape_urls()[f"runtime default/{component}"]
        assert url is not None
        out: Scraped = {}
        for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return out


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("runtime-observed")
    (folder / "Metered.py").write_text(METERED_MODEL)
    spec = folder / "deployments.yaml"
    spec.write_text(DEPLOYMENTS.format(folder=folder, graphs=GRAPHS))
    otlp = OtlpReceiver().start()
    with pytest.MonkeyPatch.context() as env:  # `up` passes its environment on to extproc and the runtimes
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export every 0.1 s, not 5 s
        mesh = Mesh(folder / "state", free_port()).start(spec)
    try:
        for name in ("metered", "traced-pair", "affine-v2"):
            mesh.wait_state(name, "Available", timeout=120)
        mesh.wait_serving(METERED + "/predictions", BODY)
        mesh.wait_serving(PAIR, BODY)
        yield Running(mesh, otlp)
    finally:
        mesh.stop()
        otlp.stop()


def _value(scraped: Scraped, name: str, **labels: str) -> float:
    matches = [v for got, v in scraped.get(name, []) if labels.items() <= got.items()]
    assert len(matches) <= 1, (name, labels, scraped.get(name))
    return matches[0] if matches else 0.0


def _post(running: Running, path: str, body: object) -> httpx.Response:
    response = httpx.post(running.mesh.gateway + path, json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_custom_metrics_of_a_user_class_appear_with_seldons_labels(running: Running) -> None:
    before = running.scrape("metered/main/model")
    for first in (5.0, 9.0, 3.0):
        _post(running, METERED + "/predictions", {"data": {"ndarray": [[first, 1.0]]}})
    after = running.scrape("metered/main/model")

    def grew(name: str, **tags: str) -> float:
        return _value(after, name, **LABELS, **tags) - _value(before, name, **LABELS, **tags)

    assert grew("metered_calls_total") == 3  # COUNTER adds, value 1 per call
    assert grew("metered_rows_total", colour="red") == 6  # a tagged COUNTER from SeldonResponse
    assert _value(after, "metered_last_input", **LABELS) == 3.0  # GAUGE sets: the last value
    assert grew("metered_latency_count") == 3  # TIMER: 250 ms observed as 0.25 s
    assert grew("metered_latency_sum") == pytest.approx(0.75)
    # Seldon's TIMER buckets (50, log-spaced from 1 ms to 30 s): 0.25 s falls in the first one at or above it
    above = min(b for b in TIMER_BUCKETS if b >= 0.25)
    below = max(b for b in TIMER_BUCKETS if b < 0.25)
    assert grew("metered_latency_bucket", le=floatToGoString(above)) == 3
    assert grew("metered_latency_bucket", le=floatToGoString(below)) == 0


def test_feedback_is_counted_and_its_rewards_summed(running: Running) -> None:
    before = running.scrape("metered/main/model")
    for reward in (0.5, 1.0):
        _post(running, METERED + "/feedback", {"request": BODY, "reward": reward})
    after = running.scrape("metered/main/model")
    assert (
        _value(after, "seldon_api_model_feedback_total", **LABELS)
        - _value(before, "seldon_api_model_feedback_total", **LABELS)
        == 2
    )
    assert _value(after, "seldon_api_model_feedback_reward_total", **LABELS) - _value(
        before, "seldon_api_model_feedback_reward_total", **LABELS
    ) == pytest.approx(1.5)


def test_the_runtime_the_gateway_routes_to_records_the_executors_histogram(running: Running) -> None:
    server = "seldon_api_executor_server_requests_seconds_count"
    labels = {"deployment_name": "metered", "predictor_name": "main", "predictor_version": "v7"}
    predictions = {**labels, "service": "predictions", "method": "POST", "code": "200"}
    before = _value(running.scrape("metered/main/model"), server, **predictions)
    _post(running, METERED + "/predictions", BODY)
    after = running.scrape("metered/main/model")
    assert _value(after, server, **predictions) - before == 1
    # a graph's runtimes are behind extproc, which records the request: they do not count it twice
    _post(running, PAIR, BODY)
    for node in ("pre", "model"):
        assert server not in running.scrape(f"traced-pair/main/{node}")


def test_a_v1_client_of_a_v2_model_is_counted_once_by_extproc_not_again_by_the_runtime(
    running: Running,
) -> None:
    server = "seldon_api_executor_server_requests_seconds_count"
    labels = {"deployment_name": "affine-v2", "predictor_name": "main", "code": "200"}
    infer = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]}
    url = running.scrape_urls()["extproc"]
    assert url is not None

    def extproc_count() -> float:
        text = httpx.get(url, timeout=10).text
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == server and labels.items() <= s.labels.items()
        )

    def runtime_count() -> float:
        scraped = running.scrape("affine-v2/main/model")
        return sum(v for got, v in scraped.get(server, []) if labels.items() <= got.items())

    before = (extproc_count(), runtime_count())
    # a V2 client: the gateway routes it to the runtime, which counts it
    _post(running, AFFINE_V2 + "/v2/models/model/infer", infer)
    # a Seldon v1 client: extproc translates it and counts it; the runtime's V2 call is extproc's
    assert _post(running, AFFINE_V2 + "/api/v1.0/predictions", BODY).json()["data"]["ndarray"] == [[2.0, 4.0]]
    wait_for(lambda: extproc_count() == before[0] + 1, 10, "extproc to count the v1 request")
    assert runtime_count() == before[1] + 1


def test_seldon_mesh_metrics_lists_every_runtimes_scrape_endpoint(running: Running) -> None:
    urls = running.scrape_urls()
    runtimes = {c: u for c, u in urls.items() if c.startswith("runtime ")}
    assert set(runtimes) == {
        "runtime default/metered/main/model",
        "runtime default/traced-pair/main/pre",
        "runtime default/traced-pair/main/model",
        "runtime default/affine-v2/main/model",
    }
    assert {"control-plane", "extproc", "envoy"} <= urls.keys()
    for url in runtimes.values():
        assert url is not None and url.endswith("/prometheus")
        assert httpx.get(url, timeout=10).status_code == 200
        assert httpx.get(url.replace("/prometheus", "/metrics"), timeout=10).status_code == 200
    table = running.mesh.cli("get", "--metrics")
    assert table.returncode == 0, table.stderr
    assert all(str(url) in table.stdout for url in runtimes.values())


GATEWAY, EXTPROC, RUNTIME = "seldon-mesh-gateway", "seldon-mesh-extproc", "seldon-mesh-runtime"


def test_one_request_to_a_two_node_graph_is_one_trace_from_envoy_to_both_runtimes(
    running: Running,
) -> None:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{client_span}-01"}
    response = httpx.post(running.mesh.gateway + PAIR, json=BODY, headers=headers, timeout=30)
    assert response.status_code == 200, response.text

    def complete(spans: list[ReceivedSpan]) -> bool:
        """Both runtime spans, and every span's parent chain up to the client's span."""
        by_id = {s.span_id: s for s in spans if s.trace_id == trace_id}
        runtimes = [s for s in by_id.values() if s.service == RUNTIME]
        if len(runtimes) < 2:
            return False
        for span in runtimes:
            current: ReceivedSpan | None = span
            while current is not None and current.parent_span_id != client_span:
                current = by_id.get(current.parent_span_id)
            if current is None:
                return False
        return True

    spans = [s for s in running.otlp.wait_for(complete, timeout_s=30) if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in spans}
    runtimes = {s.attributes["seldon.node"]: s for s in spans if s.service == RUNTIME}
    assert set(runtimes) == {"pre", "model"}
    assert runtimes["pre"].name == "runtime transform-input"
    assert runtimes["model"].name == "runtime predict"
    (server,) = [s for s in spans if s.service == EXTPROC and s.name.startswith("extproc ")]
    for node, runtime in runtimes.items():
        assert runtime.attributes["seldon.deployment"] == "traced-pair"
        assert runtime.attributes["seldon.predictor"] == "main"
        # runtime server span <- extproc's client span for that node <- extproc's server span
        call = by_id[runtime.parent_span_id]
        assert call.service == EXTPROC and call.name.startswith("node ")
        assert call.attributes["seldon.node"] == node
        assert call.parent_span_id == server.span_id
    # extproc's server span <- Envoy's spans <- the client's span
    parent = by_id[server.parent_span_id]
    assert parent.service == GATEWAY
    while parent.parent_span_id != client_span:
        parent = by_id[parent.parent_span_id]
        assert parent.service == GATEWAY
    assert parent.attributes["seldon.deployment"] == "traced-pair"
