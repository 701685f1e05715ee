"""Observability of a running `seldon-mesh up`, seen the way a user sees it: after traffic to a two-node
graph, extproc's scrape endpoint has Seldon's executor histograms; a node's `logger` delivers Seldon's
CloudEvents to an HTTP sink (and `Seldon-Skip-Logging` stops them); with `OTEL_EXPORTER_OTLP_ENDPOINT`
set, one request gives extproc spans in the client's own trace; `seldon-mesh metrics` lists every
scrape endpoint."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.mesh import Mesh, free_port, wait_for
from tests.helpers.otlp import OtlpReceiver, ReceivedSpan
from tests.observability.sink import Received, RecordingSink

GRAPHS = Path(__file__).resolve().parents[2] / "tests/data/graphs"
PATH = "/seldon/default/logged-chain/api/v1.0/predictions"
DEPLOYMENT = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: logged-chain
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
          - name: model
            type: MODEL
            parameters: [{{name: scale, value: "2", type: FLOAT}}]
            logger: {{mode: all, url: "{sink}"}}
"""
BODY = {"data": {"ndarray": [[1.0, 2.0]]}}


@dataclass
class Observed:
    mesh: Mesh
    sink: RecordingSink
    otlp: OtlpReceiver

    def extproc_metrics_url(self) -> str:
        info = self.mesh.cli("metrics", "-o", "json")
        assert info.returncode == 0, info.stderr
        return str(next(e["url"] for e in json.loads(info.stdout) if e["component"] == "extproc"))


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    folder = tmp_path_factory.mktemp("observed")
    sink = RecordingSink()
    sink.start()
    otlp = OtlpReceiver().start()
    spec = folder / "logged-chain.yaml"
    spec.write_text(DEPLOYMENT.format(graphs=GRAPHS, sink=sink.url))
    with pytest.MonkeyPatch.context() as env:  # `up` passes its environment on to extproc and runtimes
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)
        env.setenv("SELDON_MESH_TRACE_SAMPLING_RATIO", "1.0")
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export batches every 0.1 s, not 5 s
        mesh = Mesh(folder / "state", free_port()).start(spec)
    try:
        mesh.wait_state("logged-chain", "Available", timeout=120)
        mesh.wait_serving(PATH, BODY)
        yield Observed(mesh, sink, otlp)
    finally:
        mesh.stop()
        sink.stop()
        otlp.stop()


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(url, timeout=10).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _count(scraped: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for got, v in scraped.get(name + "_count", []) if labels.items() <= got.items())


def test_executor_histograms_carry_seldons_labels_after_traffic(observed: Observed) -> None:
    url = observed.extproc_metrics_url()
    for _ in range(3):
        assert httpx.post(observed.mesh.gateway + PATH, json=BODY, timeout=30).status_code == 200
    predictor = {"deployment_name": "logged-chain", "predictor_name": "main"}
    scraped = wait_for(
        lambda: (
            (s := _scrape(url))
            and _count(s, "seldon_api_executor_server_requests_seconds", **predictor, code="200") >= 3
            and s
        ),
        30,
        "the server histogram to count the requests",
    )
    client = "seldon_api_executor_client_requests_seconds"
    for node in ("pre", "model"):
        assert _count(scraped, client, **predictor, model_name=node, model_image="example/affine") >= 3
    # the same text answers at /metrics, and the payload logger's counters are there too
    metrics = _scrape(url.replace("/prometheus", "/metrics"))
    assert "seldon_mesh_payload_log_accepted_total" in metrics


def _events(sink: RecordingSink, puid: str) -> list[Received]:
    return [r for r in sink.snapshot() if r.headers.get("Ce-Requestid") == puid]


def test_a_nodes_logger_delivers_seldons_cloudevents(observed: Observed) -> None:
    puid = "log-" + secrets.token_hex(4)
    response = httpx.post(observed.mesh.gateway + PATH, json=BODY, headers={"Seldon-Puid": puid}, timeout=30)
    assert response.status_code == 200
    events = wait_for(lambda: len(e := _events(observed.sink, puid)) >= 2 and e, 30, "both events")
    by_type = {e.headers["Ce-Type"]: e for e in events}
    assert set(by_type) == {"io.seldon.serving.inference.request", "io.seldon.serving.inference.response"}
    for event in by_type.values():
        headers = event.headers
        assert headers["Ce-Specversion"] == "1.0"
        assert headers["Ce-Modelid"] == "model"
        assert headers["Ce-Inferenceservicename"] == "logged-chain"
        assert headers["Ce-Namespace"] == "default"
        assert headers["Ce-Endpoint"] == "main"
        assert headers["Ce-Id"] and headers["Ce-Source"]
    # the logged node sees the transformer's output (x + 1), and answers it scaled by 2
    request = json.loads(by_type["io.seldon.serving.inference.request"].body)
    answer = json.loads(by_type["io.seldon.serving.inference.response"].body)
    assert request["data"]["ndarray"] == [[2.0, 3.0]]
    assert answer["data"]["ndarray"] == [[4.0, 6.0]]
    assert response.json()["data"]["ndarray"] == [[4.0, 6.0]]


def test_seldon_skip_logging_suppresses_the_events(observed: Observed) -> None:
    skipped = "skip-" + secrets.token_hex(4)
    headers = {"Seldon-Puid": skipped, "Seldon-Skip-Logging": "true"}
    assert httpx.post(observed.mesh.gateway + PATH, json=BODY, headers=headers, timeout=30).is_success
    # a logged request sent after it: once its events arrive, the skipped one's would have too
    # (one request id per lane, and the spool is written in order)
    marker = "after-" + secrets.token_hex(4)
    assert httpx.post(
        observed.mesh.gateway + PATH, json=BODY, headers={"Seldon-Puid": marker}, timeout=30
    ).is_success
    wait_for(lambda: len(_events(observed.sink, marker)) >= 2, 30, "the logged request's events")
    assert _events(observed.sink, skipped) == []


def test_one_request_gives_extproc_spans_in_the_clients_trace(observed: Observed) -> None:
    trace_id = secrets.token_hex(16)
    client_span = secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{client_span}-01"}
    assert httpx.post(observed.mesh.gateway + PATH, json=BODY, headers=headers, timeout=30).is_success

    def extproc_spans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [s for s in spans if s.trace_id == trace_id and s.service == "seldon-mesh-extproc"]

    spans = extproc_spans(observed.otlp.wait_for(lambda all_: len(extproc_spans(all_)) >= 3, timeout_s=30))
    servers = [s for s in spans if s.name.startswith("extproc ")]
    assert len(servers) == 1, spans
    server = servers[0]
    assert server.attributes["seldon.deployment"] == "logged-chain"
    assert server.attributes["seldon.predictor"] == "main"
    nodes = sorted((s for s in spans if s.name.startswith("node ")), key=lambda s: s.name)
    assert [s.attributes["seldon.node"] for s in nodes] == ["model", "pre"]
    assert all(s.parent_span_id == server.span_id for s in nodes)


def test_seldon_mesh_metrics_lists_every_scrape_endpoint(observed: Observed) -> None:
    listed = observed.mesh.cli("metrics", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    endpoints = {e["component"]: e["url"] for e in json.loads(listed.stdout)}
    assert {"control-plane", "extproc", "envoy"} <= endpoints.keys()
    assert "runtime default/logged-chain/main/pre" in endpoints
    control = httpx.get(endpoints["control-plane"], timeout=10)
    assert control.status_code == 200
    assert "seldon_mesh_xds_pushes_total" in control.text  # the gateway got its config: counted
    assert "envoy_" in httpx.get(endpoints["envoy"], timeout=10).text
    table = observed.mesh.cli("get", "--metrics")
    assert table.returncode == 0, table.stderr
    assert endpoints["extproc"] in table.stdout
