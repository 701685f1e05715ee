"""A user class usable as model, input transformer or output transformer: X * scale + offset."""

from __future__ import annotations

from typing import Any

import numpy as np


class Affine:
    def __init__(self, scale: float = 1.0, offset: float = 0.0, tag: str = "affine") -> None:
        self.scale = scale
        self.offset = offset
        self.tag = tag

    def _apply(self, X: Any) -> Any:
        return np.asarray(X, dtype=float) * self.scale + self.offset

    def predict(self, X: Any, names: Any, meta: Any = None) -> Any:
        return self._apply(X)

    def transform_input(self, X: Any, names: Any, meta: Any = None) -> Any:
        return self._apply(X)

    def transform_output(self, X: Any, names: Any, meta: Any = None) -> Any:
        return self._apply(X)

    def send_feedback(self, features: Any, names: Any, reward: float, truth: Any, routing: Any = None) -> Any:
        return []

    def tags(self) -> dict[str, Any]:
        return {f"seen_{self.tag}": True}
