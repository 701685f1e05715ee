"""Tracing at the gateway of a running `seldon-mesh up`: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, Envoy
traces every request, and extproc's span for a graph request is a child of Envoy's, all in the client's
trace, so Jaeger shows one tree from the gateway down to the graph's nodes. Over both graph edges: the
default (extproc's REST edge as the route's upstream) and `--graph-edge ext_proc` (an ext_proc stream)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.mesh import Mesh, free_port
from tests.helpers.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.slow

GRAPHS = Path(__file__).resolve().parents[2] / "tests/data/graphs"
PATH = "/seldon/default/traced-chain/api/v1.0/predictions"
DEPLOYMENT = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: traced-chain
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
"""
BODY = {"data": {"ndarray": [[1.0, 2.0]]}}
GATEWAY = "seldon-mesh-gateway"
EXTPROC = "seldon-mesh-extproc"


@pytest.fixture(scope="module", params=["http", "ext_proc"])
def traced(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Mesh, OtlpReceiver]]:
    folder = tmp_path_factory.mktemp(f"traced-{request.param}")
    otlp = OtlpReceiver().start()
    spec = folder / "traced-chain.yaml"
    spec.write_text(DEPLOYMENT.format(graphs=GRAPHS))
    with pytest.MonkeyPatch.context() as env:  # what a user sets to send traces to Jaeger
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export every 0.1 s (extproc and Envoy), not 5 s
        mesh = Mesh(folder / "state", free_port()).start(spec, extra=["--graph-edge", request.param])
    try:
        mesh.wait_state("traced-chain", "Available", timeout=120)
        mesh.wait_serving(PATH, BODY)
        yield mesh, otlp
    finally:
        mesh.stop()
        otlp.stop()


def test_extproc_span_is_a_child_of_the_gateways_span_in_the_clients_trace(
    traced: tuple[Mesh, OtlpReceiver],
) -> None:
    mesh, otlp = traced
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    response = httpx.post(
        mesh.gateway + PATH, json=BODY, headers={"traceparent": f"00-{trace_id}-{client_span}-01"}, timeout=30
    )
    assert response.status_code == 200, response.text

    def tree(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        """The trace once the extproc server span's chain of parents reaches the client's span."""
        by_id = {s.span_id: s for s in spans if s.trace_id == trace_id}
        servers = [s for s in by_id.values() if s.service == EXTPROC and s.name.startswith("extproc ")]
        if not servers:
            return []
        span: ReceivedSpan | None = servers[0]
        while span is not None and span.parent_span_id != client_span:
            span = by_id.get(span.parent_span_id)
        return list(by_id.values()) if span is not None else []

    spans = tree(otlp.wait_for(lambda got: bool(tree(got)), timeout_s=30))
    by_id = {s.span_id: s for s in spans}
    (server,) = [s for s in spans if s.service == EXTPROC and s.name.startswith("extproc ")]
    parent = by_id[server.parent_span_id]
    assert parent.service == GATEWAY  # Envoy's span (its upstream or ext_proc call), not the client's
    root = parent
    while root.parent_span_id != client_span:
        root = by_id[root.parent_span_id]
        assert root.service == GATEWAY
    # the gateway's request span names the deployment and predictor it routed to
    assert root.attributes["seldon.deployment"] == "traced-chain"
    assert root.attributes["seldon.predictor"] == "main"
