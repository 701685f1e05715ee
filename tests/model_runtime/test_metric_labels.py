"""Custom metrics as Seldon's python wrapper exposes them: its labels (`method`, `worker_id`, the default
and the pre-1.3 names), TIMER in its 50 logarithmic buckets from 1 ms to 30 s, HISTOGRAM with its own
bins; scraped from a real runtime's metrics port, the classes written as Seldon's documentation writes
them."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.ports import free_port
from tests.helpers.runtime import start_runtime

ENV = {
    "SELDON_DEPLOYMENT_ID": "iris",
    "PREDICTOR_ID": "default",
    "PREDICTOR_LABELS": '{"version": "v2"}',
    "PREDICTIVE_UNIT_ID": "classifier",
    "PREDICTIVE_UNIT_IMAGE": "example/classifier:1.4",
}
MODEL = """
from seldon_core.user_model import SeldonComponent


class MyModel(SeldonComponent):
    def predict(self, X, features_names=None):
        return X

    def transform_input(self, X, features_names=None):
        return X

    def metrics(self):
        return [
            {"type": "COUNTER", "key": "mycounter", "value": 1},
            {"type": "GAUGE", "key": "mygauge", "value": 100},
            {"type": "TIMER", "key": "mytimer", "value": 20.2},
            {"type": "HISTOGRAM", "key": "myhist", "value": 3, "bins": [0, 1, 5, 10]},
            {"type": "COUNTER", "key": "tagged", "value": 1, "tags": {"mytag": "a"}},
        ]
"""
# Seldon's BINS (`[0] + list(np.logspace(-3, np.log10(30), 50)) + [np.inf]`) as bucket upper bounds
SELDON_BUCKETS = [str(float(b)) for b in np.logspace(-3, np.log10(30), 50)] + ["+Inf"]


def _scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(f"http://127.0.0.1:{port}/prometheus").text
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def _serve(tmp_path: Path, service_type: str) -> tuple[list[str], int]:
    (tmp_path / "MyModel.py").write_text(MODEL)
    port = free_port()
    args = ["--class", "MyModel", "--code-dir", str(tmp_path), "--metrics-port", str(port)]
    return [*args, "--service-type", service_type], port


def test_custom_metrics_carry_seldons_labels_and_timer_buckets(tmp_path: Path) -> None:
    args, port = _serve(tmp_path, "MODEL")
    with start_runtime(args, env=ENV) as runtime:
        for _ in range(2):
            answer = httpx.post(runtime.http_url + "/predict", json={"data": {"ndarray": [[1.0]]}})
            assert answer.status_code == 200, answer.text
        feedback = {"request": {"data": {"ndarray": [[1.0]]}}, "reward": 0.5}
        assert httpx.post(runtime.http_url + "/send-feedback", json=feedback).status_code == 200
        scraped = _scrape(port)
        pid = str(runtime.process.pid)
    by_method = {labels["method"]: (labels, value) for labels, value in scraped["mycounter_total"]}
    assert sorted(by_method) == ["feedback", "predict"]  # metrics() is asked on feedback too, as Seldon does
    labels, value = by_method["predict"]
    assert value == 2 and by_method["feedback"][1] == 1
    assert labels == {
        "deployment_name": "iris",
        "predictor_name": "default",
        "predictor_version": "v2",
        "model_name": "classifier",
        "model_image": "example/classifier",
        "model_version": "1.4",
        "seldon_deployment_name": "iris",
        "image_name": "example/classifier",
        "image_version": "1.4",
        "method": "predict",
        "worker_id": pid,
    }
    assert scraped["mygauge"][0][1] == 100
    timer = {
        labels["le"]: value for labels, value in scraped["mytimer_bucket"] if labels["method"] == "predict"
    }
    assert sorted(timer, key=float) == SELDON_BUCKETS
    bounds = [float(b) for b in SELDON_BUCKETS[:-1]]
    below = SELDON_BUCKETS[max(i for i, b in enumerate(bounds) if b < 0.0202)]
    above = SELDON_BUCKETS[min(i for i, b in enumerate(bounds) if b >= 0.0202)]
    assert (timer[below], timer[above], timer[SELDON_BUCKETS[-2]]) == (0, 2, 2)  # 20.2 ms, twice
    sums = {labels["method"]: value for labels, value in scraped["mytimer_sum"]}
    assert sums["predict"] == 2 * 0.0202
    hist = {
        labels["le"]: value for labels, value in scraped["myhist_bucket"] if labels["method"] == "predict"
    }
    assert hist == {"1.0": 0, "5.0": 2, "10.0": 2, "+Inf": 2}
    assert scraped["tagged_total"][0][0]["mytag"] == "a"
    [(feedback_labels, count)] = scraped["seldon_api_model_feedback_total"]
    assert count == 1 and feedback_labels["method"] == "feedback"
    assert feedback_labels["worker_id"] == pid


def test_a_transformers_metrics_are_labelled_inputtransform(tmp_path: Path) -> None:
    args, port = _serve(tmp_path, "TRANSFORMER")
    with start_runtime(args, env=ENV) as runtime:
        answer = httpx.post(runtime.http_url + "/transform-input", json={"data": {"ndarray": [[1.0]]}})
        assert answer.status_code == 200, answer.text
        scraped = _scrape(port)
    assert {labels["method"] for labels, _ in scraped["mycounter_total"]} == {"inputtransform"}
