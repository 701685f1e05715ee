"""The detector's Prometheus metrics: what the dashboard's detector panels show.

Seldon's alibi-detect server names its gauges `seldon_metric_outlier_<field>` and
`seldon_metric_drift_<field>` with an `index` label (the instance, or the feature for drift), set from the
detector's latest answer; those are kept under the same names. Counters of our own
(`seldon_mesh_detector_*`) make rates and totals possible: events by outcome, instances scored, instances
flagged, drift tests by result. Every series carries `model_name` (the detector's `--model_name`) and
`detector` (its kind). Each server has its own registry (no global state), exposed at Seldon's
`/v1/metrics` and at `/metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from detector_server.detectors import Kind

LABELS = ("model_name", "detector")
OUTLIER_FIELDS = ("is_outlier", "instance_score")
ADVERSARIAL_FIELDS = ("is_adversarial", "instance_score")
DRIFT_FIELDS = ("is_drift", "distance", "p_val", "threshold")
FLAG_FIELD = {Kind.OUTLIER: "is_outlier", Kind.ADVERSARIAL: "is_adversarial"}


class EventOutcome(StrEnum):
    SCORED = "scored"  # answered with the detector's result (a reply event sent, when configured)
    BATCHED = "batched"  # a drift event that joined the batch, which is not full yet
    IGNORED = "ignored"  # a CloudEvent of a type this detector does not take (a response, a feedback)
    DUPLICATE = "duplicate"  # a redelivered event (same Ce-Id), acknowledged and not counted again
    REFUSED = "refused"  # not a request of the protocol, or one the detector cannot score (HTTP 400)
    REPLY_FAILED = "reply_failed"  # the reply URL did not take the result: HTTP 503, the sender retries
    FAILED = "failed"  # the detector raised on a readable input: HTTP 500, the sender retries


class DetectorMetrics:
    def __init__(self, model_name: str, kind: Kind, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.kind = kind
        self._labels = {"model_name": model_name, "detector": str(kind)}
        prefix = "seldon_metric_drift" if kind is Kind.DRIFT else "seldon_metric_outlier"
        fields = {Kind.OUTLIER: OUTLIER_FIELDS, Kind.ADVERSARIAL: ADVERSARIAL_FIELDS}.get(kind, DRIFT_FIELDS)
        index_labels = [*LABELS, "index"]
        registry = self.registry
        self._gauges = {
            name: Gauge(f"{prefix}_{name}", f"{name} of the latest answer", index_labels, registry=registry)
            for name in fields
        }
        self.events = Counter("seldon_mesh_detector_events", "Events received, by outcome",
                              [*LABELS, "outcome"], registry=registry)  # fmt: skip
        self.instances = Counter("seldon_mesh_detector_instances", "Instances scored or batched", LABELS,
                                 registry=registry)  # fmt: skip
        self.flagged = Counter("seldon_mesh_detector_outliers", "Instances flagged (outlier, adversarial)",
                               LABELS, registry=registry)  # fmt: skip
        self.drift_tests = Counter("seldon_mesh_detector_drift_tests", "Drift tests run, by result",
                                   [*LABELS, "drift"], registry=registry)  # fmt: skip
        self.waiting = Gauge("seldon_mesh_detector_batch_instances", "Instances waiting in the drift batch",
                             LABELS, registry=registry)  # fmt: skip
        for outcome in EventOutcome:
            self.events.labels(**self._labels, outcome=str(outcome))
        self.instances.labels(**self._labels)
        self.waiting.labels(**self._labels)
        if kind is Kind.DRIFT:
            for drift in ("true", "false"):
                self.drift_tests.labels(**self._labels, drift=drift)
        else:
            self.flagged.labels(**self._labels)

    def on_event(self, outcome: EventOutcome) -> None:
        self.events.labels(**self._labels, outcome=str(outcome)).inc()

    def on_result(self, instances: int, scores: Mapping[str, Any], waiting: int) -> None:
        """An event the detector took: `scores` is its answer's `data` (empty while a batch fills)."""
        self.instances.labels(**self._labels).inc(instances)
        self.waiting.labels(**self._labels).set(waiting)
        for name, gauge in self._gauges.items():
            for index, value in enumerate(_numbers(scores.get(name))):
                gauge.labels(**self._labels, index=str(index)).set(value)
        if self.kind is Kind.DRIFT:
            if "is_drift" in scores:
                drift = any(v > 0 for v in _numbers(scores["is_drift"]))
                self.drift_tests.labels(**self._labels, drift="true" if drift else "false").inc()
            return
        flagged = sum(1 for v in _numbers(scores.get(FLAG_FIELD[self.kind])) if v > 0)
        self.flagged.labels(**self._labels).inc(flagged)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _numbers(value: Any) -> list[float]:
    """A field of the answer as a flat list of numbers (a scalar is one; None is none)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [n for item in value for n in _numbers(item)]
    try:
        return [float(value)]
    except (TypeError, ValueError):
        return []
