"""Prometheus metrics of a runtime process: custom metrics returned by user classes, Seldon's feedback
metrics and, for a predictor the gateway routes straight to this runtime (no ext_proc in the path), the
executor's server request histogram.

Hooks for the dataplane (exact calls):
- `RuntimeMetrics.record_custom(metrics, method)` with the list a user's `metrics()` or
  `SeldonResponse.metrics` produced (already checked by `component.check_metrics`) while serving `method`:
  COUNTER adds, GAUGE sets, TIMER (milliseconds) is observed in seconds and HISTOGRAM as is, into Seldon's
  python wrapper's buckets (`TIMER_BUCKETS`; a HISTOGRAM's own `bins` if it has them);
- `RuntimeMetrics.record_feedback(reward)` once per `send-feedback`: a reward >= 0 is added to Seldon's
  `seldon_api_model_feedback_reward` counter, the size of a negative one to
  `seldon_mesh_model_feedback_negative_reward` (a counter cannot go down; net reward = first - second);
- `RuntimeMetrics.observe_request(service, method, code, seconds)` per external request, only when
  `ModelIdentity.gateway_facing` (otherwise ext_proc records it and the runtime would count it twice);
- `Exposition.render()` answers `/prometheus` on the metrics port.

Custom and feedback metrics carry the labels Seldon's wrapper gives them (`CUSTOM_LABELS`: deployment_name,
predictor_name, predictor_version, model_name, model_image, model_version, the pre-1.3 names
seldon_deployment_name, image_name and image_version, `method` and `worker_id`) plus the user's tags.
Deliberate difference: Seldon counts feedback only when its reward is not 0; we count every one.
Prometheus needs a fixed label set per name:
a later metric with the same key but other tag names, or another type, is not recorded; it is logged
and counted in `seldon_mesh_custom_metric_errors_total`.

Registries and workers: as in `extproc.metrics` (which this package may not import): a private registry
per process; several workers use prometheus_client's multiprocess mode, `PROMETHEUS_MULTIPROC_DIR` set by
the supervisor before it spawns them; each worker's custom and feedback series stay apart under their
`worker_id`, as in Seldon (sum by the other labels for the predictor's total).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
)
from prometheus_client.metrics import MetricWrapperBase

log = logging.getLogger(__name__)

SELDON_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    2.5,
    5,
    7.5,
    10,
)
# Seldon's python wrapper observes TIMER (ms, in seconds) and HISTOGRAM metrics into 50 buckets spread
# logarithmically from 1 ms to 30 s (its BINS, less the 0 lower edge; +Inf is added by prometheus_client).
TIMER_BUCKETS: tuple[float, ...] = tuple(float(b) for b in np.logspace(-3, np.log10(30), 50))
FEEDBACK = "seldon_api_model_feedback"
FEEDBACK_REWARD = "seldon_api_model_feedback_reward"
FEEDBACK_NEGATIVE_REWARD = "seldon_mesh_model_feedback_negative_reward"
SERVER_REQUESTS = "seldon_api_executor_server_requests_seconds"
DEFAULT_LABELS = (
    "deployment_name",
    "predictor_name",
    "predictor_version",
    "model_name",
    "model_image",
    "model_version",
)
# Seldon's wrapper also labels custom metrics with the names used until 1.3, the endpoint that produced
# them (`method`: predict, inputtransform, outputtransform, router, aggregate, health, feedback) and the
# worker process (`worker_id`, its pid).
COMPAT_LABELS = {
    "seldon_deployment_name": "deployment_name",
    "image_name": "model_image",
    "image_version": "model_version",
}
CUSTOM_LABELS = (*DEFAULT_LABELS, *COMPAT_LABELS, "method", "worker_id")
METHOD_TAGS = frozenset(
    {"predict", "inputtransform", "outputtransform", "router", "aggregate", "health", "feedback"}
)
SERVER_LABELS = ("deployment_name", "predictor_name", "predictor_version", "service", "method", "code")


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """Who this runtime is, from the spec (Seldon passes SELDON_DEPLOYMENT_ID, PREDICTOR_ID,
    PREDICTIVE_UNIT_ID, PREDICTIVE_UNIT_IMAGE, PREDICTOR_LABELS; the model version is the image tag)."""

    deployment_name: str = ""
    predictor_name: str = ""
    predictor_version: str = ""
    model_name: str = ""
    model_image: str = ""
    model_version: str = ""
    gateway_facing: bool = False

    def default_labels(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in DEFAULT_LABELS}

    def custom_labels(self, method: str) -> dict[str, str]:
        """The labels Seldon's wrapper puts on a custom metric recorded by `method` in this process."""
        labels = self.default_labels()
        labels.update({old: labels[new] for old, new in COMPAT_LABELS.items()})
        return {**labels, "method": method, "worker_id": str(os.getpid())}


def identity_from_env(environ: Mapping[str, str], *, gateway_facing: bool = False) -> ModelIdentity:
    """For entrypoints only: Seldon's environment variables of a component container."""
    image = environ.get("PREDICTIVE_UNIT_IMAGE", "")
    name_part = image.rsplit("/", 1)[-1]
    return ModelIdentity(
        deployment_name=environ.get("SELDON_DEPLOYMENT_ID", ""),
        predictor_name=environ.get("PREDICTOR_ID", ""),
        predictor_version=environ.get("PREDICTOR_VERSION") or _labelled_version(environ),
        model_name=environ.get("PREDICTIVE_UNIT_ID", ""),
        model_image=image.rsplit(":", 1)[0] if ":" in name_part else image,
        model_version=name_part.rsplit(":", 1)[1] if ":" in name_part else "",
        gateway_facing=gateway_facing,
    )


def _labelled_version(environ: Mapping[str, str]) -> str:
    """Seldon's own source of the label: `version` in the predictor's labels (PREDICTOR_LABELS, JSON)."""
    try:
        labels = json.loads(environ.get("PREDICTOR_LABELS") or "{}")
    except ValueError:
        return ""
    return str(labels.get("version", "")) if isinstance(labels, dict) else ""


class CustomMetricError(ValueError):
    pass


class RuntimeMetrics:
    def __init__(self, registry: CollectorRegistry, identity: ModelIdentity) -> None:
        self.registry = registry
        self.identity = identity
        self._defaults = identity.default_labels()
        self._custom: dict[str, tuple[str, tuple[str, ...], MetricWrapperBase]] = {}
        self._lock = threading.Lock()
        labels = list(CUSTOM_LABELS)  # the feedback metrics are custom metrics of method "feedback"
        self.feedback = Counter(FEEDBACK, "Feedback requests", labels, registry=registry)
        self.feedback_reward = Counter(
            FEEDBACK_REWARD, "Sum of non-negative feedback rewards", labels, registry=registry
        )
        self.feedback_negative_reward = Counter(
            FEEDBACK_NEGATIVE_REWARD,
            "Sum of the sizes of negative feedback rewards",
            labels,
            registry=registry,
        )
        self.errors = Counter(
            "seldon_mesh_custom_metric_errors",
            "Custom metrics not recorded (type or tag names differ from the first of that key)",
            list(DEFAULT_LABELS),
            registry=registry,
        )
        self.server: Histogram | None = None
        self.server_summary: Summary | None = None
        if identity.gateway_facing:
            self.server = Histogram(
                SERVER_REQUESTS, "Requests to the predictor", SERVER_LABELS, registry=registry,
                buckets=SELDON_BUCKETS,
            )  # fmt: skip
            self.server_summary = Summary(
                SERVER_REQUESTS + "_summary", "Requests to the predictor", SERVER_LABELS, registry=registry
            )

    def record_feedback(self, reward: float) -> None:
        """A negative reward is legal (Seldon's feedback allows any number) but a counter cannot go down:
        its size is added to FEEDBACK_NEGATIVE_REWARD instead, so the net reward is the difference."""
        labels = self.identity.custom_labels("feedback")
        self.feedback.labels(**labels).inc()
        if not math.isfinite(reward):
            return
        positive = self.feedback_reward.labels(**labels)
        negative = self.feedback_negative_reward.labels(**labels)  # both exist, so a - b has data
        if reward >= 0:
            positive.inc(reward)
        else:
            negative.inc(-reward)

    def observe_request(self, service: str, method: str, code: str, seconds: float) -> None:
        if self.server is None or self.server_summary is None:
            return
        i = self.identity
        labels = (i.deployment_name, i.predictor_name, i.predictor_version, service, method, code)
        self.server.labels(*labels).observe(seconds)
        self.server_summary.labels(*labels).observe(seconds)

    def record_custom(self, metrics: Iterable[Mapping[str, Any]], method: str = "predict") -> None:
        """Record user metrics returned while serving `method` (one of `METHOD_TAGS`); a bad one is
        logged and counted, never raised into the request."""
        for metric in metrics:
            try:
                self._record_one(metric, method)
            except (CustomMetricError, ValueError, TypeError) as exc:
                log.warning("custom metric %r not recorded: %s", metric, exc)
                self.errors.labels(**self._defaults).inc()

    def _record_one(self, metric: Mapping[str, Any], method: str) -> None:
        key, kind, value = str(metric["key"]), str(metric.get("type", "COUNTER")), float(metric["value"])
        tags = {str(k): str(v) for k, v in (metric.get("tags") or {}).items()}
        clash = set(tags) & set(CUSTOM_LABELS)
        if clash:
            raise CustomMetricError(f"tags {sorted(clash)} are reserved labels")
        tag_names = tuple(sorted(tags))
        instrument = self._instrument(key, kind, tag_names, metric.get("bins"))
        child = instrument.labels(**self.identity.custom_labels(method), **tags)
        if kind == "COUNTER":
            child.inc(value)
        elif kind == "GAUGE":
            child.set(value)
        else:  # TIMER in milliseconds, HISTOGRAM in its own unit (Seldon 1.15)
            child.observe(value / 1000.0 if kind == "TIMER" else value)

    def _instrument(self, key: str, kind: str, tag_names: tuple[str, ...], bins: Any = None) -> Any:
        with self._lock:
            known = self._custom.get(key)
            if known is not None:
                if known[:2] != (kind, tag_names):
                    raise CustomMetricError(
                        f"{key} was first recorded as {known[0]} with tags {list(known[1])}"
                    )
                return known[2]
            labels = [*CUSTOM_LABELS, *tag_names]
            instrument: MetricWrapperBase
            if kind == "COUNTER":
                instrument = Counter(key, f"custom counter {key}", labels, registry=self.registry)
            elif kind == "GAUGE":
                instrument = Gauge(key, f"custom gauge {key}", labels, registry=self.registry,
                                   multiprocess_mode="livemostrecent")  # fmt: skip
            elif kind == "TIMER":
                instrument = Histogram(key, f"custom timer {key} (seconds; reported in ms)", labels,
                                       registry=self.registry, buckets=TIMER_BUCKETS)  # fmt: skip
            elif kind == "HISTOGRAM":
                instrument = Histogram(key, f"custom histogram {key}", labels, registry=self.registry,
                                       buckets=_buckets(bins))  # fmt: skip
            else:
                raise CustomMetricError(f"unknown metric type {kind!r}")
            self._custom[key] = (kind, tag_names, instrument)
            return instrument


def _buckets(bins: Any) -> tuple[float, ...]:
    """A HISTOGRAM metric's own `bins` (Seldon: edges, the first one the lower bound), else Seldon's."""
    if bins is None:
        return TIMER_BUCKETS
    if not isinstance(bins, list | tuple) or len(bins) < 2:
        raise CustomMetricError(f"bins must be a list of at least two edges, got {bins!r}")
    edges = [float(b) for b in bins[1:]]
    if edges != sorted(set(edges)):
        raise CustomMetricError(f"bins must increase, got {bins!r}")
    return tuple(edges)
