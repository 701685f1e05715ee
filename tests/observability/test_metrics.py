"""Metric names, labels and semantics: Seldon's executor histograms, custom metrics from user classes,
feedback, the payload logger's spool and the xDS server's pushes and NACKs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from envoy.service.discovery.v3 import discovery_pb2
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from extproc.metrics import (
    SELDON_BUCKETS,
    ExecutorMetrics,
    NodeLabels,
    PredictorLabels,
)
from model_runtime.metrics import ModelIdentity, RuntimeMetrics, identity_from_env
from payload_log import PayloadLogger
from payload_log.metrics import PayloadLogMetrics
from tests.helpers.runtime import start_runtime
from tests.model_runtime.conftest import python_class
from tests.observability.conftest import fast_settings
from tests.observability.events import pair
from tests.observability.scrape import samples, value
from tests.observability.sink import RecordingSink, wait_for
from xds_controller.callbacks import Callbacks
from xds_controller.metrics import XdsMetrics
from xds_controller.resource_types import CLUSTER, LISTENER, TypeUrl
from xds_controller.snapshot import Version

ROOT = Path(__file__).resolve().parents[2]
SELDON_LABELS = {"deployment_name", "predictor_name", "predictor_version"}
IDENTITY = ModelIdentity(
    deployment_name="iris",
    predictor_name="default",
    predictor_version="v1",
    model_name="classifier",
    model_image="seldonio/sklearnserver",
    model_version="1.17.1",
)


def test_executor_histograms_have_seldons_names_labels_and_buckets() -> None:
    registry = CollectorRegistry()
    metrics = ExecutorMetrics(registry)
    predictor = PredictorLabels("iris", "default", "v1")
    metrics.observe_server(predictor, "predictions", "POST", "200", 0.02)
    metrics.observe_client(
        predictor, NodeLabels("classifier", "seldonio/sklearnserver", "1.17.1"), "predictions", "POST", "200",
        0.01,
    )  # fmt: skip
    got = samples(registry)
    server = got["seldon_api_executor_server_requests_seconds_bucket"]
    assert {labels["le"] for labels, _ in server} == {*(str(float(b)) for b in SELDON_BUCKETS), "+Inf"}
    assert set(server[0][0]) == SELDON_LABELS | {"service", "method", "code", "le"}
    assert value(registry, "seldon_api_executor_server_requests_seconds_bucket", le="0.025") == 1
    assert value(registry, "seldon_api_executor_server_requests_seconds_bucket", le="0.01") == 0
    assert value(registry, "seldon_api_executor_server_requests_seconds_summary_count") == 1
    client = got["seldon_api_executor_client_requests_seconds_count"]
    assert client[0][0] == {
        "deployment_name": "iris",
        "predictor_name": "default",
        "predictor_version": "v1",
        "service": "predictions",
        "method": "POST",
        "code": "200",
        "model_name": "classifier",
        "model_image": "seldonio/sklearnserver",
        "model_version": "1.17.1",
    }
    assert "seldon_api_executor_client_requests_seconds_summary_sum" in got


def test_custom_metrics_counter_adds_gauge_sets_timer_observes_milliseconds() -> None:
    registry = CollectorRegistry()
    metrics = RuntimeMetrics(registry, IDENTITY)
    metrics.record_custom([{"type": "COUNTER", "key": "mycounter", "value": 1}])
    metrics.record_custom([{"type": "COUNTER", "key": "mycounter", "value": 2.5}])
    metrics.record_custom([{"type": "GAUGE", "key": "mygauge", "value": 100}])
    metrics.record_custom([{"type": "GAUGE", "key": "mygauge", "value": 22}])
    metrics.record_custom([{"type": "TIMER", "key": "mytimer", "value": 20.2}])
    metrics.record_custom([{"type": "TIMER", "key": "mytimer", "value": 300}])
    metrics.record_custom([{"type": "COUNTER", "key": "tagged", "value": 1, "tags": {"mytag": "a"}}])

    assert value(registry, "mycounter_total") == 3.5
    assert value(registry, "mygauge") == 22
    assert value(registry, "mytimer_count") == 2
    assert value(registry, "mytimer_sum") == pytest.approx(0.3202)
    assert value(registry, "mytimer_bucket", le="0.02347185009632733") == 1  # Seldon's wrapper's buckets
    assert value(registry, "mytimer_bucket", le="0.5509277469444613") == 2
    labels = samples(registry)["tagged_total"][0][0]
    assert labels == {**IDENTITY.custom_labels("predict"), "mytag": "a"}
    assert labels["model_name"] == "classifier"


def test_inconsistent_custom_metrics_are_counted_not_raised() -> None:
    registry = CollectorRegistry()
    metrics = RuntimeMetrics(registry, IDENTITY)
    metrics.record_custom([{"type": "COUNTER", "key": "c", "value": 1, "tags": {"a": "1"}}])
    metrics.record_custom([{"type": "COUNTER", "key": "c", "value": 1, "tags": {"b": "1"}}])  # other tags
    metrics.record_custom([{"type": "GAUGE", "key": "c", "value": 1, "tags": {"a": "1"}}])  # other type
    metrics.record_custom([{"type": "COUNTER", "key": "d", "value": 1, "tags": {"model_name": "x"}}])
    assert value(registry, "c_total") == 1
    assert value(registry, "seldon_mesh_custom_metric_errors_total") == 3


def test_feedback_counts_requests_and_sums_rewards() -> None:
    registry = CollectorRegistry()
    metrics = RuntimeMetrics(registry, IDENTITY)
    metrics.record_feedback(1.0)
    metrics.record_feedback(0.0)
    metrics.record_feedback(1.0)
    assert value(registry, "seldon_api_model_feedback_total", model_name="classifier") == 3
    assert value(registry, "seldon_api_model_feedback_reward_total", deployment_name="iris") == 2


def test_gateway_facing_runtime_records_server_requests_others_do_not() -> None:
    registry = CollectorRegistry()
    RuntimeMetrics(registry, IDENTITY).observe_request("predictions", "POST", "200", 0.1)
    assert "seldon_api_executor_server_requests_seconds_count" not in samples(registry)
    facing = ModelIdentity(deployment_name="iris", predictor_name="default", gateway_facing=True)
    registry = CollectorRegistry()
    RuntimeMetrics(registry, facing).observe_request("predictions", "POST", "200", 0.1)
    assert value(registry, "seldon_api_executor_server_requests_seconds_count", service="predictions") == 1


def test_identity_from_seldon_environment() -> None:
    identity = identity_from_env(
        {
            "SELDON_DEPLOYMENT_ID": "iris",
            "PREDICTOR_ID": "default",
            "PREDICTIVE_UNIT_ID": "classifier",
            "PREDICTIVE_UNIT_IMAGE": "localhost:5000/seldonio/sklearnserver:1.17.1",
        }
    )
    assert identity.model_image == "localhost:5000/seldonio/sklearnserver"
    assert identity.model_version == "1.17.1"
    assert identity_from_env({"PREDICTIVE_UNIT_IMAGE": "localhost:5000/model"}).model_version == ""


def test_workers_in_multiprocess_mode_are_merged_in_one_scrape(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for gauge in ("5", "7"):
        subprocess.run(
            [sys.executable, "-m", "tests.observability.metrics_worker", gauge], env=env, check=True
        )
    text = subprocess.run(
        [sys.executable, "-m", "tests.observability.metrics_worker", "scrape"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    found: dict[str, dict[str, float]] = {}  # name -> worker_id -> value: one series per worker, as Seldon
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[sample.labels.get("worker_id", "")] = sample.value
    assert list(found["mycounter_total"].values()) == [2, 2]  # each worker's COUNTER 2
    assert sum(found["seldon_api_model_feedback_total"].values()) == 2
    assert sorted(found["mygauge"].values()) == [5, 7]  # the GAUGE each worker set


def test_payload_log_metrics_follow_the_logger(tmp_path: Path, sink: RecordingSink) -> None:
    registry = CollectorRegistry()
    logger = PayloadLogger(fast_settings(tmp_path, None), observer=PayloadLogMetrics(registry))
    logger.start()
    try:
        orphan, _ = pair("orphan")
        assert not logger.log(orphan).accepted
        for event in pair("routed", destination=sink.url):
            assert logger.log(event).accepted
        wait_for(lambda: value(registry, "seldon_mesh_payload_log_delivered_total") == 2, 10, "deliveries")
    finally:
        logger.stop()
    assert value(registry, "seldon_mesh_payload_log_accepted_total") == 2
    assert value(registry, "seldon_mesh_payload_log_refused_total", reason="refused_no_destination") == 1
    assert value(registry, "seldon_mesh_payload_log_refused_total", reason="refused_full") == 0
    assert value(registry, "seldon_mesh_payload_log_spool_events") == 0
    assert value(registry, "seldon_mesh_payload_log_spool_bytes") == 0


class _Plane(Callbacks):
    def __init__(self) -> None:
        self.nacks: list[str] = []
        self.opened = 0

    def on_stream_open(self, stream_id: int, peer: str) -> None:
        self.opened += 1

    def on_nack(self, node_id: str, type_url: TypeUrl, version: Version, message: str) -> None:
        self.nacks.append(message)


def test_xds_metrics_count_pushes_acks_and_nacks_and_forward_every_hook() -> None:
    registry = CollectorRegistry()
    plane = _Plane()
    metrics = XdsMetrics(registry, inner=plane)
    metrics.on_stream_open(1, "ipv4:127.0.0.1:1")
    metrics.on_response(1, "gw", discovery_pb2.DiscoveryResponse(type_url=CLUSTER, version_info="a"))
    metrics.on_delta_response(1, "gw", discovery_pb2.DeltaDiscoveryResponse(type_url=LISTENER))
    metrics.on_ack("gw", CLUSTER, Version("a"))
    metrics.on_nack("gw", LISTENER, Version("a"), "bad filter")
    assert value(registry, "seldon_mesh_xds_pushes_total", node="gw", type="CDS", mode="sotw") == 1
    assert value(registry, "seldon_mesh_xds_pushes_total", node="gw", type="LDS", mode="delta") == 1
    assert value(registry, "seldon_mesh_xds_acks_total", type="CDS") == 1
    assert value(registry, "seldon_mesh_xds_nacks_total", type="LDS") == 1
    assert value(registry, "seldon_mesh_xds_rejected", type="LDS") == 1
    assert value(registry, "seldon_mesh_xds_streams") == 1
    assert (plane.opened, plane.nacks) == (1, ["bad filter"])
    metrics.on_ack("gw", LISTENER, Version("b"))
    metrics.on_stream_closed(1, "gw")
    assert value(registry, "seldon_mesh_xds_rejected", type="LDS") == 0
    assert value(registry, "seldon_mesh_xds_streams") == 0


def test_custom_metrics_of_a_real_user_class_feed_the_runtime_hook() -> None:
    """What the runtime will do per request: record the metrics its user class returned."""
    env = {
        "SELDON_DEPLOYMENT_ID": "iris",
        "PREDICTOR_ID": "default",
        "PREDICTIVE_UNIT_ID": "scaler",
        "PREDICTIVE_UNIT_IMAGE": "example/scaled:1.0",
        "PREDICTIVE_UNIT_PARAMETERS": '[{"name": "scale", "value": "2.5", "type": "FLOAT"}]',
    }
    registry = CollectorRegistry()
    metrics = RuntimeMetrics(registry, identity_from_env(env))
    with start_runtime(python_class("ScaledModel", "--name", "scaler"), env=env) as runtime:
        for _ in range(2):
            response = httpx.post(runtime.http_url + "/predict", json={"data": {"ndarray": [[1.0, 2.0]]}})
            assert response.status_code == 200, response.text
            metrics.record_custom(response.json()["meta"]["metrics"])
    assert value(registry, "calls_total", model_name="scaler", model_version="1.0") == 2  # COUNTER 1, twice
    assert value(registry, "scale", deployment_name="iris", predictor_name="default") == 2.5  # GAUGE
