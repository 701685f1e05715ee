"""`SeldonResponse`: what a user method returns to add per-request tags and metrics to its data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class SeldonResponse:
    """Return `SeldonResponse(data, tags={...}, metrics=[...])` from any user method.

    `data` is anything a method may return on its own (array, list, str, bytes, dict). These tags take
    priority over the component's `tags()`; the metrics are added to those from `metrics()`.
    """

    data: Any
    tags: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def create(cls, data: Any) -> SeldonResponse:
        return data if isinstance(data, SeldonResponse) else cls(data)
