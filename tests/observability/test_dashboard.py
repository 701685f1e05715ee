"""The Grafana dashboard queries only metrics our processes export, under the names they export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from envoy.service.discovery.v3 import discovery_pb2
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from detector_server.detectors import Kind
from detector_server.metrics import DetectorMetrics
from explainer_server.explainers import ExplainerSpec, Explanations
from explainer_server.server import State
from extproc.metrics import ExecutorMetrics, NodeLabels, PredictorLabels
from model_runtime.metrics import ModelIdentity, RuntimeMetrics
from payload_log import LogOutcome
from payload_log.metrics import PayloadLogMetrics
from telemetry.exposition import Exposition
from xds_controller.metrics import XdsMetrics
from xds_controller.resource_types import CLUSTER
from xds_controller.snapshot import Version

DASHBOARD = Path(__file__).resolve().parents[2] / "charts/seldon-mesh/dashboards/seldon-mesh.json"
METRIC = re.compile(r"\b(seldon_[a-z0-9_]+)")


def exported_sample_names() -> dict[str, set[str]]:
    registry = CollectorRegistry()
    executor = ExecutorMetrics(registry)
    predictor = PredictorLabels("iris", "default")
    executor.observe_server(predictor, "predictions", "POST", "200", 0.01)
    executor.observe_client(predictor, NodeLabels("classifier"), "predictions", "POST", "200", 0.01)
    payload = PayloadLogMetrics(registry)
    payload.on_accepted(1)
    payload.on_delivered(1)
    payload.on_retried(1)
    payload.on_dead_lettered(1)
    payload.on_refused(LogOutcome.REFUSED_FULL, 1)
    payload.on_spool_usage(1, 10)
    RuntimeMetrics(registry, ModelIdentity(deployment_name="iris")).record_feedback(1.0)
    xds = XdsMetrics(registry)
    xds.on_stream_open(1, "peer")
    xds.on_response(1, "gw", discovery_pb2.DiscoveryResponse(type_url=CLUSTER))
    xds.on_nack("gw", CLUSTER, Version("v"), "bad")
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(Exposition(registry).render()[0].decode()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    for name, labels in [*detector_sample_names().items(), *explainer_sample_names().items()]:
        names.setdefault(name, set()).update(labels)
    return names


def explainer_sample_names() -> dict[str, set[str]]:
    """What an explainer server exports (its own text exposition, in a process of its own)."""
    state = State(Explanations(ExplainerSpec(type="KernelShap"), lambda x: x), "iris-explainer")
    state.record("seldon", 200, 0.5)
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(state.metrics()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def detector_sample_names() -> dict[str, set[str]]:
    """What a detector server exports (one registry per server, as each runs in a process of its own)."""
    names: dict[str, set[str]] = {}
    scores = {"is_outlier": [1], "instance_score": [0.3], "is_drift": 1, "p_val": [0.01], "threshold": 0.05}
    for kind in Kind:
        metrics = DetectorMetrics("od", kind)
        metrics.on_result(1, scores, 0)
        for family in text_string_to_metric_families(metrics.render()[0].decode()):
            for sample in family.samples:
                names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_dashboard_queries_name_exported_metrics_and_labels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])] + [
        variable["definition"] for variable in dashboard["templating"]["list"] if "definition" in variable
    ]
    exported = exported_sample_names()
    referenced = {name for expr in exprs for name in METRIC.findall(expr)}
    assert referenced, "the dashboard queries nothing"
    assert referenced <= set(exported), sorted(referenced - set(exported))
    for expr in exprs:
        grouped = {
            label.strip() for clause in re.findall(r"by \(([^)]*)\)", expr) for label in clause.split(",")
        }
        for name in METRIC.findall(expr):
            assert grouped - {"le"} <= exported[name], (expr, name)
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {
        "Request rate by predictor",
        "Latency percentiles by predictor",
        "Node latency p95",
        "Feedback: mean reward by model",
        "Spool depth",
        "xDS NACKs by node and type",
        "Outlier score (latest answer, highest instance)",
        "Drift p-values by feature (latest test)",
        "Explainer request rate by protocol and code",
        "Explainer mean latency by protocol",
    } <= titles
