"""A real runtime process traces what it serves: REST and gRPC, Seldon v1 and V2, each request a server
span continuing the caller's trace (W3C `traceparent`, Jaeger `uber-trace-id` or B3), named by method and
labelled with the deployment, predictor and node from Seldon's environment; batched spans are flushed when
the runtime stops. Several workers' metrics are merged in one scrape of the metrics port."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client import CollectorRegistry

from generated.inference import dataplane_pb2 as v2
from generated.inference import dataplane_pb2_grpc as v2_grpc
from generated.seldon import prediction_pb2 as pb
from generated.seldon import prediction_pb2_grpc as pb_grpc
from model_runtime.dataplane import DataPlane
from model_runtime.loader import load_component
from model_runtime.metrics import ModelIdentity, RuntimeMetrics
from model_runtime.observe import RequestObserver
from model_runtime.rest import RestApp
from model_runtime.rpc.observe import ObservingInterceptor
from model_runtime.settings import ComponentSettings, ServerSettings
from model_runtime.tracing import Tracing, TracingSettings
from tests.helpers.otlp import OtlpReceiver, ReceivedSpan
from tests.helpers.ports import free_port
from tests.helpers.runtime import RunningRuntime, start_runtime

GRAPHS = Path(__file__).resolve().parents[2] / "tests/data/graphs"
RUNTIME = "seldon-mesh-runtime"
IDENTITY = {
    "SELDON_DEPLOYMENT_ID": "iris",
    "PREDICTOR_ID": "default",
    "PREDICTIVE_UNIT_ID": "classifier",
    "PREDICTIVE_UNIT_IMAGE": "example/affine:0.1",
}
AFFINE = ["--class", "Affine", "--code-dir", str(GRAPHS), "--name", "classifier"]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    otlp = OtlpReceiver().start()
    yield otlp
    otlp.stop()


def _ids() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def _one_span(receiver: OtlpReceiver, trace_id: str) -> ReceivedSpan:
    (span,) = [s for s in receiver.spans() if s.trace_id == trace_id]
    return span


def _calls(runtime: RunningRuntime) -> list[tuple[str, str, str]]:
    """One request per transport and protocol, each carrying a different propagation format; for each,
    the span name the runtime should make and the (trace id, caller span id) sent."""
    sent: list[tuple[str, str, str]] = []

    trace_id, span_id = _ids()
    sent.append(("runtime predictions", trace_id, span_id))
    response = httpx.post(
        runtime.http_url + "/api/v1.0/predictions",
        json={"data": {"ndarray": [[1.0, 2.0]]}},
        headers={"traceparent": f"00-{trace_id}-{span_id}-01"},
    )
    assert response.status_code == 200, response.text

    trace_id, span_id = _ids()
    sent.append(("runtime infer", trace_id, span_id))
    infer = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1.0, 2.0]}]}
    b3 = {"X-B3-TraceId": trace_id, "X-B3-SpanId": span_id, "X-B3-Sampled": "1"}
    response = httpx.post(runtime.http_url + "/v2/models/classifier/infer", json=infer, headers=b3)
    assert response.status_code == 200, response.text

    with grpc.insecure_channel(runtime.grpc_target) as channel:
        trace_id, span_id = _ids()
        sent.append(("runtime transform-input", trace_id, span_id))
        message = pb.SeldonMessage(data=pb.DefaultData(tensor=pb.Tensor(shape=[1, 2], values=[1.0, 2.0])))
        jaeger = (("uber-trace-id", f"{trace_id}:{span_id}:0:1"),)
        pb_grpc.TransformerStub(channel).TransformInput(message, metadata=jaeger, timeout=10)

        trace_id, span_id = _ids()
        sent.append(("runtime infer", trace_id, span_id))
        request = v2.ModelInferRequest(model_name="classifier")
        tensor = request.inputs.add(name="x", datatype="FP64", shape=[1, 2])
        tensor.contents.fp64_contents.extend([1.0, 2.0])
        w3c = (("traceparent", f"00-{trace_id}-{span_id}-01"),)
        v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, metadata=w3c, timeout=10)
    return sent


def test_rest_and_grpc_v1_and_v2_requests_continue_the_callers_trace(receiver: OtlpReceiver) -> None:
    # the default batch delay (5 s) is left alone: the spans arrive because stopping flushes them
    env = {**IDENTITY, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
    with start_runtime(AFFINE, env=env) as runtime:
        sent = _calls(runtime)
        assert runtime.stop() == 0
    for name, trace_id, caller in sent:
        span = _one_span(receiver, trace_id)
        assert span.name == name
        assert span.parent_span_id == caller
        assert span.service == RUNTIME
        assert span.kind == 2  # OTLP SPAN_KIND_SERVER
        assert span.attributes["seldon.deployment"] == "iris"
        assert span.attributes["seldon.predictor"] == "default"
        assert span.attributes["seldon.node"] == "classifier"
        assert span.attributes["seldon.code"] in ("200", "OK")


def test_errors_are_in_the_span_and_probes_are_not_traced(receiver: OtlpReceiver) -> None:
    env = {**IDENTITY, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
    with start_runtime(AFFINE, env=env) as runtime:
        trace_id, span_id = _ids()
        response = httpx.post(
            runtime.http_url + "/predict",
            content=b"{not json",
            headers={"traceparent": f"00-{trace_id}-{span_id}-01", "content-type": "application/json"},
        )
        assert response.status_code == 400
        with grpc.insecure_channel(runtime.grpc_target) as channel:
            grpc_trace, grpc_span = _ids()
            with pytest.raises(grpc.RpcError) as raised:
                pb_grpc.ModelStub(channel).Predict(
                    pb.SeldonMessage(),
                    metadata=(("traceparent", f"00-{grpc_trace}-{grpc_span}-01"),),
                    timeout=10,
                )
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for _ in range(3):
            assert httpx.get(runtime.http_url + "/ready").status_code == 200
        assert runtime.stop() == 0
    assert _one_span(receiver, trace_id).attributes["seldon.code"] == "400"
    assert _one_span(receiver, grpc_trace).attributes["seldon.code"] == "INVALID_ARGUMENT"
    # only the two requests were traced: no span for readiness probes
    assert len(receiver.spans()) == 2


COUNTING_MODEL = """
from model_runtime import SeldonResponse


class Counting:
    def predict(self, X, names, meta=None):
        return SeldonResponse(X, metrics=[{"type": "COUNTER", "key": "calls", "value": 1}])
"""


def test_several_workers_are_merged_in_one_scrape(tmp_path: Path) -> None:
    (tmp_path / "Counting.py").write_text(COUNTING_MODEL)
    metrics_port = free_port()
    args = ["--class", "Counting", "--code-dir", str(tmp_path), "--workers", "2"]
    args += ["--metrics-port", str(metrics_port)]
    with start_runtime(args, env=IDENTITY) as runtime:
        for _ in range(10):  # a new connection each: the kernel spreads them over both workers
            response = httpx.post(runtime.http_url + "/predict", json={"data": {"ndarray": [[1.0]]}})
            assert response.status_code == 200
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/prometheus").text
        also = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    lines = [line for line in scraped.splitlines() if line.startswith("calls_total{")]
    assert 1 <= len(lines) <= 2, scraped  # one series per worker that served (Seldon's worker_id label)
    assert all('deployment_name="iris"' in line and 'model_name="classifier"' in line for line in lines)
    assert sum(float(line.rsplit(" ", 1)[1]) for line in lines) == 10.0
    assert set(lines) <= set(also.splitlines())


def _wrapped_paths(observer: RequestObserver) -> set[str]:
    core = DataPlane(ComponentSettings.model_validate({"class_path": "Affine"}), load_component)
    app = RestApp(core, ServerSettings(http_port=0, grpc_port=0), observer=observer)
    return {path for path, handler in app.routes.items() if handler.__qualname__.startswith("_observed")}


def test_with_tracing_off_only_a_gateway_facing_runtimes_external_endpoints_are_wrapped() -> None:
    """What a request pays for nothing: behind ext_proc with tracing off, no handler is wrapped and no
    gRPC interceptor is installed."""
    quiet = RequestObserver(RuntimeMetrics(CollectorRegistry(), ModelIdentity()), None, "model")
    assert _wrapped_paths(quiet) == set()
    assert not ObservingInterceptor(quiet).active
    facing = ModelIdentity(deployment_name="iris", gateway_facing=True)
    counted = RequestObserver(RuntimeMetrics(CollectorRegistry(), facing), None, "model")
    assert _wrapped_paths(counted) == {
        "/api/v1.0/predictions", "/api/v0.1/predictions", "/api/v1.0/feedback", "/api/v1.0/metadata",
        "/api/v1.0/health/status", "/v2/models/model", "/v2/models/model/infer",
    }  # fmt: skip
    traced = RequestObserver(
        RuntimeMetrics(CollectorRegistry(), ModelIdentity()), Tracing(TracingSettings()), "model"
    )
    assert "/predict" in _wrapped_paths(traced) and "/ready" not in _wrapped_paths(traced)
