"""Custom metric helpers: what `metrics()` (or a `SeldonResponse`) returns, one dict per metric.

COUNTER adds to a running total, GAUGE sets a value, TIMER is in milliseconds and feeds a histogram;
`tags` become Prometheus labels. The runtime exposes them on the metrics port at `/prometheus`.
"""

from __future__ import annotations

from typing import Any

COUNTER = "COUNTER"
GAUGE = "GAUGE"
TIMER = "TIMER"
HISTOGRAM = "HISTOGRAM"  # Seldon 1.15: observed as is, into its own `bins` if it has them
_TYPES = frozenset({COUNTER, GAUGE, TIMER, HISTOGRAM})


def _metric(kind: str, key: str, value: float, tags: dict[str, str] | None) -> dict[str, Any]:
    metric: dict[str, Any] = {"type": kind, "key": key, "value": value}
    if tags:
        metric["tags"] = dict(tags)
    return metric


def create_counter(key: str, value: float, tags: dict[str, str] | None = None) -> dict[str, Any]:
    return _metric(COUNTER, key, value, tags)


def create_gauge(key: str, value: float, tags: dict[str, str] | None = None) -> dict[str, Any]:
    return _metric(GAUGE, key, value, tags)


def create_timer(key: str, value: float, tags: dict[str, str] | None = None) -> dict[str, Any]:
    return _metric(TIMER, key, value, tags)


def validate_metrics(metrics: Any) -> bool:
    """True when `metrics` is a list of metric dicts the runtime accepts."""
    if not isinstance(metrics, list):
        return False
    for metric in metrics:
        if not isinstance(metric, dict) or metric.get("type") not in _TYPES or "key" not in metric:
            return False
        value = metric.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if "tags" in metric and not isinstance(metric["tags"], dict):
            return False
    return True
